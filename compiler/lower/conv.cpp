// Convolution and its weight gradient, by the strategy conv_plan.h picks: a dense product,
// im2col, lines over phase planes, or plain loops.

#include <algorithm>

#include "compiler/lower/conv.h"
#include "ir/geometry.h"

namespace stag::lowering {

using namespace kir;

static void conv2d_dense(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, const ConvShape& c, bool row);
static void conv2d_im2col(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, const ConvShape& c);
static void zero_run(LowerContext& cx, const Node& n, int buf, int64_t from, int64_t count);
static void weight_grad_dense(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, const ConvShape& c);
static void weight_grad_lines(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, const ConvShape& c, bool merged,
                              const ConvPlan& plan);
static void sum_partials(LowerContext& cx, const Node& n, int partial, int out, int64_t count, int64_t size);
static std::string phase_key(const ConvShape& c, int src, bool merged, bool pairs, bool partial);
static int earlier_copy(LowerContext& cx, const std::string& key, int src, int64_t slack);
static int sliding_pair_copy(LowerContext& cx, const Node& n, int src, int64_t planes, int64_t plane, int64_t slack);
static void weight_grad_loops(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
static void conv2d_loops(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);

static int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -(-a / b); }

// Writes the Hd x Wd plane of dst at dst_at: element (h, w) is element (h*step[0] + first[0],
// w*step[1] + first[1]) of the H x W plane of src at src_at, zero where that lies outside it
// (and everywhere where `valid`, when given, is false). Each region has static ranges, so
// every row is a plain loop LLVM vectorizes (one loop with a bounds test per element was a
// gather).
std::vector<Stmt> strided_plane(LowerContext& cx, KernelBuilder& kb, int dst, E dst_at, int64_t Hd, int64_t Wd, int src, E src_at, int64_t H,
                                int64_t W, std::array<int64_t, 2> step, std::array<int64_t, 2> first, E valid, const std::function<E(E)>& read) {
  int h = kb.new_var("h"), w = kb.new_var("w");
  E zero = zero_of(cx.B(dst).type.dtype);
  auto load = [&](E i) { return read ? read(std::move(i)) : cx.ld(src, std::move(i)); };
  E at = add(dst_at, add(mul(kb.v(h), int_(Wd)), kb.v(w)));
  int64_t top = std::clamp<int64_t>(ceil_div(-first[0], step[0]), 0, Hd), left = std::clamp<int64_t>(ceil_div(-first[1], step[1]), 0, Wd);
  int64_t bottom = std::clamp<int64_t>(ceil_div(H - first[0], step[0]), top, Hd);
  int64_t right = std::clamp<int64_t>(ceil_div(W - first[1], step[1]), left, Wd);
  E row_of = add(mul(kb.v(h), int_(step[0])), int_(first[0])), col_of = add(mul(kb.v(w), int_(step[1])), int_(first[1]));
  E from = add(src_at, add(mul(row_of, int_(W)), col_of));
  E v = valid ? select(valid, load(select(valid, from, int_(0))), zero) : load(from);
  std::vector<Stmt> row;
  if (left > 0) row.push_back(for_(w, 0, left, {store(dst, at, zero)}));
  row.push_back(for_(w, left, right, {store(dst, at, v)}));
  if (right < Wd) row.push_back(for_(w, right, Wd, {store(dst, at, zero)}));
  std::vector<Stmt> plane;
  if (top > 0) plane.push_back(for_(h, 0, top, {for_(w, 0, Wd, {store(dst, at, zero)})}));
  plane.push_back(for_(h, top, bottom, row));
  if (bottom < Hd) plane.push_back(for_(h, bottom, Hd, {for_(w, 0, Wd, {store(dst, at, zero)})}));
  return plane;
}

// The H x W plane placed at (top, left) of the Hd x Wd plane, zeros around it.
std::vector<Stmt> padded_plane(LowerContext& cx, KernelBuilder& kb, int dst, E dst_at, int64_t Hd, int64_t Wd, int src, E src_at, int64_t H,
                               int64_t W, int64_t top, int64_t left, E valid) {
  return strided_plane(cx, kb, dst, std::move(dst_at), Hd, Wd, src, std::move(src_at), H, W, {1, 1}, {-top, -left}, std::move(valid));
}

// The sizes of a convolution from input x to output y with a KH x KW kernel.
ConvShape conv_shape(const Node& n, const Type& x, const Type& y, int64_t KH, int64_t KW) {
  const Window2d win = Window2d::of(n);
  const Ints &s = win.stride, &p = win.padding, &d = win.dilation;
  return {x.dims[0], x.dims[1], x.dims[2], x.dims[3], y.dims[1], y.dims[2], y.dims[3], KH, KW, {s[0], s[1]}, {p[0], p[1]}, {d[0], d[1]}, win.groups};
}

ConvOperands conv_operands(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  return {.f32 = cx.B(out).type.dtype == DType::f32,
          .in_buffers = cx.materialized(xs[0]) >= 0 && cx.materialized(xs[1]) >= 0,
          .plain_store = xs.size() == 2 && !cx.has_epilogue(n),
          .bf16 = n.in_bf16()};
}

ConvPlan take(LowerContext& cx, ConvPlan plan) {
  cx.strategy = name(plan.path);
  return plan;
}

void conv2d(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  const Type wt = cx.B(xs[1]).type;
  ConvShape c = conv_shape(n, cx.B(xs[0]).type, cx.B(out).type, wt.dims[2], wt.dims[3]);
  ConvPlan plan = take(cx, conv2d_path(c, conv_operands(cx, n, xs, out)));
  switch (plan.path) {
    case ConvPath::dense: return conv2d_dense(cx, n, xs, out, c, plan.one_row);
    case ConvPath::lines: return conv2d_lines(cx, n, xs, out, c, false, plan.grid_is_output);
    case ConvPath::lines_merged: return conv2d_lines(cx, n, xs, out, c, true, false);
    case ConvPath::im2col: return conv2d_im2col(cx, n, xs, out, c);
    default: return conv2d_loops(cx, n, xs, out);
  }
}

// The kernel covers the whole image (a 1 x 1 output): out (Bn x O) = x (Bn x C*H*W) times w
// (O x C*H*W) transposed, one product for every image; bias and epilogue ride in the store.
// `row` (ConvPlan::one_row): out transposed, w times the images transposed.
static void conv2d_dense(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, const ConvShape& c, bool row) {
  int x = cx.materialized(xs[0]), w = cx.materialized(xs[1]);
  Gemm gm;
  gm.a = row ? w : x, gm.b = row ? x : w, gm.c = out, gm.M = row ? 1 : c.Bn, gm.N = row ? c.Bn : c.O, gm.K = c.C * c.H * c.W, gm.tb = true;
  KernelBuilder kb("conv2d", cx.origin(n));
  kb.k.gemm = gm;
  int j = kb.new_var("j");
  loop_nest(kb, {gm.M}, [&](const std::vector<E>& p) {
    if (xs.size() == 2 && !cx.has_epilogue(n)) return std::vector<Stmt>{};
    E b = row ? kb.v(j) : p[0], o = row ? int_(0) : kb.v(j);
    E at = add(mul(b, int_(c.O)), o), v = cx.ld(out, at);
    if (xs.size() == 3) v = add(v, cx.ld(xs[2], o));
    return std::vector<Stmt>{for_(j, 0, gm.N, {store(out, at, cx.epilogue(n, v, {b, o, int_(0), int_(0)}))})};
  }, 1);
  kb.k.grain = grain_of(kGrainFlops, gm.N * gm.K);
  kb.k.parallel = gm.M > kb.k.grain;
  cx.emit(std::move(kb));
}

// Convolution on the product's micro-kernel: out[b] (O x OH*OW) = w (O x C*KH*KW) times the
// image's patches, gathered while packing (Gemm::Im2col). Bias and epilogue ride in the store.
static void conv2d_im2col(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, const ConvShape& c) {
  int64_t N = c.OH * c.OW, K = c.C * c.KH * c.KW;
  Gemm gm;
  gm.a = cx.materialized(xs[1]), gm.b = cx.materialized(xs[0]), gm.c = out, gm.M = c.O, gm.N = N, gm.K = K;
  gm.a_offsets.assign(static_cast<size_t>(c.Bn), 0);
  for (int64_t b = 0; b < c.Bn; ++b) gm.b_offsets.push_back(b * c.C * c.H * c.W);
  gm.read_patches({c.C, c.H, c.W, c.KH, c.KW, c.OW, {c.s[0], c.s[1]}, {c.p[0], c.p[1]}, {c.d[0], c.d[1]}});
  KernelBuilder kb("conv2d", cx.origin(n));
  kb.k.gemm = gm;
  int j = kb.new_var("j");
  bool bias = xs.size() == 3;
  loop_nest(kb, {c.Bn * c.O}, [&](const std::vector<E>& flat) {
    if (!bias && !cx.has_epilogue(n)) return std::vector<Stmt>{};
    E o = bin(Bin::rem, flat[0], int_(c.O));
    std::vector<E> idx = {bin(Bin::div, flat[0], int_(c.O)), o, bin(Bin::div, kb.v(j), int_(c.OW)), bin(Bin::rem, kb.v(j), int_(c.OW))};
    E at_j = add(mul(flat[0], int_(N)), kb.v(j));
    E v = cx.ld(out, at_j);
    if (bias) v = add(v, cx.ld(xs[2], o));
    return std::vector<Stmt>{for_(j, 0, N, {store(out, at_j, cx.epilogue(n, v, idx))})};
  }, 1);
  kb.k.grain = grain_of(kGrainFlops, N * K);
  kb.k.parallel = c.Bn * c.O > kb.k.grain;
  cx.emit(std::move(kb));
}

// The channels of the image buffer of a convolution on lines: pairs of channels with `pairs`.
static int64_t image_channels(const ConvShape& c, bool pairs) { return pairs ? (c.C + 1) / 2 : c.C; }

// Every image's phase planes (Phases) in one buffer: image by image ([Bn, C, phases, plane]),
// or `merged`, each channel's phase of every image side by side ([C, phases, Bn, plane]);
// then `slack` zeros that the last lines run into. With `pairs`, an element holds a pixel of
// channels 2q and 2q + 1 as a bf16 pair (Bin::bf16_pair; zero past the last channel), and
// the buffer has half the channels. `only_read`: the phases no tap reads (a 1 x 1 kernel at
// stride 2 reads one of four) are left unwritten, for a product whose lines never run past
// their own plane (Phases::spill() is 0). A copy of the same planes made earlier in the
// function (a forward convolution's, for its weight gradient) is reused.
static int phase_images(LowerContext& cx, const Node& n, const ConvShape& c, const Phases& ph, int src, bool merged, int64_t slack,
                        bool pairs = false, bool only_read = false) {
  int64_t P = ph.count(), plane = ph.plane(), Cb = image_channels(c, pairs), total = c.Bn * Cb * P * plane, HW = c.H * c.W;
  bool partial = false;
  for (int64_t r = 0; r < P; ++r) partial = partial || (only_read && !ph.read(c, r));
  std::string key = phase_key(c, src, merged, pairs, partial);
  if (int copy = earlier_copy(cx, key, src, slack); copy >= 0) return copy;
  int dst = cx.new_buffer(n.result()->name + (pairs ? ".pairs" : ".phases"), {pairs ? DType::i32 : DType::f32, {total + slack}}, BufKind::Temp);
  KernelBuilder kp(pairs ? "conv_phase_pairs" : "conv_phases", cx.origin(n));
  loop_nest(kp, {c.Bn, Cb}, [&](const std::vector<E>& i) {
    std::vector<Stmt> body;
    E from = offset({i[0], pairs ? mul(i[1], int_(2)) : i[1]}, {c.Bn, c.C, HW});
    std::function<E(E)> read;
    if (pairs) read = channel_pair_read(cx, src, i[1], c.C, HW);
    for (int64_t r = 0; r < P; ++r) {
      if (only_read && !ph.read(c, r)) continue;
      E at = merged ? offset({i[1], int_(r), i[0]}, {Cb, P, c.Bn, plane}) : offset({i[0], i[1], int_(r)}, {c.Bn, Cb, P, plane});
      std::array<int64_t, 2> first = {r / c.s[1] - c.p[0], r % c.s[1] - c.p[1]};
      for (Stmt& st : strided_plane(cx, kp, dst, at, ph.rows, ph.cols, src, from, c.H, c.W, {c.s[0], c.s[1]}, first, nullptr, read))
        body.push_back(std::move(st));
    }
    return body;
  }, grain_of(kGrainElements, P * plane));
  cx.emit(std::move(kp));
  if (slack) zero_run(cx, n, dst, total, slack);
  if (cx.loop < 0) cx.phase_copies[key] = {dst, slack, cx.prog.functions[cx.fn].kernels.size() - 1};
  return dst;
}

// What an image's phase copy holds: the image buffer, the convolution's geometry, the layout,
// and whether phases no tap reads were left out.
static std::string phase_key(const ConvShape& c, int src, bool merged, bool pairs, bool partial) {
  return fmt::format("{} {}x{}x{}x{} k{}x{} s{},{} p{},{} d{},{} {}{}{}", src, c.Bn, c.C, c.H, c.W, c.KH, c.KW, c.s[0], c.s[1], c.p[0],
                     c.p[1], c.d[0], c.d[1], merged ? "merged" : "by_image", pairs ? " pairs" : "", partial ? " partial" : "");
}

// The buffer of a copy made earlier in this function that holds what `key` says, with at least
// `slack` zeros after it, when no kernel since has written its image; else -1. Inside a loop's
// body a copy holds one step's image: never reused.
static int earlier_copy(LowerContext& cx, const std::string& key, int src, int64_t slack) {
  auto it = cx.phase_copies.find(key);
  if (cx.loop >= 0 || it == cx.phase_copies.end() || it->second.slack < slack) return -1;
  const auto& kernels = cx.prog.functions[cx.fn].kernels;
  int image = storage_of(cx.prog, src);
  for (size_t k = it->second.kernel + 1; k < kernels.size(); ++k)
    for (int w : accesses(kernels[k]).writes)
      if (storage_of(cx.prog, w) == image) return -1;
  return it->second.buffer;
}

std::function<E(E)> channel_pair_read(LowerContext& cx, int src, E pair, int64_t C, int64_t HW) {
  E second = lt(add(mul(pair, int_(2)), int_(1)), int_(C));
  return [&cx, src, second, C, HW](E at) {
    E hi = C % 2 == 0 ? cx.ld(src, add(at, int_(HW))) : select(second, cx.ld(src, select(second, add(at, int_(HW)), at)), zero_of(DType::f32));
    return bin(Bin::bf16_pair, cx.ld(src, at), hi);
  };
}

static void zero_run(LowerContext& cx, const Node& n, int buf, int64_t from, int64_t count) {
  KernelBuilder kt("conv_slack", cx.origin(n));
  int q = kt.new_var("q");
  E zero = zero_of(cx.B(buf).type.dtype);
  loop_nest(kt, {1}, [&](const std::vector<E>&) { return std::vector<Stmt>{for_(q, from, from + count, {store(buf, kt.v(q), zero)})}; });
  cx.emit(std::move(kt));
}

// The weight [O, C, KH, KW] with its columns in the order of the image's channel pairs: element
// (o, (q, tap, h)) is w[o, 2q + h, tap], zero past the last channel, so A's neighbours k and
// k + 1 are the two channels of one pair at one tap, as B's pair elements are.
static int paired_weight(LowerContext& cx, const Node& n, int w, const ConvShape& c) {
  int64_t T = c.KH * c.KW, Q = image_channels(c, true);
  int wp = cx.new_buffer(n.result()->name + ".weight_pairs", {DType::f32, {c.O * Q * T * 2}}, BufKind::Temp);
  KernelBuilder kw("conv_weight_pairs", cx.origin(n));
  int h = kw.new_var("h");
  loop_nest(kw, {c.O, Q, T}, [&](const std::vector<E>& i) {
    E ch = add(mul(i[1], int_(2)), kw.v(h)), real = lt(ch, int_(c.C));
    E from = add(mul(add(mul(i[0], int_(c.C)), c.C % 2 == 0 ? ch : select(real, ch, int_(0))), int_(T)), i[2]);
    E v = c.C % 2 == 0 ? cx.ld(w, from) : select(real, cx.ld(w, from), zero_of(DType::f32));
    return std::vector<Stmt>{for_(h, 0, 2, {store(wp, add(mul(offset(i, {c.O, Q, T}), int_(2)), kw.v(h)), v)})};
  });
  cx.emit(std::move(kw));
  return wp;
}

// Where tap (c, kh, kw)'s line starts: in channel c's phase planes (`channel` elements
// apart, `plane` from one phase to the next), from the tap's shift on; for `channels` of the
// image buffer (the channel pairs', or c.C).
static std::vector<int64_t> tap_lines(const ConvShape& c, const Phases& ph, int64_t channel, int64_t plane, int64_t channels) {
  std::vector<int64_t> lines;
  for (int64_t ci = 0; ci < channels; ++ci)
    for (int64_t kh = 0; kh < c.KH; ++kh)
      for (int64_t kw = 0; kw < c.KW; ++kw) lines.push_back(ci * channel + ph.phase(c, kh, kw) * plane + ph.shift(c, kh, kw));
  return lines;
}

// A training batch norm's statistics of a convolution's output, computed as each of its planes
// is stored (while in cache) rather than in a pass of their own: each (image, channel) plane's
// first element k, its mean less k and its sum of squared deviations (shifted by k, as
// batch_norm_stats is by the channel's first element), which norm.cpp combines per channel. The
// buffer [3, Bn, O] (the k, the means less k, the sums of squares), or -1 where no such batch
// norm reads the output (or an epilogue stands between them, or the kernel is a loop body's).
static int output_stats(LowerContext& cx, const Node& n, int out, const ConvShape& c) {
  if (cx.loop >= 0 || cx.has_epilogue(n) || cx.B(out).type.dtype != DType::f32) return -1;
  for (const auto& u : cx.g->nodes)
    if (u->op == Op::batch_norm && u->b("training") && u->operands[0] == n.result()) {
      int buf = cx.new_buffer(n.result()->name + ".plane_stats", {DType::f32, {3, c.Bn, c.O}}, BufKind::Temp);
      cx.plane_stats[n.result()] = buf;
      return buf;
    }
  return -1;
}

PlaneStats PlaneStats::vars(KernelBuilder& kb, int buffer, const ConvShape& c) {
  return {buffer, c.Bn, c.O, c.OH * c.OW, kb.new_var("j"), kb.new_var("k", DType::f32), kb.new_var("s1", DType::f32),
          kb.new_var("s2", DType::f32)};
}

// Plane (img, o) of `out`, just stored: its first element, its mean less that, and its sum of
// squared deviations. Kept apart, the shift and the mean keep the digits a far-from-zero mean
// would take from the deviations.
std::vector<Stmt> PlaneStats::of(LowerContext& cx, KernelBuilder& kb, int out, E img, E o) const {
  E first = mul(add(mul(img, int_(O)), o), int_(HW)), d = sub(cx.ld(out, add(first, kb.v(j))), kb.v(k));
  E count = fconst(static_cast<double>(HW), DType::f32), at = add(mul(img, int_(O)), o);
  return {assign(k, cx.ld(out, first)),
          assign(s1, zero_of(DType::f32)),
          assign(s2, zero_of(DType::f32)),
          for_(j, 0, HW, {assign(s1, add(kb.v(s1), d)), assign(s2, add(kb.v(s2), mul(d, d)))}),
          store(buffer, at, kb.v(k)),
          store(buffer, add(at, int_(Bn * O)), div(kb.v(s1), count)),
          store(buffer, add(at, int_(2 * Bn * O)), bin(Bin::max, sub(kb.v(s2), div(mul(kb.v(s1), kb.v(s1)), count)), zero_of(DType::f32)))};
}

// The convolution at stride 1 on the phase planes (at stride 1 without padding, the image
// itself): tap (c, kh, kw)'s patch row is its phase plane from the tap's shift on
// (kir::Gemm::b_lines). The product fills a grid as wide as a plane; the store keeps the
// output's columns (bias and epilogue ride in it) and drops the rest. Packing gathers
// nothing, and few-row products read B in place. One product per image, or `merged`, one
// over every image's planes side by side (each image's part of the grid a whole plane).
// `exact` (ConvPlan::grid_is_output): the grid has no extra columns and is the output itself.
// With channel_pairs (conv_plan.h), the phase copy stores channel pairs (always made then),
// the weight is copied in their order (paired_weight) and the product multiplies pairs.
// A weight gradient with products image by image reads this copy instead of copying the image
// again (phase_images).
void conv2d_lines(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, const ConvShape& c, bool merged, bool exact) {
  Phases ph(c);
  bool pairs = channel_pairs(c.C, c, conv_operands(cx, n, xs, out));
  int64_t P = ph.count(), plane = ph.plane(), Cb = image_channels(c, pairs), K = (pairs ? 2 * Cb : c.C) * c.KH * c.KW;
  int64_t N = (merged ? (c.Bn - 1) * plane : 0) + (c.OH - 1) * ph.cols + c.OW, per_image = merged ? plane : N;
  bool copy = pairs || merged || P > 1 || c.p[0] || c.p[1];
  // Room for a weight gradient's lines too (weight_grad_lines): when its product is image by
  // image, its copy is then this one. (Copied side by side for a merged weight gradient, the
  // planes of one image's product would lie a channel's whole batch apart.)
  int64_t slack = pairs ? ph.spill(c) : std::max(ph.spill(c), ph.max_shift(c));
  int x_buf = cx.materialized(xs[0]), image = copy ? phase_images(cx, n, c, ph, x_buf, merged, slack, pairs, ph.spill(c) == 0) : x_buf;
  int grid = exact ? out : cx.new_buffer(n.result()->name + ".grid", {DType::f32, {c.Bn * c.O * per_image}}, BufKind::Temp);
  Gemm gm;
  gm.a = pairs ? paired_weight(cx, n, cx.materialized(xs[1]), c) : cx.materialized(xs[1]), gm.b = image, gm.c = grid, gm.M = c.O, gm.N = N, gm.K = K;
  gm.pairs = pairs;
  if (!merged) gm.a_offsets.assign(static_cast<size_t>(c.Bn), 0);
  for (int64_t b = 0; b < c.Bn && !merged; ++b) gm.b_offsets.push_back(b * Cb * P * plane);
  gm.read_lines(merged ? tap_lines(c, ph, P * c.Bn * plane, c.Bn * plane, Cb) : tap_lines(c, ph, P * plane, plane, Cb));
  // Per image, the store runs over each image's grid as soon as its product is done, while the
  // grid is in cache (Gemm::Split::row_blocks: a thread's images' grids would not stay there).
  bool by_image = !merged && !exact;
  if (by_image) gm.split_by(Gemm::Split::row_blocks, c.O);
  KernelBuilder kb("conv2d", cx.origin(n));
  kb.k.gemm = gm;
  int b = kb.new_var("b"), o_var = kb.new_var("o"), oh = kb.new_var("oh"), ow = kb.new_var("ow");
  int stats = output_stats(cx, n, out, c);
  PlaneStats ps = stats >= 0 ? PlaneStats::vars(kb, stats, c) : PlaneStats{};
  // A row of the grid: an (image, channel) pair, or merged, a channel of every image; p an
  // image by_image, else a row.
  loop_nest(kb, {by_image ? c.Bn : merged ? c.O : c.Bn * c.O}, [&](const std::vector<E>& p) {
    E row = by_image ? add(mul(p[0], int_(c.O)), kb.v(o_var)) : p[0];
    E o = merged ? row : by_image ? kb.v(o_var) : bin(Bin::rem, row, int_(c.O));
    E img = merged ? kb.v(b) : by_image ? p[0] : bin(Bin::div, row, int_(c.O));
    std::vector<Stmt> plane_stats = stats >= 0 ? ps.of(cx, kb, out, img, o) : std::vector<Stmt>{};
    if (exact) return plane_stats;
    E from = add(mul(row, int_(N)), merged ? mul(img, int_(plane)) : int_(0));
    E v = cx.ld(grid, add(from, add(mul(kb.v(oh), int_(ph.cols)), kb.v(ow))));
    if (xs.size() == 3) v = add(v, cx.ld(xs[2], o));
    E at = offset({img, o, kb.v(oh), kb.v(ow)}, {c.Bn, c.O, c.OH, c.OW});
    std::vector<Stmt> plane_store = {for_(oh, 0, c.OH, {for_(ow, 0, c.OW, {store(out, at, cx.epilogue(n, v, {img, o, kb.v(oh), kb.v(ow)}))})})};
    for (Stmt& st : plane_stats) plane_store.push_back(std::move(st));
    if (by_image) return std::vector<Stmt>{for_(o_var, 0, c.O, std::move(plane_store))};
    return merged ? std::vector<Stmt>{for_(b, 0, c.Bn, std::move(plane_store))} : plane_store;
  }, 1);
  kb.k.grain = grain_of(kGrainFlops, (by_image ? c.O : 1) * N * K);
  kb.k.parallel = kb.k.extent > kb.k.grain;
  cx.emit(std::move(kb));
}

bool weight_grad_copies_dy(const Node& n) {
  const Type &xt = n.operands[0]->type, &dyt = n.operands[1]->type, &ot = n.result()->type;
  ConvShape c = conv_shape(n, xt, dyt, ot.dims[2], ot.dims[3]);
  ConvPath path = weight_grad_path(c, {.f32 = ot.dtype == DType::f32, .in_buffers = true, .bf16 = n.in_bf16()}).path;
  return path == ConvPath::lines || path == ConvPath::lines_merged;
}

void conv2d_weight_grad(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  const Type ot = cx.B(out).type;
  ConvShape c = conv_shape(n, cx.B(xs[0]).type, cx.B(xs[1]).type, ot.dims[2], ot.dims[3]);
  ConvOperands operands = conv_operands(cx, n, xs, out);
  // A dy computed where it is read (fusion.cpp) is read once, by dy_grid's copy.
  if (cx.materialized(xs[0]) >= 0 && cx.materialized(xs[1]) < 0 && weight_grad_copies_dy(n)) operands.in_buffers = true;
  ConvPlan plan = take(cx, weight_grad_path(c, operands));
  switch (plan.path) {
    case ConvPath::dense: return weight_grad_dense(cx, n, xs, out, c);
    case ConvPath::lines: return weight_grad_lines(cx, n, xs, out, c, false, plan);
    case ConvPath::lines_merged: return weight_grad_lines(cx, n, xs, out, c, true, plan);
    default: return weight_grad_loops(cx, n, xs, out);
  }
}

// A kernel that only runs `gm`, split over threads in blocks of rows (at least `min_rows`),
// or of columns when a single product has few rows.
void emit_product(LowerContext& cx, const Node& n, const std::string& name, Gemm gm, int64_t min_rows) {
  KernelBuilder kg(name, cx.origin(n));
  // A dot product packs nothing, so its threads split the rows unless there are too few of them.
  bool few_rows = gm.dot ? gm.M < 4 * kDotRows : gm.M <= kColumnSplitRows;
  bool by_columns = gm.batches() == 1 && few_rows && gm.N % kColumnBlock == 0 && gm.N >= 2 * kColumnBlock;
  if (by_columns) gm.split_by(Gemm::Split::columns, kColumnBlock);
  kg.k.gemm = gm;
  int64_t extent = by_columns ? gm.N / kColumnBlock : gm.c_rows();
  loop_nest(kg, {extent}, [](const std::vector<E>&) { return std::vector<Stmt>{}; }, 1);
  int64_t work = by_columns ? gm.M * kColumnBlock * gm.K : gm.N * gm.K * (gm.sum_batches ? gm.batches() : 1);
  kg.k.grain = min_rows * grain_of(kGrainFlops, min_rows * work);
  kg.k.parallel = extent > kg.k.grain;
  cx.emit(std::move(kg));
}

// The kernel covers the whole image (a 1 x 1 output): dw (O x C*H*W) = dy (Bn x O)
// transposed times the images (Bn x C*H*W).
static void weight_grad_dense(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, const ConvShape& c) {
  Gemm gm;
  gm.a = cx.materialized(xs[1]), gm.b = cx.materialized(xs[0]), gm.c = out, gm.M = c.O, gm.N = c.C * c.H * c.W, gm.K = c.Bn, gm.ta = true;
  emit_product(cx, n, "conv2d_weight_grad", gm);
}

// dy on a grid as wide as a phase plane (zeros in the columns past the output's), image by
// image ([Bn, O, OH rows]) or, `merged`, every image's plane of a channel side by side
// ([O, Bn, plane rows]: zero rows below the output's too). dy may be a value computed where
// it is read: it is read by its multi-index (its per-channel operands without a division).
static int dy_grid(LowerContext& cx, const Node& n, int dy, const ConvShape& c, const Phases& ph, bool merged) {
  int64_t rows = merged ? ph.rows : c.OH, per_plane = rows * ph.cols;
  int grid = cx.new_buffer(n.result()->name + ".dy_grid", {DType::f32, {c.Bn * c.O * per_plane}}, BufKind::Temp);
  KernelBuilder kp("conv2d_weight_grad_dy", cx.origin(n));
  int h = kp.new_var("h"), w = kp.new_var("w");
  loop_nest(kp, {c.Bn * c.O}, [&](const std::vector<E>& i) {
    E b = bin(Bin::div, i[0], int_(c.O)), o = bin(Bin::rem, i[0], int_(c.O));
    E at = add(merged ? offset({o, b}, {c.O, c.Bn, per_plane}) : mul(i[0], int_(per_plane)), add(mul(kp.v(h), int_(ph.cols)), kp.v(w)));
    std::vector<E> multi = {b, o, kp.v(h), kp.v(w)};
    E v = cx.read(dy, &multi, offset({i[0], kp.v(h), kp.v(w)}, {c.Bn * c.O, c.OH, c.OW}));
    E zero = zero_of(DType::f32);
    std::vector<Stmt> row = {for_(w, 0, c.OW, {store(grid, at, v)})};
    if (c.OW < ph.cols) row.push_back(for_(w, c.OW, ph.cols, {store(grid, at, zero)}));
    std::vector<Stmt> plane = {for_(h, 0, c.OH, std::move(row))};
    if (c.OH < rows) plane.push_back(for_(h, c.OH, rows, {for_(w, 0, ph.cols, {store(grid, at, zero)})}));
    return plane;
  }, grain_of(kGrainElements, per_plane));
  cx.emit(std::move(kp));
  return grid;
}

// The weight gradient at any stride as stride-1 products over the phase planes: dw (O x
// C*KH*KW) = dy' (O x pixels) times the tap lines transposed, where dy' is dy on a grid as
// wide as a phase plane, so each tap's line is its phase plane from the tap's shift on. Per
// image (the threads split the images, whose partial sums add up at the end; or summed in the
// product, the threads splitting the rows), or `merged` as one product whose depth runs over
// every image's plane. `dot`: as dot products (kir::Gemm::dot).
static void weight_grad_lines(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, const ConvShape& c, bool merged,
                              const ConvPlan& plan) {
  bool partials = plan.partial_sums, dot = plan.dot;
  Phases ph(c);
  int64_t P = ph.count(), plane = ph.plane(), N = c.C * c.KH * c.KW;
  bool slide = !dot && sliding_pairs(c, conv_operands(cx, n, xs, out));
  // Sliding pairs read each element's neighbour: one slack element at least.
  int64_t slack = std::max<int64_t>(ph.max_shift(c), slide ? 1 : 0);
  // Lines that stay within their image's plane leave the phases no tap reads unread (a 1 x 1
  // kernel at stride 2 reads one of four), as the forward convolution's copy does: that copy is
  // then this one. (Side by side, or paired with their neighbours, they would run into them.)
  bool only_read = !merged && !slide && ph.max_shift(c) + c.OH * ph.cols <= ph.plane();
  int image = phase_images(cx, n, c, ph, cx.materialized(xs[0]), merged, slack, false, only_read);
  if (slide) image = sliding_pair_copy(cx, n, image, c.Bn * c.C * P, plane, slack);
  // A grid as wide as the output (a 1 x 1 kernel at stride 2) is dy itself, image by image.
  int dy = cx.materialized(xs[1]);
  int grid = !merged && ph.cols == c.OW && dy >= 0 ? dy : dy_grid(cx, n, xs[1], c, ph, merged);
  int partial = partials ? cx.new_buffer(n.result()->name + ".partial", {DType::f32, {c.Bn, c.O, N}}, BufKind::Temp) : out;
  Gemm gm;
  gm.a = grid, gm.b = image, gm.c = partial, gm.M = c.O, gm.N = N, gm.tb = true, gm.pairs = slide, gm.dot = dot, gm.sum_batches = plan.summed;
  gm.K = merged ? c.Bn * plane : c.OH * ph.cols;
  if (!merged)
    for (int64_t b = 0; b < c.Bn; ++b) gm.a_offsets.push_back(b * c.O * gm.K), gm.b_offsets.push_back(b * c.C * P * plane);
  gm.read_lines(merged ? tap_lines(c, ph, P * c.Bn * plane, c.Bn * plane, c.C) : tap_lines(c, ph, P * plane, plane, c.C));
  if (merged || plan.summed) return emit_product(cx, n, "conv2d_weight_grad", gm);
  emit_product(cx, n, "conv2d_weight_grad", gm, c.O);  // whole images to a thread
  if (partials) sum_partials(cx, n, partial, out, c.Bn, c.O * N);
}

// The `planes` planes of `plane` f32 elements (then `slack` zeros) as sliding bf16 pairs
// (kir::Gemm::pairs with a transposed B): element j pairs element j with element j + 1.
static int sliding_pair_copy(LowerContext& cx, const Node& n, int src, int64_t planes, int64_t plane, int64_t slack) {
  int dst = cx.new_buffer(n.result()->name + ".sliding_pairs", {DType::i32, {planes * plane + slack}}, BufKind::Temp);
  KernelBuilder kp("conv_sliding_pairs", cx.origin(n));
  int j = kp.new_var("j");
  loop_nest(kp, {planes}, [&](const std::vector<E>& i) {
    E at = add(mul(i[0], int_(plane)), kp.v(j));
    return std::vector<Stmt>{for_(j, 0, plane, {store(dst, at, bin(Bin::bf16_pair, cx.ld(src, at), cx.ld(src, add(at, int_(1)))))})};
  }, grain_of(kGrainElements, plane));
  cx.emit(std::move(kp));
  zero_run(cx, n, dst, planes * plane, slack);
  return dst;
}

// out[i] = the sum over t of partial[t][i].
static void sum_partials(LowerContext& cx, const Node& n, int partial, int out, int64_t count, int64_t size) {
  // A block of columns a p, each partial added over the block: contiguous loops. (A sum a p
  // over the partials, size elements apart, was vectorized as gathers.)
  int64_t block = size;
  for (int64_t b = std::min<int64_t>(size, 256); b >= 16; --b)
    if (size % b == 0) {
      block = b;
      break;
    }
  KernelBuilder ks("conv2d_weight_grad_sum", cx.origin(n));
  int t = ks.new_var("t"), j = ks.new_var("j");
  E at = add(mul(ks.v(0), int_(block)), ks.v(j));
  ks.k.extent = size / block;
  ks.k.body = {for_(j, 0, block, {store(out, at, zero_of(DType::f32))}),
               for_(t, 0, count, {for_(j, 0, block, {store(out, at, add(cx.ld(out, at), cx.ld(partial, add(mul(ks.v(t), int_(size)), at))))})})};
  ks.k.grain = grain_of(kGrainElements, count * block);
  ks.k.parallel = ks.k.extent > ks.k.grain;
  cx.emit(std::move(ks));
}

// The loop forms: any dtype and groups, operands computed where they are read.
static void weight_grad_loops(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  const Type xt = cx.B(xs[0]).type, gt = cx.B(xs[1]).type, ot = cx.B(out).type;
  int64_t Bn = xt.dims[0], C = xt.dims[1], H = xt.dims[2], W = xt.dims[3], O = gt.dims[1], OH = gt.dims[2], OW = gt.dims[3];
  const Window2d win = Window2d::of(n);
  int64_t KH = ot.dims[2], KW = ot.dims[3], G = win.groups, cg = C / G, og = O / G;
  const Ints &s = win.stride, &p = win.padding, &d = win.dilation;
  DType dt = ot.dtype;
  KernelBuilder kb("conv2d_weight_grad", cx.origin(n));
  int b = kb.new_var("b"), oh = kb.new_var("oh"), ow = kb.new_var("ow"), acc = kb.new_var("acc", dt);
  // Each weight element sums its tap's pixels times dy over every image and output pixel.
  loop_nest(kb, {O, cg, KH, KW}, [&](const std::vector<E>& i) {
    E ci = add(mul(bin(Bin::div, i[0], int_(og)), int_(cg)), i[1]);
    E ih = add(sub(mul(kb.v(oh), int_(s[0])), int_(p[0])), mul(i[2], int_(d[0])));
    E iw = add(sub(mul(kb.v(ow), int_(s[1])), int_(p[1])), mul(i[3], int_(d[1])));
    E ok = and_(in_range(ih, H), in_range(iw, W));
    E x_at = offset({kb.v(b), ci, ih, iw}, {Bn, C, H, W});
    E g_at = offset({kb.v(b), i[0], kb.v(oh), kb.v(ow)}, {Bn, O, OH, OW});
    E term = mul(cx.factor(xs[0], select(ok, x_at, int_(0))), cx.factor(xs[1], g_at));
    std::vector<Stmt> inner = {assign(acc, add(kb.v(acc), select(ok, term, zero_of(dt))))};
    return std::vector<Stmt>{assign(acc, zero_of(dt)), for_(b, 0, Bn, {for_(oh, 0, OH, {for_(ow, 0, OW, inner)})}),
                             store(out, offset(i, ot.dims), kb.v(acc))};
  }, 1);
  cx.emit(std::move(kb));
}

static void conv2d_loops(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  const Type xt = cx.B(xs[0]).type, wt = cx.B(xs[1]).type, ot = cx.B(out).type;
  int64_t C = xt.dims[1], H = xt.dims[2], W = xt.dims[3], O = ot.dims[1], OH = ot.dims[2], OW = ot.dims[3];
  const Window2d win = Window2d::of(n);
  int64_t KH = wt.dims[2], KW = wt.dims[3], G = win.groups, cg = C / G, og = O / G;
  const Ints &s = win.stride, &p = win.padding, &d = win.dilation;
  DType dt = ot.dtype;
  KernelBuilder kb("conv2d", cx.origin(n));
  int oh = kb.new_var("oh"), ow = kb.new_var("ow"), c = kb.new_var("c"), kh = kb.new_var("kh"), kw = kb.new_var("kw");
  int acc = kb.new_var("acc", dt);
  loop_nest(kb, {ot.dims[0] * O}, [&](const std::vector<E>& flat) {
    E b = bin(Bin::div, flat[0], int_(O)), o = bin(Bin::rem, flat[0], int_(O));
    E g = bin(Bin::div, o, int_(og));
    E ih = add(sub(mul(kb.v(oh), int_(s[0])), int_(p[0])), mul(kb.v(kh), int_(d[0])));
    E iw = add(sub(mul(kb.v(ow), int_(s[1])), int_(p[1])), mul(kb.v(kw), int_(d[1])));
    E ok = and_(in_range(ih, H), in_range(iw, W));
    E x_at = offset({b, add(mul(g, int_(cg)), kb.v(c)), ih, iw}, {ot.dims[0], C, H, W});
    E w_at = offset({o, kb.v(c), kb.v(kh), kb.v(kw)}, {O, cg, KH, KW});
    E term = mul(cx.factor(xs[0], select(ok, x_at, int_(0))), cx.factor(xs[1], w_at));
    E init = xs.size() == 3 ? cx.ld(xs[2], o) : zero_of(dt);
    std::vector<Stmt> inner = {assign(acc, add(kb.v(acc), select(ok, term, zero_of(dt))))};
    std::vector<Stmt> pixel = {assign(acc, init),
                               for_(c, 0, cg, {for_(kh, 0, KH, {for_(kw, 0, KW, inner)})}),
                               store(out, offset({flat[0], kb.v(oh), kb.v(ow)}, {ot.dims[0] * O, OH, OW}),
                                     cx.epilogue(n, kb.v(acc), {b, o, kb.v(oh), kb.v(ow)}))};
    return std::vector<Stmt>{for_(oh, 0, OH, {for_(ow, 0, OW, pixel)})};
  }, 1);
  cx.emit(std::move(kb));
}

}  // namespace stag::lowering
