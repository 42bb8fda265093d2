#pragma once
/// The attention op beside its shape rules (rules::attention and rules::attention_grad in
/// ir/attention.cpp): the sizes its kernels and reference share, and the references.

#include <vector>

#include "ir/graph.h"
#include "ir/reference.h"

namespace stag {

/// An attention node's sizes: `batch` products of T queries and S keys of width D, values of
/// width Dv, from the operands' types.
struct AttentionShape {
  int64_t batch, T, S, D, Dv;
  double scale;
  bool causal, bf16;

  explicit AttentionShape(const Node& n);
  /// Whether query i sees key j.
  bool sees(int64_t i, int64_t j) const { return !causal || j <= i; }
};

/// The reference of attention: the output and each query's logsumexp, in double (products of
/// bf16-rounded factors when the node is bf16).
std::vector<RefTensor> evaluate_attention(const Node& n, const std::vector<const RefTensor*>& operands);
/// The reference of attention_grad: dq, dk and dv.
std::vector<RefTensor> evaluate_attention_grad(const Node& n, const std::vector<const RefTensor*>& operands);

}  // namespace stag
