#pragma once
/// Prints a graph in the IR's text form (the grammar is in docs/ir.md). The printer is the
/// canonical form: parse(print(g)) prints to the same bytes.

#include <string>

#include "ir/graph.h"

namespace stag {

std::string print(const Graph& g);
/// One node's line, without indentation or newline. A node with a body continues with ` {`,
/// the body's lines indented by `indent` + 4 spaces, and `}` indented by `indent` + 2 (the
/// node's own line sits at `indent` + 2 in a graph).
std::string print(const Node& n, int indent = 0);

}  // namespace stag
