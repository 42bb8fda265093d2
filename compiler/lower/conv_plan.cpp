// The strategy of each convolution op, and the phase planes of a strided convolution.

#include "compiler/lower/conv_plan.h"

#include <algorithm>

#include "compiler/lower/kernel_ir.h"
#include "compiler/target/host.h"

namespace stag::kir {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Transposed convolutions with fewer output channels than this keep the columns: a phase's
// product would have as few rows.
constexpr int64_t kSubpixelChannels = 8;

// Products of more rows than this pack B (codegen's GemmEmitter::kDirectRows); a grid of
// fewer columns than kNarrowGrid reuses each packed panel of A too seldom.
constexpr int64_t kPackedRows = 64;
constexpr int64_t kNarrowGrid = 256;

// Partial weight gradients of every image up to this size stay in cache until they are summed.
constexpr int64_t kPartialBytes = 1 << 20;

// The micro-kernel takes f32 buffers and one group (each group would be its own product);
// more images than kMaxGemmBatches would bloat its offset tables.
bool on_product(const ConvShape& c, const ConvOperands& x) { return x.f32 && x.in_buffers && c.groups == 1 && c.Bn <= kMaxGemmBatches; }

// The kernel covers the whole unpadded image: a 1 x 1 output, one plain product.
bool covers_image(const ConvShape& c) { return c.p[0] == 0 && c.p[1] == 0 && c.KH == c.H && c.KW == c.W; }

}  // namespace

// The padding in front is at most the kernel's reach, so the output is no larger than the
// image plus it (the grid fits the plane), and the reads past the plane stay within the next
// plane's leading padding.
static bool shares_padding(int64_t s, int64_t p, int64_t k, int64_t d) { return s == 1 && p <= (k - 1) * d; }

Phases::Phases(const ConvShape& c)
    : s{c.s[0], c.s[1]}, shared{shares_padding(c.s[0], c.p[0], c.KH, c.d[0]), shares_padding(c.s[1], c.p[1], c.KW, c.d[1])} {
  rows = shared[0] ? c.H + c.p[0] : ceil_div(c.H + 2 * c.p[0], c.s[0]);
  cols = shared[1] ? c.W + c.p[1] : ceil_div(c.W + 2 * c.p[1], c.s[1]);
}

int64_t Phases::spill(const ConvShape& c) const { return std::max<int64_t>(0, max_shift(c) + (c.OH - 1) * cols + c.OW - plane()); }

bool Phases::read(const ConvShape& c, int64_t r) const {
  for (int64_t kh = 0; kh < c.KH; ++kh)
    for (int64_t kw = 0; kw < c.KW; ++kw)
      if (phase(c, kh, kw) == r) return true;
  return false;
}

int64_t Phases::phase(const ConvShape& c, int64_t kh, int64_t kw) const {
  return (kh * c.d[0] % s[0]) * s[1] + kw * c.d[1] % s[1];
}

int64_t Phases::shift(const ConvShape& c, int64_t kh, int64_t kw) const {
  return kh * c.d[0] / s[0] * cols + kw * c.d[1] / s[1];
}


const char* name(ConvPath path) {
  static const char* const names[] = {"loops",        "lines",    "lines_merged",    "im2col",        "dense",
                                      "columns",      "full_columns", "subpixel", "subpixel_merged", "flipped_lines",
                                      "flipped_lines_merged"};
  return names[static_cast<int>(path)];
}

ConvShape flipped(const ConvShape& c) {
  int64_t ph = c.d[0] * (c.KH - 1) - c.p[0], pw = c.d[1] * (c.KW - 1) - c.p[1];
  return {c.Bn, c.O, c.OH, c.OW, c.C, c.H, c.W, c.KH, c.KW, {1, 1}, {ph, pw}, {c.d[0], c.d[1]}, c.groups};
}

int64_t SubpixelAxis::padded() const { return std::max(outputs(0) + first(s - 1), in) + taps - 1; }

// Lines compute a grid as wide as a phase plane and drop the columns past the output's: worth
// it while at most half the grid is dropped; otherwise patches are gathered. A product per
// image of few columns and many rows packs B again for each image (and A too when the weight
// is past the room of the GEMM's packing shared by a call's images), so then the images'
// planes side by side make one wide product, at the cost of the rows and columns
// of each plane past the output's. A dense product of one output channel (a discriminator's
// logit) is computed transposed: a tile of one row and every image's column, not one column
// of the tile's width. A grid with no columns past the output's is the output itself.
ConvPlan conv2d_path(const ConvShape& c, const ConvOperands& x) {
  if (!on_product(c, x)) return {ConvPath::loops};
  if (covers_image(c)) return {.path = ConvPath::dense, .one_row = c.O == 1};
  Phases ph(c);
  int64_t grid = (c.OH - 1) * ph.cols + c.OW;
  if (grid > 2 * c.OH * c.OW) return {ConvPath::im2col};
  if (c.Bn > 1 && c.O > kPackedRows && grid < kNarrowGrid && 2 * ph.plane() <= 3 * grid) return {ConvPath::lines_merged};
  return {.path = ConvPath::lines, .grid_is_output = grid == c.OH * c.OW && x.plain_store};
}

