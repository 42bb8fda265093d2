#pragma once
/// The matrix product kernel: a register-tiled micro-kernel over packed panels of B, emitted
/// as LLVM IR with the host's vector width (the BLIS recipe: MR rows times NR columns of C in
/// registers, a block of KC-deep panels of B in L2, an MR x KC micro-panel of A in L1).

#include <string>

#include "compiler/lower/kernel_ir.h"

namespace llvm {
class Function;
class Module;
class Value;
class IRBuilderBase;
}  // namespace llvm

namespace stag {

/// The register tile for the host: vector width in f32 lanes, vectors per row of the tile,
/// rows of the tile, the depth of a packed panel, and how many panels of B are packed at once.
struct GemmTile {
  int lanes = 8, vectors = 2, rows = 6, depth = 256;
  int panels = 16;  ///< panels of B packed together (a block of panels * columns() columns)
  /// bf16 products run on VDPBF16PS (pairs of k in each 32-bit lane); otherwise their
  /// operands are rounded to bf16 in packing and multiplied by the f32 micro-kernel.
  bool bf16_dot = false;
  int columns() const { return lanes * vectors; }
};

/// The tile for the micro-kernels' ISA (host_isa(): the host's best, or lower by STAG_ISA).
GemmTile host_gemm_tile();

/// The function `void(ptr A, ptr B, ptr C, i64 lo, i64 hi, i64 col_lo, i64 col_hi, i64 M, i64 N,
/// i64 K, ptr a_offsets, ptr b_offsets, ptr b_lines, i64 transposes, i64 batches)` that computes
/// rows [lo, hi) and columns [col_lo, col_hi) of the batch-flattened C of a product laid out as
/// `g` (convolution geometry, transposes; of the one C of kir::Gemm::sum_batches); defined once
/// per module for each layout. The offset tables hold each batch's element offset of A and of B;
/// b_lines is gemm_lines(); transposes is gemm_transposes(g); batches is g.batches().
llvm::Function* gemm_function(llvm::Module& m, const kir::Gemm& g, const GemmTile& tile);
/// Whether one function serves g's product whatever its transposes (they are then read from its
/// argument): f32 products of matrices, whose layouts differ only in strides and in how B's
/// panels are packed. Three functions (nn, nt, tn) took a third of a GRU step's compile.
bool gemm_transposes_vary(const kir::Gemm& g);
/// The transposes argument of g's function: 1 if A is transposed, plus 2 if B is.
inline int64_t gemm_transposes(const kir::Gemm& g) { return (g.ta ? 1 : 0) | (g.tb ? 2 : 0); }
/// The register tile for g on a host with tile `host` (fewer rows for products of fewer rows).
GemmTile gemm_tile_for(const kir::Gemm& g, const GemmTile& host);
/// The name of the GEMM function serving g: one per operand layout (image geometry, tile rows).
std::string gemm_layout_name(const kir::Gemm& g, const GemmTile& host);
/// x (f32, scalar or vector) rounded to bf16 as VCVTNEPS2BF16 does (to nearest, ties to even;
/// NaNs stay NaNs), as the bits of an f32 whose low 16 bits are zero; any ISA.
llvm::Value* bf16_bits(llvm::IRBuilderBase& b, llvm::Value* x);
/// The same as an f32.
llvm::Value* round_to_bf16(llvm::IRBuilderBase& b, llvm::Value* x);
/// The table of where each line of B starts (kir::Gemm::b_lines) for g's function, shared
/// within the module; a null pointer for a product that does not read B by lines.
llvm::Value* gemm_lines(llvm::Module& m, const kir::Gemm& g);
/// A constant table of batch offsets (shared within the module); {0} for a single product.
llvm::Value* gemm_offsets(llvm::Module& m, const std::vector<int64_t>& offsets);

}  // namespace stag
