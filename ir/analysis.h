#pragma once
/// Small questions about a graph that several tools ask.

#include <cstdint>
#include <map>

#include "ir/graph.h"

namespace stag {

/// For an integer value, the bound its uses put on it, followed through reshapes and other ops
/// that move values: below an embedding's row count, a classification loss's class count or
/// one_hot's num_classes. `fallback` when no use bounds it.
int64_t index_bound(const Graph& g, const Value* v, int64_t fallback);

/// How many times each value is read: as an operand, an output, an update's new value or its
/// target.
std::map<const Value*, int> use_counts(const Graph& g);

}  // namespace stag
