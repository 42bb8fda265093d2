#pragma once
/// How the convolution ops run: for each op, one function lists the conditions of every
/// strategy and picks one; the geometry the strategies share (an image split into the phases
/// of its stride) sits beside them.

#include <cstdint>

namespace stag::kir {

/// A convolution's sizes: input [Bn, C, H, W], weight [O, C, KH, KW], output [Bn, O, OH, OW],
/// with stride, padding and dilation per spatial axis. A transposed convolution is described
/// by the convolution it transposes (its output is that convolution's input).
struct ConvShape {
  int64_t Bn, C, H, W, O, OH, OW, KH, KW;
  int64_t s[2], p[2], d[2];
  int64_t groups = 1;
};

/// What the micro-kernel needs of the operands beyond their shape.
struct ConvOperands {
  bool f32 = false;         ///< the result (so the operands) is f32
  bool in_buffers = false;  ///< both operands are buffers in row-major order, not computed where read
  bool plain_store = false;  ///< no bias and no epilogue ride in the result's store
  bool bf16 = false;         ///< the product multiplies bf16-rounded factors (autocast)
};

/// The padded image as s[0] x s[1] phase planes: phase (rh, rw) holds padded pixel
/// (i*s[0] + rh, j*s[1] + rw) at (i, j), zeros past the image. Tap (kh, kw) of the strided
/// convolution then reads one phase at stride 1, from the tap's shift on. On a stride-1 axis
/// whose padding is within the kernel's reach, the plane stops where the image does (`shared`):
/// a read past a row's end lands on the next row's leading zeros, one past the last row on the
/// next plane's top zero rows (past the buffer's last plane, on its slack: spill()), so the
/// padding between two rows or two images is stored and multiplied once.
struct Phases {
  int64_t s[2], rows, cols;
  bool shared[2];
  explicit Phases(const ConvShape& c);
  int64_t count() const { return s[0] * s[1]; }
  int64_t plane() const { return rows * cols; }
  /// Index of the phase tap (kh, kw) reads, and where it starts within that phase's plane.
  int64_t phase(const ConvShape& c, int64_t kh, int64_t kw) const;
  int64_t shift(const ConvShape& c, int64_t kh, int64_t kw) const;
  /// The largest shift: how far a stride-1 run over `cols`-wide rows reads past a plane.
  int64_t max_shift(const ConvShape& c) const { return shift(c, c.KH - 1, c.KW - 1); }
  /// How far the lines of the output's grid (OH rows of `cols`) read past the last plane.
  int64_t spill(const ConvShape& c) const;
  /// Whether any tap reads phase r.
  bool read(const ConvShape& c, int64_t r) const;
};

/// One axis of a strided transposed convolution (dilation 1) split by output phase: output
/// s*u + r is a stride-1 correlation of the input padded by taps - 1 in front, from padded row
/// u + first(r) on, with kernel rows tap(r, j) for j < taps (none where tap(r, j) >= k).
struct SubpixelAxis {
  int64_t s, p, k, in, out, taps;
  SubpixelAxis(int64_t s, int64_t p, int64_t k, int64_t in, int64_t out) : s(s), p(p), k(k), in(in), out(out), taps((k + s - 1) / s) {}
  int64_t first(int64_t r) const { return (r + p) / s; }
  int64_t tap(int64_t r, int64_t j) const { return (r + p) % s + s * (taps - 1 - j); }
  /// How many outputs phase r has.
  int64_t outputs(int64_t r) const { return (out - r + s - 1) / s; }
  /// The padded input's size: its data, and every phase's reach.
  int64_t padded() const;
};

enum class ConvPath {
  loops,         ///< plain loop nests: any dtype, groups, operands computed where read
  lines,         ///< one product per image over the phase planes' tap lines (nothing gathered)
  lines_merged,  ///< as lines, one product over every image's planes side by side
  im2col,        ///< one product per image, patches gathered while packing
  dense,         ///< the kernel covers the unpadded image (a 1 x 1 output): a plain product
  columns,       ///< transposed: per image a product into tap columns, scattered onto the output
  full_columns,  ///< transposed, stride 1: the columns added onto the full plane as runs
  subpixel,      ///< transposed, strided: per output phase a stride-1 convolution on the lines
  subpixel_merged,  ///< as subpixel, one product a phase over every image's planes side by side
  flipped_lines,         ///< transposed, stride 1: the convolution by the flipped weight (flipped()), as lines
  flipped_lines_merged,  ///< as flipped_lines, one product over every image's planes side by side
};

/// A stride-1 transposed convolution `c` (described by the convolution it transposes) as the
/// convolution it equals: of its input by the weight flipped in both axes with input and output
/// channels swapped, padded by the kernel's reach less the padding.
ConvShape flipped(const ConvShape& c);

/// The strategy's name, as the kernel IR prints it.
const char* name(ConvPath path);

/// A strategy and the choices made within it.
struct ConvPlan {
  ConvPath path = ConvPath::loops;
  bool one_row = false;         ///< dense, one output channel: out transposed, one row holding every image
  bool grid_is_output = false;  ///< lines: the product's grid is the output (no columns to drop, a plain store)
  bool partial_sums = false;    ///< weight gradient's lines: a product per image, their sums added at the end
  bool dot = false;             ///< weight gradient's lines: dot products over the pixels (kir::Gemm::dot)
  bool summed = false;          ///< weight gradient's lines, dot: a product per image, summed as it runs (kir::Gemm::sum_batches)
};

/// The strategy of each op: every condition of every path and choice, in one function an op.
ConvPlan conv2d_path(const ConvShape& c, const ConvOperands& x);
ConvPlan weight_grad_path(const ConvShape& c, const ConvOperands& x);
ConvPlan conv_transpose2d_path(const ConvShape& c, const ConvOperands& x);
/// Whether a product on lines reads its image of `channels` channels (a convolution's input,
/// or a sub-pixel transposed convolution's) as bf16 channel pairs (kir::Gemm::pairs).
bool channel_pairs(int64_t channels, const ConvShape& c, const ConvOperands& x);
/// Whether a weight gradient on lines reads its image as sliding bf16 pixel pairs (kir::Gemm::pairs
/// with a transposed B).
bool sliding_pairs(const ConvShape& c, const ConvOperands& x);

}  // namespace stag::kir
