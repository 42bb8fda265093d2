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
  std::unordered_set<const Node*> absorbed;  ///< epilogue nodes and siblings, lowered by another node
  /// A reduction computed in the same pass as another (reduce.cpp's lanes): a batch norm's
  /// sum(dy) and sum(dy xhat) read dy once.
  std::unordered_map<const Node*, const Node*> sibling;

  /// The buffers a fused value reads in the end: its operands, through other fused values.
  void leaves(const Value* v, std::vector<const Value*>& out) const;
};

/// Counts its inlined values, epilogue nodes and sibling reductions in `stats`.
FusionPlan plan_fusion(const Graph& g, LowerStats& stats);

}  // namespace stag::lowering
