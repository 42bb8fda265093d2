#pragma once
/// Checks every structural and shape invariant of a graph.

#include "ir/diag.h"
#include "ir/graph.h"
#include "ir/parser.h"

namespace stag {

/// Reports each violation to `diags` and returns true when there is none. A violation is
/// reported at the node's place in the IR text when `positions` is given, else at its
/// `loc(...)` in the model source, else by the node's first result name.
bool verify(const Graph& g, Diagnostics& diags, const SourceMap* positions = nullptr);

}  // namespace stag
