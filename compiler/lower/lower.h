#pragma once
/// Lowers a verified graph to the kernel IR: one or more kernels per node.

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "compiler/lower/kernel_ir.h"
#include "ir/graph.h"

namespace stag {

/// A node of an op the compiled stages cannot run yet (a scan): a user error, reported at the
/// node, not a bug.
struct NoLowering : std::runtime_error {
  Loc loc;
  std::string node;  ///< the node's first result, `%name`
  NoLowering(const std::string& message, Loc loc, std::string node)
      : std::runtime_error(message), loc(std::move(loc)), node(std::move(node)) {}
};

struct LowerOptions {
  /// Elementwise chains and broadcasts are computed inside the kernels that read them, and
  /// elementwise consumers of products, convolutions and batch norms in their stores (epilogues).
  bool fuse = false;
  /// After every kernel, check that what it stored is finite (and the inputs and parameters on
  /// entry): the first NaN or infinity fails the call naming its kernel and graph node.
  bool check_numerics = false;
};

/// What lowering made, for --pass-stats.
struct LowerStats {
  int64_t kernels = 0;       ///< in every function but init
  int64_t inlined = 0;       ///< values computed inside the kernels that read them
  int64_t epilogue_ops = 0;  ///< elementwise nodes applied in a matmul's or convolution's store
  int64_t sibling_reductions = 0;  ///< reductions computed in another's pass over the same input
};

/// The program has two functions: "init" (inputs: `seed`, an i64 scalar; fills every
/// parameter by its init scheme) and "forward" (the graph's inputs, outputs and updates).
kir::Program lower(const Graph& g);

/// One program with a function per graph (e.g. "forward" for inference and "train_step"),
/// named by the program's first graph. Parameters are shared by name; "init" fills them all.
kir::Program lower(const std::vector<std::pair<std::string, const Graph*>>& functions, const LowerOptions& options = {},
                   LowerStats* stats = nullptr);

}  // namespace stag
