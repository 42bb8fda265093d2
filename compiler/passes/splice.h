#pragma once
/// Splicing a rewrite into a graph: the nodes a pass appended take the place of the node they
/// replace, so the graph stays in topological order without a re-sort.

#include <cstddef>
#include <vector>

#include "ir/graph.h"

namespace stag {

/// Moves the nodes appended from position `from` on to just after `at`.
void place_after(Graph& g, const Node& at, size_t from);

/// Moves the nodes appended from `from` on to `old`'s place, points every use of `old`'s
/// result i at `with[i]` and removes `old`.
void splice(Graph& g, Node& old, size_t from, const std::vector<Value*>& with);

}  // namespace stag
