#pragma once
/// Lowers a verified graph to the kernel IR: one or more kernels per node.

#include <string>
#include <utility>
#include <vector>

#include "compiler/lower/kernel_ir.h"
#include "ir/graph.h"

namespace stag {

/// The program has two functions: "init" (inputs: `seed`, an i64 scalar; fills every
/// parameter by its init scheme) and "forward" (the graph's inputs, outputs and updates).
kir::Program lower(const Graph& g);

/// One program with a function per graph (e.g. "forward" for inference and "train_step"),
/// named by the program's first graph. Parameters are shared by name; "init" fills them all.
kir::Program lower(const std::vector<std::pair<std::string, const Graph*>>& functions);

}  // namespace stag
