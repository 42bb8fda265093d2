#pragma once
/// Graphviz pictures of a graph, ranked top to bottom: one box a node, labelled with its op on
/// one line and each result (`%name: type`) on its own; an edge a use; inputs as ellipses on the
/// first rank, parameters as yellow ellipses grouped in one dashed box, outputs and updates as
/// houses on the last rank. Nodes computed by one kernel can be drawn together as a cluster
/// (`stag ir --dot --stage=kernels`).

#include <string>
#include <vector>

#include "ir/graph.h"

namespace stag {

struct DotCluster {
  std::string label;                ///< its title; a '\n' starts a new line
  std::vector<std::string> values;  ///< names of the values whose nodes it holds
  double share = 0;                 ///< a kernel's share of its function's time (from a profile), else 0
};

/// The graph as DOT text, every label a valid DOT string whose line breaks Graphviz draws.
std::string to_dot(const Graph& g, const std::vector<DotCluster>& clusters = {});

/// A large graph drawn by its layers, as TensorBoard's graph view shows a model: each
/// model-level layer (`wte`, `h.0`, `lm_head`, by its nodes' `loc(... in "h.0.attn")`) one box
/// a phase, its forward, backward and update side by side on one rank, in the forward's order
/// top to bottom; the optimizer's shared nodes one box; model-level expressions and inputs
/// boxes of their own. Edges join boxes a value crosses, forward ones labelled with its type.
/// Kernels (`clusters`) are counted in the box holding most of their nodes, with their shares.
std::string to_dot_layers(const Graph& g, const std::vector<DotCluster>& clusters = {});

/// One layer's nodes in full: `h.0` or `h.0.attn` its forward and backward as clusters side by
/// side, `h.0:forward`, `h.0:backward` or `h.0:update` one phase (an update left to right, a
/// chain a parameter), `optimizer` the optimizer's shared nodes; kernels as clusters within them,
/// and the values that cross the border as notes above (where they come from) and below (where
/// they go). Throws std::invalid_argument naming the layers there are when none is `scope`.
std::string to_dot_scope(const Graph& g, const std::string& scope, const std::vector<DotCluster>& clusters = {});

/// The model-level layers of `g` in the order of their first node, and `optimizer` if it has one.
std::vector<std::string> dot_layers(const Graph& g);

}  // namespace stag
