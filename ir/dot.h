#pragma once
/// Graphviz pictures of a graph: one box a node, an edge a use, inputs and parameters as
/// ellipses, outputs and updates as sinks. Nodes computed by one kernel can be drawn
/// together as a cluster (`stag ir --dot --stage=kernels`).

#include <string>
#include <vector>

#include "ir/graph.h"

namespace stag {

struct DotCluster {
  std::string label;
  std::vector<std::string> values;  ///< names of the values whose nodes it holds
};

std::string to_dot(const Graph& g, const std::vector<DotCluster>& clusters = {});

}  // namespace stag
