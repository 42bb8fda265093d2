#pragma once
/// Fusion planning: which values are computed where they are read, and which elementwise
/// nodes ride in the store of a matmul, convolution or pooling gradient (epilogues).

#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "compiler/lower/lower.h"
#include "ir/graph.h"

namespace stag::lowering {

struct FusionPlan {
  std::unordered_set<const Value*> fused_away;  ///< values with no buffer: computed where read
  std::unordered_set<const Value*> carriers;    ///< fused away into a matmul/conv epilogue
  std::unordered_map<const Node*, std::vector<const Node*>> epilogue;
  /// Unary elementwise readers of what a producer stores, stored beside it by its kernel.
  std::unordered_map<const Node*, std::vector<const Node*>> followers;
  std::unordered_set<const Node*> absorbed;  ///< epilogue nodes and siblings, lowered by another node
  /// A reduction computed in the same pass as another (reduce.cpp's lanes): a batch norm's
  /// sum(dy) and sum(dy xhat) read dy once.
  std::unordered_map<const Node*, const Node*> sibling;
  /// The graph's updates by size (in the order sizes first appear): each group is one kernel
  /// whose loops over a chunk of elements run each update before any that overwrites what it
  /// reads (lower.cpp), so a value may read the old state of its own group (an optimizer's
  /// parameter, moments and step alike).
  std::vector<std::vector<const Update*>> update_groups;

  /// The buffers a fused value reads in the end: its operands, through other fused values.
  void leaves(const Value* v, std::vector<const Value*>& out) const;
};

/// The graph's updates by size, in the order sizes first appear (FusionPlan::update_groups).
std::vector<std::vector<const Update*>> group_updates(const Graph& g);

/// Counts its inlined values, epilogue nodes and sibling reductions in `stats`.
FusionPlan plan_fusion(const Graph& g, LowerStats& stats);

}  // namespace stag::lowering
