#pragma once
/// The attention op beside its shape rules (rules::attention and rules::attention_grad in
/// ir/attention.cpp): the sizes its kernels and reference share, and the references.

#include <vector>

#include "ir/graph.h"
#include "ir/reference.h"

namespace stag {

/// Where an attention node's optional operands are (-1: absent): attention(q, k, v[, key[, part]])
/// and attention_grad(q, k, v, lse, dy[, dlse][, key[, part]]), dlse a float tensor, key and part
/// i64[] (ir/ops.def).
struct AttentionOperands {
  int dlse = -1, key = -1, part = -1;

  AttentionOperands(bool grad, const std::vector<DType>& dtypes);
  explicit AttentionOperands(const Node& n);
};

/// An attention node's sizes: `batch` products of T queries and S keys of width D, values of
/// width Dv, from the operands' types; its dropout probability and seed.
struct AttentionShape {
  int64_t batch, T, S, D, Dv;
  double scale, dropout;
  int64_t seed;
  bool causal, bf16;

  explicit AttentionShape(const Node& n);
  /// Whether query i sees key j.
  bool sees(int64_t i, int64_t j) const { return !causal || j <= i; }
  /// The probabilities' elements a part counts past (ir/ops.def).
  int64_t probabilities() const { return batch * T * S; }
};

/// The reference of attention: the output and each query's logsumexp, in double (products of
/// bf16-rounded factors when the node is bf16).
std::vector<RefTensor> evaluate_attention(const Node& n, const std::vector<const RefTensor*>& operands);
/// The reference of attention_grad: dq, dk and dv.
std::vector<RefTensor> evaluate_attention_grad(const Node& n, const std::vector<const RefTensor*>& operands);

}  // namespace stag
