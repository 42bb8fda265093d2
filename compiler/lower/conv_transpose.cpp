// Transposed convolution, by the strategy conv_plan.h picks: a dense product, columns and a
// scatter, sub-pixel phases, or plain loops.

#include <algorithm>
#include <functional>

#include "compiler/lower/conv.h"
#include "ir/geometry.h"

namespace stag::lowering {

using namespace kir;

static void conv_transpose2d_dense(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, const ConvShape& c);
static void add_channel_bias(LowerContext& cx, const Node& n, int out, int bias, int64_t planes, int64_t size, int64_t channels);
static void conv_transpose2d_subpixel(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, const ConvShape& c, bool merged);
static int phase_weights(LowerContext& cx, const Node& n, int w_buf, const ConvShape& c, const SubpixelAxis& ah, const SubpixelAxis& aw, bool pairs);
static void interleave_phases(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, int grid, const ConvShape& c, const SubpixelAxis& ah,
                       const SubpixelAxis& aw, int64_t cols, bool channel_major, const std::function<E(E, int64_t, E)>& grid_at);
static void conv_transpose2d_loops(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
static void conv_transpose2d_flipped(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, const ConvShape& c, bool merged,
                                     bool grid_is_output);

// A transposed convolution's columns: cols[b] (M = Co*KH*KW rows x N) = w^T times image b
// (Ci x N), one image a p (Gemm::Split::row_blocks), so the kernel's body adds them up while in cache.
static Gemm image_columns(int w_buf, int image, int cols, int64_t Bn, int64_t M, int64_t N, int64_t Ci) {
  Gemm gm;
  gm.a = w_buf, gm.b = image, gm.c = cols, gm.M = M, gm.N = N, gm.K = Ci, gm.ta = true;
  gm.split_by(Gemm::Split::row_blocks, M);
  gm.a_offsets.assign(static_cast<size_t>(Bn), 0);
  for (int64_t b = 0; b < Bn; ++b) gm.b_offsets.push_back(b * Ci * N);
  return gm;
}

// The transposed convolution as a product and a scatter, one image at a time (while its
// columns are in cache): cols[b] (Co*KH*KW x H*W) = w^T (w is Ci x Co*KH*KW) times x[b]
// (Ci x H*W) on the micro-kernel; then every output plane of the image adds the columns of
// the taps that reach it.
static void conv_transpose2d_columns(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  const Type xt = cx.B(xs[0]).type, wt = cx.B(xs[1]).type, ot = cx.B(out).type;
  int x_buf = cx.materialized(xs[0]), w_buf = cx.materialized(xs[1]);
  int64_t Bn = xt.dims[0], Ci = xt.dims[1], H = xt.dims[2], W = xt.dims[3], Co = ot.dims[1], OH = ot.dims[2], OW = ot.dims[3];
  int64_t KH = wt.dims[2], KW = wt.dims[3], M = Co * KH * KW, N = H * W;
  const Window2d win = Window2d::of(n);
  const Ints &s = win.stride, &p = win.padding, &d = win.dilation;
  int cols = cx.new_buffer(n.result()->name + ".cols", {DType::f32, {Bn, M, N}}, BufKind::Temp);
  KernelBuilder kb("conv_transpose2d", cx.origin(n));
  kb.k.gemm = image_columns(w_buf, x_buf, cols, Bn, M, N, Ci);
  int co = kb.new_var("co"), ih = kb.new_var("ih"), iw = kb.new_var("iw"), q = kb.new_var("q");
  // [lo, hi): the i in [0, size) with 0 <= i*stride - pad + tap*dil < out_size.
  auto landing = [](int64_t size, int64_t out_size, int64_t stride, int64_t pad, int64_t shift) {
    int64_t lo = 0, hi = size;
    while (lo < hi && lo * stride - pad + shift < 0) ++lo;
    while (hi > lo && (hi - 1) * stride - pad + shift >= out_size) --hi;
    return std::pair{lo, hi};
  };
  // Tap (kh, kw) of input pixel (ih, iw) lands on (ih*s - p + kh*d, iw*s - p + kw*d). The
  // pixels that land inside are a static range per tap, so the inner loop is a plain row
  // update, and every output pixel still sums its taps in (kh, kw) order.
  loop_nest(kb, {Bn}, [&](const std::vector<E>& image) {
    E out_plane = offset({image[0], kb.v(co)}, {Bn, Co, OH * OW});
    E init = xs.size() == 3 ? cx.ld(xs[2], kb.v(co)) : zero_of(DType::f32);
    std::vector<Stmt> body = {for_(q, 0, OH * OW, {store(out, add(out_plane, kb.v(q)), init)})};
    for (int64_t th = 0; th < KH; ++th)
      for (int64_t tw = 0; tw < KW; ++tw) {
        auto [h0, h1] = landing(H, OH, s[0], p[0], th * d[0]);
        auto [w0, w1] = landing(W, OW, s[1], p[1], tw * d[1]);
        if (h0 >= h1 || w0 >= w1) continue;
        E row = offset({image[0], kb.v(co), int_(th * KW + tw), kb.v(ih)}, {Bn, Co, KH * KW, H, W});
        E oh = add(mul(kb.v(ih), int_(s[0])), int_(th * d[0] - p[0]));
        E at = offset({image[0], kb.v(co), oh, add(mul(kb.v(iw), int_(s[1])), int_(tw * d[1] - p[1]))}, {Bn, Co, OH, OW});
        body.push_back(for_(ih, h0, h1, {for_(iw, w0, w1, {store(out, at, add(cx.ld(out, at), cx.ld(cols, add(row, kb.v(iw)))))})}));
      }
    return std::vector<Stmt>{for_(co, 0, Co, body)};
  }, 1);
  kb.k.grain = grain_of(kGrainFlops, M * N * Ci);
  kb.k.parallel = Bn > kb.k.grain;
  cx.emit(std::move(kb));
}

// Stride 1: the image is widened with zero columns to the full output's width Wf (every tap
// landing inside), so each tap's columns add to the full plane as one contiguous run
// (shifted by the tap; a widened column's zeros land harmlessly on the next row), which
// vectorizes; the output is then the full plane cropped by the padding, plus the bias.
static void conv_transpose2d_full(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, int x_buf, int w_buf) {
  const Type xt = cx.B(xs[0]).type, wt = cx.B(xs[1]).type, ot = cx.B(out).type;
  int64_t Bn = xt.dims[0], Ci = xt.dims[1], H = xt.dims[2], W = xt.dims[3], Co = ot.dims[1], OH = ot.dims[2], OW = ot.dims[3];
  int64_t KH = wt.dims[2], KW = wt.dims[3], M = Co * KH * KW;
  const Window2d win = Window2d::of(n);
  const Ints &p = win.padding, &d = win.dilation;
  int64_t Hf = H + d[0] * (KH - 1), Wf = W + d[1] * (KW - 1), N = H * Wf;
  int64_t plane = Hf * Wf + d[1] * (KW - 1);  // the last tap's run reaches this far
  int image = x_buf;
  if (Wf != W) {
    image = cx.new_buffer(n.result()->name + ".widened", {DType::f32, {Bn, Ci, H, Wf}}, BufKind::Temp);
    KernelBuilder kw_("conv_transpose2d_widen", cx.origin(n));
    loop_nest(kw_, {Bn * Ci}, [&](const std::vector<E>& i) {
      return padded_plane(cx, kw_, image, mul(i[0], int_(H * Wf)), H, Wf, x_buf, mul(i[0], int_(H * W)), H, W, 0, 0);
    }, grain_of(kGrainElements, H * Wf));
    cx.emit(std::move(kw_));
  }
  int cols = cx.new_buffer(n.result()->name + ".cols", {DType::f32, {Bn, M, N}}, BufKind::Temp);
  int full = cx.new_buffer(n.result()->name + ".full", {DType::f32, {Bn, Co, plane}}, BufKind::Temp);
  KernelBuilder kb("conv_transpose2d", cx.origin(n));
  kb.k.gemm = image_columns(w_buf, image, cols, Bn, M, N, Ci);
  int co = kb.new_var("co"), q = kb.new_var("q"), oh = kb.new_var("oh"), ow = kb.new_var("ow");
  loop_nest(kb, {Bn}, [&](const std::vector<E>& img) {
    E full_at = offset({img[0], kb.v(co)}, {Bn, Co, plane});
    std::vector<Stmt> body = {for_(q, 0, plane, {store(full, add(full_at, kb.v(q)), zero_of(DType::f32))})};
    for (int64_t th = 0; th < KH; ++th)
      for (int64_t tw = 0; tw < KW; ++tw) {
        E row = offset({img[0], kb.v(co), int_(th * KW + tw)}, {Bn, Co, KH * KW, N});
        E at = add(full_at, add(int_(th * d[0] * Wf + tw * d[1]), kb.v(q)));
        body.push_back(for_(q, 0, N, {store(full, at, add(cx.ld(full, at), cx.ld(cols, add(row, kb.v(q)))))}));
      }
    // Output (oh, ow) is full (oh + p, ow + p); output_padding's extra rows and columns
    // past the full plane get no tap.
    E fh = add(kb.v(oh), int_(p[0])), fw = add(kb.v(ow), int_(p[1]));
    E inside = and_(lt(fh, int_(Hf)), lt(fw, int_(Wf)));
    E v = select(inside, cx.ld(full, add(full_at, select(inside, add(mul(fh, int_(Wf)), fw), int_(0)))), zero_of(DType::f32));
    if (xs.size() == 3) v = add(v, cx.ld(xs[2], kb.v(co)));
    E out_at = offset({img[0], kb.v(co), kb.v(oh), kb.v(ow)}, {Bn, Co, OH, OW});
    body.push_back(for_(oh, 0, OH, {for_(ow, 0, OW, {store(out, out_at, v)})}));
    return std::vector<Stmt>{for_(co, 0, Co, body)};
  }, 1);
  kb.k.grain = grain_of(kGrainFlops, M * N * Ci);
  kb.k.parallel = Bn > kb.k.grain;
  cx.emit(std::move(kb));
}

void conv_transpose2d(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  const Type wt = cx.B(xs[1]).type;
  // Described by the convolution it transposes: that one's input is our output.
  ConvShape c = conv_shape(n, cx.B(out).type, cx.B(xs[0]).type, wt.dims[2], wt.dims[3]);
  ConvPlan plan = take(cx, conv_transpose2d_path(c, conv_operands(cx, n, xs, out)));
  switch (plan.path) {
    case ConvPath::dense: return conv_transpose2d_dense(cx, n, xs, out, c);
    case ConvPath::subpixel: return conv_transpose2d_subpixel(cx, n, xs, out, c, false);
    case ConvPath::subpixel_merged: return conv_transpose2d_subpixel(cx, n, xs, out, c, true);
    case ConvPath::flipped_lines: return conv_transpose2d_flipped(cx, n, xs, out, c, false, plan.grid_is_output);
    case ConvPath::flipped_lines_merged: return conv_transpose2d_flipped(cx, n, xs, out, c, true, false);
    case ConvPath::full_columns: return conv_transpose2d_full(cx, n, xs, out, cx.materialized(xs[0]), cx.materialized(xs[1]));
    case ConvPath::columns: return conv_transpose2d_columns(cx, n, xs, out);
    default: return conv_transpose2d_loops(cx, n, xs, out);
  }
}

// Stride 1: the convolution of the input by wf[co, ci, kh, kw] = w[ci, co, KH-1-kh, KW-1-kw]
// (flipped()), on conv2d's lines; the flipped weight is a small copy.
static void conv_transpose2d_flipped(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, const ConvShape& c, bool merged,
                                     bool grid_is_output) {
  int64_t Ci = c.O, Co = c.C, taps = c.KH * c.KW;
  int w_buf = cx.materialized(xs[1]);
  int wf = cx.new_buffer(n.result()->name + ".flipped", {DType::f32, {Co, Ci, c.KH, c.KW}}, BufKind::Temp);
  KernelBuilder kw("conv_transpose2d_flip", cx.origin(n));
  int t = kw.new_var("t");
  loop_nest(kw, {Co, Ci}, [&](const std::vector<E>& i) {
    E from = add(offset({i[1], i[0]}, {Ci, Co, taps}), sub(int_(taps - 1), kw.v(t)));
    return std::vector<Stmt>{for_(t, 0, taps, {store(wf, add(offset({i[0], i[1]}, {Co, Ci, taps}), kw.v(t)), cx.ld(w_buf, from))})};
  });
  cx.emit(std::move(kw));
  std::vector<int> operands = {xs[0], wf};
  if (xs.size() == 3) operands.push_back(xs[2]);
  conv2d_lines(cx, n, operands, out, flipped(c), merged, grid_is_output);
}

// A 1 x 1 input to an output the kernel's size: out (Bn x Co*KH*KW) = x (Bn x Ci) times w
// (Ci x Co*KH*KW).
static void conv_transpose2d_dense(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, const ConvShape& c) {
  Gemm gm;
  gm.a = cx.materialized(xs[0]), gm.b = cx.materialized(xs[1]), gm.c = out, gm.M = c.Bn, gm.N = c.C * c.KH * c.KW, gm.K = c.O;
  emit_product(cx, n, "conv_transpose2d", gm);
  if (xs.size() == 3) add_channel_bias(cx, n, out, xs[2], c.Bn * c.C, c.H * c.W, c.C);
}

// Adds bias[channel] to every element of each of `planes` planes (channels cycle).
static void add_channel_bias(LowerContext& cx, const Node& n, int out, int bias, int64_t planes, int64_t size, int64_t channels) {
  KernelBuilder kb("conv_transpose2d_bias", cx.origin(n));
  int q = kb.new_var("q");
  loop_nest(kb, {planes}, [&](const std::vector<E>& pl) {
    E at = add(mul(pl[0], int_(size)), kb.v(q));
    return std::vector<Stmt>{for_(q, 0, size, {store(out, at, add(cx.ld(out, at), cx.ld(bias, bin(Bin::rem, pl[0], int_(channels)))))})};
  });
  cx.emit(std::move(kb));
}

// A strided transposed convolution as one stride-1 convolution per output phase (sub-pixel,
// SubpixelAxis): every phase of every image is a batch of one product whose A is that
// phase's taps of the weight and whose B is the padded input read through tap lines (the
// phase's first row and column in its offset); its grid, as wide as the padded input, is
// then interleaved into the output. The batches are every image's phases, or `merged`, the
// phases of one product over every image's padded planes side by side.
// A sub-pixel convolution's padded input: planes of rows x cols, image by image ([Bn, Ci,
// plane]), one copy that every phase reads from its first row and column on; or merged,
// channel by channel with a copy a phase ([phases, Ci, Bn, plane]), each only the window its
// phase reads, so no image's part of the grid holds columns only another phase reaches.
// With `pairs` (channel_pairs), an element holds a pixel of channels 2q and 2q + 1 as a bf16
// pair, and there are half the channels.
struct SubpixelPlanes {
  int64_t rows, cols, image_stride, channel_stride, phase_stride;
  bool pairs;
  int64_t plane() const { return rows * cols; }
};
static SubpixelPlanes subpixel_planes(const ConvShape& c, const SubpixelAxis& ah, const SubpixelAxis& aw, bool merged, bool pairs) {
  int64_t channels = pairs ? (c.O + 1) / 2 : c.O;
  if (!merged) return {ah.padded(), aw.padded(), channels * ah.padded() * aw.padded(), ah.padded() * aw.padded(), 0, pairs};
  int64_t rows = ah.outputs(0) + ah.taps - 1, cols = aw.outputs(0) + aw.taps - 1;
  return {rows, cols, rows * cols, c.Bn * rows * cols, channels * c.Bn * rows * cols, pairs};
}

// The image [Bn, C, HW] as bf16 channel pairs [Bn, (C + 1) / 2, HW] (channel_pair_read), each
// pixel rounded once: a contiguous loop, for copies that would otherwise pair it again each.
static int channel_pair_image(LowerContext& cx, const Node& n, int src, int64_t Bn, int64_t C, int64_t HW) {
  int64_t Q = (C + 1) / 2;
  int dst = cx.new_buffer(n.result()->name + ".pairs", {DType::i32, {Bn * Q * HW}}, BufKind::Temp);
  KernelBuilder kp("conv_channel_pairs", cx.origin(n));
  int j = kp.new_var("j");
  loop_nest(kp, {Bn, Q}, [&](const std::vector<E>& i) {
    std::function<E(E)> read = channel_pair_read(cx, src, i[1], C, HW);
    E from = add(offset({i[0], mul(i[1], int_(2))}, {Bn, C, HW}), kp.v(j));
    return std::vector<Stmt>{for_(j, 0, HW, {store(dst, add(offset(i, {Bn, Q, HW}), kp.v(j)), read(from))})};
  }, grain_of(kGrainElements, HW));
  cx.emit(std::move(kp));
  return dst;
}

// With pairs, the copies of a merged input (one a phase) read the pixels paired once.
static int subpixel_input(LowerContext& cx, const Node& n, int x_buf, const ConvShape& c, const SubpixelAxis& ah, const SubpixelAxis& aw, const SubpixelPlanes& L,
                   bool merged) {
  int64_t Ci = c.O, channels = L.pairs ? (Ci + 1) / 2 : Ci, copies = merged ? ah.s * aw.s : 1, HW = c.OH * c.OW;
  bool paired_first = L.pairs && copies > 1;
  int src = paired_first ? channel_pair_image(cx, n, x_buf, c.Bn, Ci, HW) : x_buf;
  int image = cx.new_buffer(n.result()->name + (L.pairs ? ".padded_pairs" : ".padded"),
                            {L.pairs ? DType::i32 : DType::f32, {copies * c.Bn * channels * L.plane()}}, BufKind::Temp);
  KernelBuilder kp(L.pairs ? "conv_transpose2d_pad_pairs" : "conv_transpose2d_pad", cx.origin(n));
  loop_nest(kp, {c.Bn, channels}, [&](const std::vector<E>& i) {
    std::vector<Stmt> body;
    std::function<E(E)> read;
    if (L.pairs && !paired_first) read = channel_pair_read(cx, x_buf, i[1], Ci, HW);
    for (int64_t r = 0; r < copies; ++r) {
      std::array<int64_t, 2> first = {(merged ? ah.first(r / aw.s) : 0) - (ah.taps - 1), (merged ? aw.first(r % aw.s) : 0) - (aw.taps - 1)};
      E at = add(int_(r * L.phase_stride), add(mul(i[0], int_(L.image_stride)), mul(i[1], int_(L.channel_stride))));
      E from = paired_first ? offset(i, {c.Bn, channels, HW}) : offset({i[0], L.pairs ? mul(i[1], int_(2)) : i[1]}, {c.Bn, Ci, HW});
      for (Stmt& st : strided_plane(cx, kp, image, at, L.rows, L.cols, src, from, c.OH, c.OW, {1, 1}, first, nullptr, read))
        body.push_back(std::move(st));
    }
    return body;
  }, grain_of(kGrainElements, copies * L.plane()));
  cx.emit(std::move(kp));
  return image;
}

static void conv_transpose2d_subpixel(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, const ConvShape& c, bool merged) {
  SubpixelAxis ah(c.s[0], c.p[0], c.KH, c.OH, c.H), aw(c.s[1], c.p[1], c.KW, c.OW, c.W);
  bool pairs = channel_pairs(c.O, c, conv_operands(cx, n, xs, out));
  SubpixelPlanes L = subpixel_planes(c, ah, aw, merged, pairs);
  int64_t Ci = pairs ? (c.O + 1) / 2 : c.O, Co = c.C, P = ah.s * aw.s;
  Gemm gm;
  gm.b = subpixel_input(cx, n, cx.materialized(xs[0]), c, ah, aw, L, merged);
  gm.a = phase_weights(cx, n, cx.materialized(xs[1]), c, ah, aw, pairs), gm.M = Co, gm.K = (pairs ? 2 * Ci : Ci) * ah.taps * aw.taps;
  gm.pairs = pairs;
  gm.N = (merged ? (c.Bn - 1) * L.plane() : 0) + (ah.outputs(0) - 1) * L.cols + aw.outputs(0);
  for (int64_t b = 0; b < (merged ? 1 : c.Bn); ++b)
    for (int64_t r = 0; r < P; ++r) {
      gm.a_offsets.push_back(r * Co * gm.K);
      gm.b_offsets.push_back(merged ? r * L.phase_stride : b * L.image_stride + ah.first(r / aw.s) * L.cols + aw.first(r % aw.s));
    }
  std::vector<int64_t> lines;
  for (int64_t ci = 0; ci < Ci; ++ci)
    for (int64_t jh = 0; jh < ah.taps; ++jh)
      for (int64_t jw = 0; jw < aw.taps; ++jw) lines.push_back(ci * L.channel_stride + jh * L.cols + jw);
  gm.read_lines(std::move(lines));
  gm.c = cx.new_buffer(n.result()->name + ".grid", {DType::f32, {gm.batches() * Co * gm.N}}, BufKind::Temp);
  emit_product(cx, n, "conv_transpose2d", gm);
  // Where image b's phase r of channel co starts in the grid.
  auto grid_at = [&](E b, int64_t r, E co) {
    if (merged) return add(offset({int_(r), co}, {P, Co, gm.N}), mul(b, int_(L.plane())));
    return offset({b, int_(r), co}, {c.Bn, P, Co, gm.N});
  };
  interleave_phases(cx, n, xs, out, gm.c, c, ah, aw, L.cols, merged, grid_at);
}

// wp[phase (rh, rw)][co][(ci, jh, jw)] = w[ci, co, ah.tap(rh, jh), aw.tap(rw, jw)], zero past
// the kernel. An input channel's taps are read together (one cache line): a loop over the
// input channels for each tap read lines Co * KH * KW floats apart, which share cache sets.
// With `pairs`, the columns follow the input's channel pairs: (q, jh, jw, h) for ci = 2q + h,
// zero past the last channel (as paired_weight does for a convolution).
static int phase_weights(LowerContext& cx, const Node& n, int w_buf, const ConvShape& c, const SubpixelAxis& ah, const SubpixelAxis& aw, bool pairs) {
  int64_t Ci = c.O, Co = c.C, taps = ah.taps * aw.taps, Cp = pairs ? (Ci + 1) / 2 * 2 : Ci, K = Cp * taps;
  int wp = cx.new_buffer(n.result()->name + ".phase_weights", {DType::f32, {ah.s * aw.s, Co, K}}, BufKind::Temp);
  KernelBuilder kw("conv_transpose2d_weights", cx.origin(n));
  int ci = kw.new_var("ci");
  E real = lt(kw.v(ci), int_(Ci));
  loop_nest(kw, {Co}, [&](const std::vector<E>& co) {
    std::vector<Stmt> taps_of_ci;
    for (int64_t r = 0; r < ah.s * aw.s; ++r)
      for (int64_t j = 0; j < taps; ++j) {
        int64_t th = ah.tap(r / aw.s, j / aw.taps), tw = aw.tap(r % aw.s, j % aw.taps);
        E at = pairs ? offset({int_(r), co[0], bin(Bin::div, kw.v(ci), int_(2)), int_(j), bin(Bin::rem, kw.v(ci), int_(2))}, {ah.s * aw.s, Co, Cp / 2, taps, 2})
                     : offset({int_(r), co[0], kw.v(ci), int_(j)}, {ah.s * aw.s, Co, Ci, taps});
        E from = offset({Cp == Ci ? kw.v(ci) : select(real, kw.v(ci), int_(0)), co[0], int_(th * c.KW + tw)}, {Ci, Co, c.KH * c.KW});
        E v = th < c.KH && tw < c.KW ? cx.ld(w_buf, from) : zero_of(DType::f32);
        taps_of_ci.push_back(store(wp, at, Cp == Ci ? v : select(real, v, zero_of(DType::f32))));
      }
    return std::vector<Stmt>{for_(ci, 0, Cp, taps_of_ci)};
  }, std::max<int64_t>(1, 16384 / (ah.s * aw.s * K)));
  cx.emit(std::move(kw));
  return wp;
}

// out[b, co, s*u + rh, s*v + rw] = the grid's phase (rh, rw) of (b, co) at (u, v) in rows of
// `cols`, plus the bias; `channel_major` visits the planes channel by channel (the order of
// a merged grid). An output row's column phases are stored in one scalar loop: vectorized, a
// loop storing every s-th element became masked scatters (4 ns an element on AMD's Zen 5).
static void interleave_phases(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, int grid, const ConvShape& c, const SubpixelAxis& ah,
                       const SubpixelAxis& aw, int64_t cols, bool channel_major, const std::function<E(E, int64_t, E)>& grid_at) {
  KernelBuilder ko("conv_transpose2d_interleave", cx.origin(n));
  int u = ko.new_var("u"), v = ko.new_var("v");
  loop_nest(ko, {c.Bn * c.C}, [&](const std::vector<E>& pl) {
    E b = channel_major ? bin(Bin::rem, pl[0], int_(c.Bn)) : bin(Bin::div, pl[0], int_(c.C));
    E co = channel_major ? bin(Bin::div, pl[0], int_(c.Bn)) : bin(Bin::rem, pl[0], int_(c.C));
    auto store_phase = [&](int64_t rh, int64_t rw) {
      E from = add(grid_at(b, rh * aw.s + rw, co), add(mul(ko.v(u), int_(cols)), ko.v(v)));
      E to = offset({b, co, add(mul(ko.v(u), int_(ah.s)), int_(rh)), add(mul(ko.v(v), int_(aw.s)), int_(rw))}, {c.Bn, c.C, c.H, c.W});
      return store(out, to, xs.size() == 3 ? add(cx.ld(grid, from), cx.ld(xs[2], co)) : cx.ld(grid, from));
    };
    std::vector<Stmt> body;
    for (int64_t rh = 0; rh < ah.s; ++rh) {
      int64_t common = aw.outputs(0);
      for (int64_t rw = 1; rw < aw.s; ++rw) common = std::min(common, aw.outputs(rw));
      std::vector<Stmt> together, row;
      for (int64_t rw = 0; rw < aw.s; ++rw) together.push_back(store_phase(rh, rw));
      auto copy_for = aw.s > 1 ? scalar_for : for_;  // strided stores stay scalar (kir::Stmt::scalar)
      row.push_back(copy_for(v, 0, common, std::move(together)));
      for (int64_t rw = 0; rw < aw.s; ++rw)
        if (aw.outputs(rw) > common) row.push_back(copy_for(v, common, aw.outputs(rw), {store_phase(rh, rw)}));
      body.push_back(for_(u, 0, ah.outputs(rh), std::move(row)));
    }
    return body;
  }, grain_of(kGrainElements, c.H * c.W));
  cx.emit(std::move(ko));
}

// The gather form: any dtype and groups, operands computed where they are read.
static void conv_transpose2d_loops(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  const Type xt = cx.B(xs[0]).type, wt = cx.B(xs[1]).type, ot = cx.B(out).type;
  int64_t C = xt.dims[1], H = xt.dims[2], W = xt.dims[3], O = ot.dims[1], OH = ot.dims[2], OW = ot.dims[3];
  const Window2d win = Window2d::of(n);
  int64_t KH = wt.dims[2], KW = wt.dims[3], G = win.groups, cg = C / G, og = O / G;
  const Ints &s = win.stride, &p = win.padding, &d = win.dilation;
  DType dt = ot.dtype;
  KernelBuilder kb("conv_transpose2d", cx.origin(n));
  int oh = kb.new_var("oh"), ow = kb.new_var("ow"), c = kb.new_var("c"), kh = kb.new_var("kh"), kw = kb.new_var("kw");
  int acc = kb.new_var("acc", dt);
  // Gather form: output pixel (oh, ow) takes input (ih, iw) where ih*s - p + kh*d == oh.
  loop_nest(kb, {ot.dims[0] * O}, [&](const std::vector<E>& flat) {
    E b = bin(Bin::div, flat[0], int_(O)), o = bin(Bin::rem, flat[0], int_(O));
    E g = bin(Bin::div, o, int_(og)), oc = bin(Bin::rem, o, int_(og));
    E th = sub(add(kb.v(oh), int_(p[0])), mul(kb.v(kh), int_(d[0])));
    E tw = sub(add(kb.v(ow), int_(p[1])), mul(kb.v(kw), int_(d[1])));
    E ih = bin(Bin::div, th, int_(s[0])), iw = bin(Bin::div, tw, int_(s[1]));
    E ok = and_(and_(and_(ge(th, int_(0)), ge(tw, int_(0))),
                     and_(bin(Bin::eq, bin(Bin::rem, th, int_(s[0])), int_(0)), bin(Bin::eq, bin(Bin::rem, tw, int_(s[1])), int_(0)))),
                and_(lt(ih, int_(H)), lt(iw, int_(W))));
    E ci = add(mul(g, int_(cg)), kb.v(c));
    E x_at = offset({b, ci, ih, iw}, {ot.dims[0], C, H, W});
    E w_at = offset({ci, oc, kb.v(kh), kb.v(kw)}, {C, og, KH, KW});
    E term = mul(cx.factor(xs[0], select(ok, x_at, int_(0))), cx.factor(xs[1], w_at));
    E init = xs.size() == 3 ? cx.ld(xs[2], o) : zero_of(dt);
    std::vector<Stmt> inner = {assign(acc, add(kb.v(acc), select(ok, term, zero_of(dt))))};
    std::vector<Stmt> pixel = {assign(acc, init),
                               for_(c, 0, cg, {for_(kh, 0, KH, {for_(kw, 0, KW, inner)})}),
                               store(out, offset({flat[0], kb.v(oh), kb.v(ow)}, {ot.dims[0] * O, OH, OW}), kb.v(acc))};
    return std::vector<Stmt>{for_(oh, 0, OH, {for_(ow, 0, OW, pixel)})};
  }, 1);
  cx.emit(std::move(kb));
}

}  // namespace stag::lowering
