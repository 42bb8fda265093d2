#pragma once
/// Helpers that lowerings share: a kernel under construction, loop nests over shapes,
/// broadcast indexing, and the counter-based generator as scalar expressions.

#include <algorithm>
#include <array>
#include <functional>
#include <string>
#include <vector>

#include "compiler/lower/kernel_ir.h"

namespace stag::kir {

Dims strides_of(const Dims& dims);

/// A thread's smallest share of a parallel kernel (Kernel::grain), as work per chunk: this
/// many elements of a loop nest, or this many multiply-adds of a product. Smaller chunks
/// cost more in the thread pool's hand-off than they save.
constexpr int64_t kGrainElements = 16384;
constexpr int64_t kGrainFlops = int64_t{1} << 18;
/// How many iterations of `per_iteration` work make up `budget` (at least one).
inline int64_t grain_of(int64_t budget, int64_t per_iteration) { return std::max<int64_t>(1, budget / std::max<int64_t>(1, per_iteration)); }

/// A kernel being built: variables by name, statements appended to its body.
struct KernelBuilder {
  Kernel k;

  KernelBuilder(std::string name, std::string origin);
  int new_var(const std::string& name, DType t = DType::i64);
  E v(int var) const { return kir::var(var, k.vars[var].type); }
};

/// Statements of a loop nest over `dims`: var 0 of the kernel runs over dims[0] (the kernel's
/// parallel extent); the others become `for` loops. `body` gets one index per dimension.
/// A scalar shape gives one iteration with no indices.
void loop_nest(KernelBuilder& kb, const Dims& dims, const std::function<std::vector<Stmt>(const std::vector<E>&)>& body,
               int64_t grain_elements = kGrainElements);

/// The flat offset of `idx` in a row-major tensor of `dims`.
E offset(const std::vector<E>& idx, const Dims& dims);
/// The flat offset in `in_dims` of output index `idx` under numpy broadcasting.
E broadcast_offset(const std::vector<E>& idx, const Dims& out_dims, const Dims& in_dims);

/// exp(x) where x may be far below its underflow (a causal mask's -inf in a softmax, a logit
/// far under its row's max): those arguments are answered 0 by a compare, exactly what expf
/// gives them, and exp sees 0 instead. glibc's vector expf sends a lane outside its fast range
/// (|x| > 87) to the scalar expf one lane at a time, and a causal mask puts -inf in most of
/// the vectors of a row: GPT's attention softmax took 3x as long.
E exp_masked(E x);

/// Philox4x32-10 draws of ir/random.h as i64 expressions of (seed, key, index).
std::array<E, 2> philox_bits(E seed, E key, E index);
/// Uniform in [0, 1) (24 bits) and standard normal, as f64 expressions.
E philox_uniform(E seed, E key, E index);
E philox_normal(E seed, E key, E index);

}  // namespace stag::kir
