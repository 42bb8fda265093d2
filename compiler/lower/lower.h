#pragma once
/// Lowers a verified graph to the kernel IR: one or more kernels per node.

#include "compiler/lower/kernel_ir.h"
#include "ir/graph.h"

namespace stag {

/// The program has two functions: "init" (inputs: `seed`, an i64 scalar; fills every
/// parameter by its init scheme) and "forward" (the graph's inputs, outputs and updates).
kir::Program lower(const Graph& g);

}  // namespace stag
