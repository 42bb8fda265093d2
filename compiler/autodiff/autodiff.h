#pragma once
/// Reverse-mode automatic differentiation as a graph-to-graph pass.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/builder.h"
#include "ir/diag.h"
#include "ir/graph.h"

namespace stag {

/// Returns a copy of `g` that also computes the gradient of the scalar float output named
/// `loss_output` with respect to every trainable parameter, as outputs `grad.<param name>` (in
/// parameter order; a parameter the loss does not depend on gets zeros). The forward's outputs
/// and updates are kept. Gradients of a value used several times are summed; frozen parameters,
/// integer and bool values get none; nodes off every path from a trainable parameter to the
/// loss get no backward work. User errors (no such output, a missing gradient rule) go to
/// `diags` and give nullptr.
std::unique_ptr<Graph> differentiate(const Graph& g, const std::string& loss_output, Diagnostics& diags);

/// The name of the output holding a parameter's gradient.
inline std::string grad_output_name(const std::string& param) { return "grad." + param; }

namespace autodiff {

/// What a gradient rule sees: the forward node, the gradient of each of its results (nullptr
/// where none flows back), and which operands want a gradient.
struct GradCtx {
  Builder& b;
  const Node& n;
  std::vector<Value*> dy;
  std::vector<bool> wants;
  /// Scalar constants already made by the pass, shared by every rule.
  std::map<std::pair<double, DType>, Value*>& scalars;

  Value* x(size_t i = 0) const { return n.operands.at(i); }
  Value* y(size_t i = 0) const { return n.result(i); }
};

/// Builds the backward of one node: the gradient of each operand, nullptr for none. Every
/// returned gradient has exactly its operand's type.
using GradRule = std::vector<Value*> (*)(GradCtx&);

/// The gradient of scan (compiler/autodiff/scan_grad.cpp): a reverse scan over the body's
/// vector-Jacobian product.
std::vector<Value*> scan_gradient(GradCtx& c);

/// The op's gradient rule, or nullptr when it has none.
GradRule gradient_rule(Op op);

/// differentiate() with another rule table (tests take rules away to see the diagnostic).
std::unique_ptr<Graph> differentiate_with(const Graph& g, const std::string& loss_output, Diagnostics& diags,
                                          GradRule (*rules)(Op));

/// Ops through which no gradient flows by definition (sources, compares, argmax, one_hot,
/// sign): their results are piecewise constant or not real-valued functions of operands.
bool is_non_differentiable(Op op);

/// Differentiable ops that have no gradient rule yet (attention_grad): differentiating through
/// one is an error naming the op.
bool lacks_gradient_rule(Op op);

}  // namespace autodiff
}  // namespace stag
