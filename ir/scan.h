#pragma once
/// The scan op beside its shape rule (rules::scan in ir/scan.cpp): its reference and the
/// helpers that copy a body into a graph.

#include <vector>

#include "ir/graph.h"
#include "ir/reference.h"

namespace stag {

/// The scan's attributes, read once.
struct ScanShape {
  int64_t carries, xs, length, axis;
  bool reverse;
  size_t invariants;  ///< operands after the carries and the xs

  explicit ScanShape(const Node& n);
  /// The body's outputs after the carries: the per-step outputs.
  size_t ys(const Graph& body) const { return body.outputs.size() - static_cast<size_t>(carries); }
};

/// Appends copies of `body`'s nodes to `dst`, reading `args` for its input and parameter nodes
/// (in node order), under fresh names; returns the values of its outputs in order.
std::vector<Value*> inline_body(Graph& dst, const Graph& body, const std::vector<Value*>& args);

/// A copy of `g` with each of its scans replaced by `length` inlined copies of the body (scans
/// nested in a body stay scans): slices of the per-step inputs in, per-step outputs
/// concatenated. The same function without a loop, for comparing against.
std::unique_ptr<Graph> unroll_scans(const Graph& g);

/// The reference of scan: the body interpreted once a step, in order or reversed.
std::vector<RefTensor> evaluate_scan(const Node& n, const std::vector<const RefTensor*>& operands);

}  // namespace stag
