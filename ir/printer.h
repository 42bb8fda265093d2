#pragma once
/// Prints a graph in the IR's text form (the grammar is in docs/ir.md). The printer is the
/// canonical form: parse(print(g)) prints to the same bytes.

#include <string>

#include "ir/graph.h"

namespace stag {

std::string print(const Graph& g);
/// One node's line, without indentation or newline.
std::string print(const Node& n);

}  // namespace stag