// dw (O x C*KH*KW) sums dy times the tap lines over every output pixel of every image. Per
// image the products are shallow (a plane's pixels), so when the images' partial sums would
// not stay in cache one product runs over all images' pixels instead (their planes side by
// side, a few more zero rows of dy between images). Both operands are contiguous in the
// pixels, the product's depth: in f32 a product at least kDotDepth deep runs as dot products
// over them (kir::Gemm::dot), packing nothing, where the register tile transposed both dy and
// the lines as it packed them; shallower, the horizontal sums would cost more than the packing.
// Dot products sum the images as they run (kir::Gemm::sum_batches), so they need neither the
// partial sums nor the planes side by side: they read the image's copy by image, the one its
// forward convolution made (a copy side by side was a pass over the image of its own), and dy
// without the zero rows between images. That takes enough rows for the threads to split
// (kSummedRows). Not in bf16: rounding both operands to pairs as they are loaded
// (VCVTNE2PS2BF16, one for each row and line of a tile's step) made the ResNet's weight
// gradients slower than VDPBF16PS on packed pairs (measured on Zen 5: layers 2 and 3 by a third).
constexpr int64_t kDotDepth = 256;
constexpr int64_t kSummedRows = 4 * kDotRows;
ConvPlan weight_grad_path(const ConvShape& c, const ConvOperands& x) {
  if (!on_product(c, x)) return {ConvPath::loops};
  if (covers_image(c)) return {ConvPath::dense};
  Phases ph(c);
  if (c.OW * 2 < ph.cols) return {ConvPath::loops};  // the grid would be mostly zeros
  bool merged = c.Bn > 1 && c.Bn * c.O * c.C * c.KH * c.KW * 4 > kPartialBytes;
  int64_t depth = merged ? c.Bn * ph.plane() : c.OH * ph.cols;
  bool dot = !x.bf16 && depth >= kDotDepth;
  if (!merged) return {.path = ConvPath::lines, .partial_sums = c.Bn > 1, .dot = dot};
  if (dot && c.O >= kSummedRows) return {.path = ConvPath::lines, .dot = true, .summed = true};
  return {.path = ConvPath::lines_merged, .dot = dot};
}

// A bf16 product on VDPBF16PS multiplies two k's a lane. On lines, the copy of the image into
// its phase planes (made anyway where there is padding or a stride) can store each pixel of
// two channels as one such pair, so the micro-kernel reads the image in place as it does in
// f32, instead of pairing every tap's line again while packing (nine times the pixels for a
// 3 x 3 kernel). An odd channel count pairs its last channel with zeros: worth it only when the
// wasted channel is a small part. The same holds for a sub-pixel transposed convolution's
// padded input (its channels are those of the convolution's output).
bool channel_pairs(int64_t channels, const ConvShape& c, const ConvOperands& x) {
  return x.bf16 && host_isa() >= Isa::avx512bf16 && c.groups == 1 && (channels % 2 == 0 || channels >= 9);
}

// A weight gradient's depth is the pixels, and each tap's line of the image is a column of B:
// a VDPBF16PS product pairs neighbouring pixels. Paired while packing, every pixel is rounded
// and paired again for each of the KH x KW lines that read it. A copy of the phase planes in
// which each element pairs a pixel with the next serves every line at once (the packing then
// only transposes), but is one more pass over the image: it pays where the packing, not the
// product, holds the time, with few output channels (each packed element multiplies only O
// rows; measured: 5-25% less time at 16 and 32 on the ResNet, none at 64, a loss on the
// AlexNet's 64-192) and more than one tap.
constexpr int64_t kSlidingPairsRows = 32;
bool sliding_pairs(const ConvShape& c, const ConvOperands& x) {
  return x.bf16 && host_isa() >= Isa::avx512bf16 && c.groups == 1 && c.O <= kSlidingPairsRows && c.KH * c.KW > 1;
}

// Here `c` is the convolution this one transposes: its input is our output. Sub-pixel needs
// dilation 1 and enough output channels (each phase's product has that many rows). At stride
// 1 it is a plain convolution by the flipped weight when the padding is within the kernel's
// reach and there is no output_padding, with enough output channels (its product's rows), on
// the forward convolution's lines; otherwise the columns add up as contiguous runs.
ConvPlan conv_transpose2d_path(const ConvShape& c, const ConvOperands& x) {
  if (!on_product(c, x)) return {ConvPath::loops};
  if (c.OH == 1 && c.OW == 1 && covers_image(c)) return {ConvPath::dense};
  if (c.s[0] == 1 && c.s[1] == 1) {
    ConvShape f = flipped(c);
    bool flips = f.p[0] >= 0 && f.p[1] >= 0 && c.H == c.OH - 2 * c.p[0] + c.d[0] * (c.KH - 1) &&
                 c.W == c.OW - 2 * c.p[1] + c.d[1] * (c.KW - 1) && c.C >= kSubpixelChannels;
    ConvPlan forward = flips ? conv2d_path(f, x) : ConvPlan{};
    if (forward.path == ConvPath::lines) return {.path = ConvPath::flipped_lines, .grid_is_output = forward.grid_is_output};
    if (forward.path == ConvPath::lines_merged) return {ConvPath::flipped_lines_merged};
    return {ConvPath::full_columns};
  }
  if (c.d[0] != 1 || c.d[1] != 1 || c.C < kSubpixelChannels) return {ConvPath::columns};
  SubpixelAxis ah(c.s[0], c.p[0], c.KH, c.OH, c.H), aw(c.s[1], c.p[1], c.KW, c.OW, c.W);
  int64_t grid = (ah.outputs(0) - 1) * aw.padded() + aw.outputs(0);
  int64_t window = (ah.outputs(0) + ah.taps - 1) * (aw.outputs(0) + aw.taps - 1);  // a phase's plane, merged
  if (c.Bn > 1 && grid < kNarrowGrid && 2 * window <= 3 * grid) return {ConvPath::subpixel_merged};
  return {ConvPath::subpixel};
}

}  // namespace stag::kir
