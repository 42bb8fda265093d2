#pragma once
/// A static cost model of kernels: floating-point operations and memory traffic per call,
/// counted from the loop nests (every trip count is a constant), for the profiler's GFLOP/s
/// and GB/s.

#include <cstdint>

#include "compiler/lower/kernel_ir.h"

namespace stag::kir {

struct Cost {
  /// Floating-point arithmetic executed by one call: every f32/f64 add, sub, mul, div, rem,
  /// min, max, pow and unary function (exp, tanh, ...) counts one. A multiply-add counts two,
  /// as it does in the 2·M·N·K of a GEMM. Compares, selects, casts and integer (index)
  /// arithmetic count nothing.
  double flops = 0;
  /// Bytes loaded and stored by one call: element size times executed loads and stores. An
  /// upper bound on the memory traffic — it assumes no reuse in registers or caches, so a
  /// matmul's inner loop counts its operands once per use, not once per element.
  double bytes = 0;
};

/// The cost of one call of `k` over its whole extent, within program `p` (for buffer types).
Cost cost(const Program& p, const Kernel& k);

}  // namespace stag::kir
