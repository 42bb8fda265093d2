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
};

/// The graph as DOT text, every label a valid DOT string whose line breaks Graphviz draws.
std::string to_dot(const Graph& g, const std::vector<DotCluster>& clusters = {});

}  // namespace stag
