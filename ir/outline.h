#pragma once
/// Moves a loop body that a frontend wrote straight into its graph into a body of its own. A
/// frontend lowers a loop's statements in the enclosing graph, reading placeholders (input nodes)
/// for the carries and the per-step slices, before it knows which nodes belong to the loop:
/// those that depend on a placeholder do; the others are loop-invariant and stay outside.

#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace stag {

struct OutlineSpec {
  size_t first = 0;                     ///< the body's nodes were made from this node on
  std::vector<Value*> params;           ///< placeholders (input nodes of the graph), in body order
  std::vector<std::string> param_names; ///< their names in the body
  std::vector<Value*> outs;             ///< the body's results: new carries, then per-step outputs
  std::vector<std::string> out_names;
};

struct Outlined {
  std::shared_ptr<Graph> body;
  std::vector<Value*> invariants;  ///< outer values the body reads: its inputs after the params
};

/// Moves the nodes from `first` on that depend on a placeholder into a new body graph (the
/// constants they read are copied in; every other outer value they read becomes an invariant
/// input) and erases them and the placeholders from `g`. The nodes from `first` on that depend
/// on no placeholder stay in `g`: loop-invariant code, computed once.
Outlined outline_body(Graph& g, const OutlineSpec& spec);

}  // namespace stag
