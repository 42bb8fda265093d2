// Pooling: max and average pooling over windows, max pooling's gradient, global average pooling.

#include <algorithm>
#include <functional>

#include "compiler/lower/families.h"
#include "ir/geometry.h"

namespace stag::lowering {

using namespace kir;

// A pooling's windows over one plane: output (oh, ow) covers input rows oh*s[0] - p[0] +
// kh*d[0] and columns ow*s[1] - p[1] + kw*d[1]; the windows of output rows [rows[0], rows[1])
// and columns [cols[0], cols[1]) lie wholly inside the input.
struct PoolWindows {
  int64_t H, W, OH, OW;
  Ints k, s, p, d;
  std::array<int64_t, 2> rows, cols;
};

static PoolWindows pool_windows(const Node& n, const Dims& in, const Dims& pooled) {
  PoolWindows w;
  w.H = in[2], w.W = in[3], w.OH = pooled[2], w.OW = pooled[3];
  const Window2d win = Window2d::of(n);
  w.k = win.kernel, w.s = win.stride, w.p = win.padding, w.d = win.dilation;
  for (int i = 0; i < 2; ++i) {
    int64_t size = in[2 + i], out = pooled[2 + i], last = size - 1 + w.p[i] - w.d[i] * (w.k[i] - 1);
    int64_t lo = std::min(out, (w.p[i] + w.s[i] - 1) / w.s[i]), hi = last < 0 ? 0 : std::min(out, last / w.s[i] + 1);
    (i == 0 ? w.rows : w.cols) = {lo, std::max(lo, hi)};
  }
  return w;
}

// The statements of every window (oh, ow) of a plane: `window(false)` where the window lies
// inside the input, `window(true)` (bounds-checked) around that, so the inside loops have
// static ranges and no guards. `independent`: no window reads what another writes, and
// computing one twice changes nothing; then the inside rows are vectorized.
static std::vector<Stmt> over_windows(const PoolWindows& w, int oh, int ow, bool independent,
                                      const std::function<std::vector<Stmt>(bool checked)>& window) {
  std::vector<Stmt> stmts;
  auto rows = [&](int64_t from, int64_t to, std::vector<Stmt> body) {
    if (from < to) stmts.push_back(for_(oh, from, to, std::move(body)));
  };
  auto cols = [&](std::vector<Stmt>& body, int64_t from, int64_t to, bool checked) {
    if (from >= to) return;
    // A single window is no loop worth vectorizing (and LLVM warns when it cannot).
    if (checked || !independent || to - from < 2) {
      body.push_back(for_(ow, from, to, window(checked)));
      return;
    }
    // Whole vectors only: the windows past the last multiple of 8 are done by a second loop
    // of 8 windows ending at `to`, which redoes some (their stores repeat). A scalar
    // remainder after the vector loop costs more than the windows it saves.
    int64_t chunk = 8, whole = (to - from) / chunk * chunk;
    if (whole == 0 || whole == to - from) {
      body.push_back(vectorized_for(ow, from, to, window(false)));
      return;
    }
    body.push_back(vectorized_for(ow, from, from + whole, window(false)));
    body.push_back(vectorized_for(ow, to - chunk, to, window(false)));
  };
  std::vector<Stmt> border, inside;
  cols(border, 0, w.OW, true);
  if (w.rows[0] == w.rows[1] || w.cols[0] == w.cols[1]) {
    rows(0, w.OH, std::move(border));
    return stmts;
  }
  cols(inside, 0, w.cols[0], true);
  cols(inside, w.cols[0], w.cols[1], false);
  cols(inside, w.cols[1], w.OW, true);
  rows(0, w.rows[0], border);
  rows(w.rows[0], w.rows[1], std::move(inside));
  rows(w.rows[1], w.OH, std::move(border));
  return stmts;
}

// Every tap (kh, kw) of a window runs `body`. The small windows of an inside row are
// unrolled, the taps set as constants, so that the loop over the row's windows is innermost:
// LLVM vectorizes only innermost loops, and its unroller, which would otherwise flatten the
// taps, is off (jit.cpp). Checked windows stay loops: they are not vectorized.
static std::vector<Stmt> over_taps(int kh, int kw, const Ints& k, bool checked, const std::vector<Stmt>& body) {
  constexpr int64_t kMostUnrolledTaps = 16;
  if (checked || k[0] * k[1] > kMostUnrolledTaps) return {for_(kh, 0, k[0], {for_(kw, 0, k[1], body)})};
  std::vector<Stmt> taps;
  for (int64_t i = 0; i < k[0]; ++i)
    for (int64_t j = 0; j < k[1]; ++j) {
      taps.push_back(assign(kh, int_(i)));
      taps.push_back(assign(kw, int_(j)));
      taps.insert(taps.end(), body.begin(), body.end());
    }
  return taps;
}

// Greater or NaN: the value max_pool2d keeps and the tap max_pool2d_grad picks (PyTorch's
// rule). As a compare and a blend it vectorizes, where llvm.maximum's expansion does not.
static E takes_over(E v, E best) { return bin(Bin::or_, gt(v, best), bin(Bin::ne, v, v)); }

void pool2d(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  int x = xs[0];
  const Type xt = cx.B(x).type, ot = cx.B(out).type;
  bool is_max = n.op == Op::max_pool2d;
  PoolWindows w = pool_windows(n, xt.dims, ot.dims);
  int64_t H = w.H, W = w.W;
  const Ints &k = w.k, &s = w.s, &p = w.p, &d = w.d;
  bool include_pad = !is_max && n.b("count_include_pad");
  DType dt = ot.dtype;
  KernelBuilder kb(std::string(n.info().name), cx.origin(n));
  int oh = kb.new_var("oh"), ow = kb.new_var("ow"), kh = kb.new_var("kh"), kw = kb.new_var("kw");
  int acc = kb.new_var("acc", dt), count = kb.new_var("count", dt);
  loop_nest(kb, {ot.dims[0] * ot.dims[1]}, [&](const std::vector<E>& flat) {
    E h0 = sub(mul(kb.v(oh), int_(s[0])), int_(p[0])), w0 = sub(mul(kb.v(ow), int_(s[1])), int_(p[1]));
    E ih = add(h0, mul(kb.v(kh), int_(d[0]))), iw = add(w0, mul(kb.v(kw), int_(d[1])));
    int64_t planes = ot.dims[0] * ot.dims[1];
    E at = offset({flat[0], ih, iw}, {planes, H, W}), out_at = offset({flat[0], kb.v(oh), kb.v(ow)}, {planes, w.OH, w.OW});
    return over_windows(w, oh, ow, true, [&](bool checked) {
      E ok = and_(in_range(ih, H), in_range(iw, W));
      E v = cx.ld(x, checked ? select(ok, at, int_(0)) : at);
      E tap = is_max ? select(takes_over(v, kb.v(acc)), v, kb.v(acc)) : add(kb.v(acc), v);
      bool counts = !is_max && checked && !include_pad;
      std::vector<Stmt> inner = {assign(acc, checked ? select(ok, tap, kb.v(acc)) : tap)};
      if (counts) inner.push_back(assign(count, add(kb.v(count), select(ok, fconst(1, dt), fconst(0, dt)))));
      E result = kb.v(acc);
      if (!is_max) {
        // Inside the input the divisor is the kernel's size either way; PyTorch clips the
        // window to the padded input when padding counts.
        E divisor = fconst(static_cast<double>(k[0] * k[1]), dt);
        if (counts) {
          divisor = kb.v(count);
        } else if (checked) {
          E hend = bin(Bin::min, add(h0, int_(k[0])), int_(H + p[0]));
          E wend = bin(Bin::min, add(w0, int_(k[1])), int_(W + p[1]));
          divisor = cast(mul(sub(hend, h0), sub(wend, w0)), dt);
        }
        result = div(result, divisor);
      }
      std::vector<Stmt> pixel = {assign(acc, fconst(is_max ? -kInf : 0, dt))};
      if (counts) pixel.push_back(assign(count, fconst(0, dt)));
      for (Stmt& st : over_taps(kh, kw, k, checked, inner)) pixel.push_back(std::move(st));
      pixel.push_back(store(out, out_at, result));
      return pixel;
    });
  }, 4);
  cx.emit(std::move(kb));
}

// Per plane: each window's dy goes to the tap max_pool2d took its value from (window_max_at
// in ir/reference.cpp). The tap is found as a float index and every tap of the window then
// stores dy or 0 by a compare, so no address or branch depends on the data: a scatter to
// the found position makes x86 branch on every compare, and mispredict half of them. Where
// windows are disjoint the taps' stores are plain (after zeroing the plane, unless the
// windows tile it) and the rows vectorize; where they overlap, the taps add.
// Whether max_pool2d_grad's windows tile the input (no padding, no gaps, no overlap): every
// element is then stored exactly once, so elementwise consumers (relu's backward) can ride in
// the store as an epilogue.
bool pool_grad_tiles(const Node& n) {
  PoolWindows w = pool_windows(n, n.operands[0]->type.dims, n.operands[1]->type.dims);
  bool tiled = true;
  for (int i = 0; i < 2; ++i)
    tiled = tiled && w.p[i] == 0 && w.s[i] == w.k[i] && (w.d[i] == 1 || w.k[i] == 1) && (i == 0 ? w.OH * w.s[0] == w.H : w.OW * w.s[1] == w.W);
  return tiled;
}

void max_pool2d_grad(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  int x = xs[0];
  int dy = xs[1];
  const Type xt = cx.B(x).type, dyt = cx.B(dy).type;
  PoolWindows w = pool_windows(n, xt.dims, dyt.dims);
  int64_t H = w.H, W = w.W;
  const Ints &k = w.k, &s = w.s, &p = w.p, &d = w.d;
  DType dt = xt.dtype;
  bool disjoint = true, tiled = pool_grad_tiles(n);
  for (int i = 0; i < 2; ++i) disjoint = disjoint && s[i] >= d[i] * (k[i] - 1) + 1;
  // The tap index as a float of the data's width: its lanes line up with the data's when
  // vectorized. f32 counts exactly to 2^24 taps.
  DType index_type = k[0] * k[1] <= (int64_t{1} << 24) ? dt : DType::f64;
  KernelBuilder kb("max_pool2d_grad", cx.origin(n));
  int q = kb.new_var("q"), oh = kb.new_var("oh"), ow = kb.new_var("ow"), kh = kb.new_var("kh"), kw = kb.new_var("kw");
  int best = kb.new_var("best", dt), tap = kb.new_var("tap", index_type);
  int value = kb.new_var("value", dt), takes = kb.new_var("takes", DType::b8), grad = kb.new_var("grad", dt);
  loop_nest(kb, {xt.dims[0] * xt.dims[1]}, [&](const std::vector<E>& plane) {
    E in_plane = mul(plane[0], int_(H * W));
    E h0 = sub(mul(kb.v(oh), int_(s[0])), int_(p[0])), w0 = sub(mul(kb.v(ow), int_(s[1])), int_(p[1]));
    E ih = add(h0, mul(kb.v(kh), int_(d[0]))), iw = add(w0, mul(kb.v(kw), int_(d[1])));
    E at = add(mul(ih, int_(W)), iw), this_tap = cast(add(mul(kb.v(kh), int_(k[1])), kb.v(kw)), index_type);
    E g = kb.v(grad);
    std::vector<Stmt> body;
    if (!tiled) body.push_back(for_(q, 0, H * W, {store(out, add(in_plane, kb.v(q)), zero_of(dt))}));
    for (Stmt& st : over_windows(w, oh, ow, disjoint, [&](bool checked) {
           E ok = and_(in_range(ih, H), in_range(iw, W));
           E v = kb.v(value);
           // A checked window starts with no tap (-1): its first one inside takes it.
           E take = checked ? and_(ok, bin(Bin::or_, lt(kb.v(tap), fconst(0, index_type)), takes_over(v, kb.v(best))))
                            : takes_over(v, kb.v(best));
           E hit = bin(Bin::eq, kb.v(tap), this_tap);
           Stmt give;
           if (checked) {
             // Taps outside the input add zero to the plane's first element instead.
             E to = add(in_plane, select(ok, at, int_(0)));
             give = store(out, to, add(cx.ld(out, to), select(and_(ok, hit), g, zero_of(dt))));
           } else if (disjoint) {
             std::vector<E> idx = {bin(Bin::div, plane[0], int_(xt.dims[1])), bin(Bin::rem, plane[0], int_(xt.dims[1])), ih, iw};
             give = store(out, add(in_plane, at), tiled ? cx.epilogue(n, select(hit, g, zero_of(dt)), idx) : select(hit, g, zero_of(dt)));
           } else {
             E to = add(in_plane, at);
             give = store(out, to, add(cx.ld(out, to), select(hit, g, zero_of(dt))));
           }
           std::vector<Stmt> window = {assign(best, fconst(-kInf, dt)), assign(tap, fconst(checked ? -1 : 0, index_type))};
           for (Stmt& st : over_taps(kh, kw, k, checked, {assign(value, cx.ld(x, add(in_plane, checked ? select(ok, at, int_(0)) : at))),
                                                assign(takes, take),
                                                assign(tap, select(kb.v(takes), this_tap, kb.v(tap))),
                                                assign(best, select(kb.v(takes), v, kb.v(best)))}))
             window.push_back(std::move(st));
           window.push_back(assign(grad, cx.ld(dy, offset({plane[0], kb.v(oh), kb.v(ow)}, {xt.dims[0] * xt.dims[1], w.OH, w.OW}))));
           for (Stmt& st : over_taps(kh, kw, k, checked, {give})) window.push_back(std::move(st));
           return window;
         }))
      body.push_back(std::move(st));
    return body;
  }, 0);
  kb.k.grain = grain_of(kGrainElements, H * W);
  kb.k.parallel = kb.k.extent > kb.k.grain;
  cx.emit(std::move(kb));
}

void global_avg_pool(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  int x = xs[0];
  const Type xt = cx.B(x).type;
  int64_t HW = xt.dims[2] * xt.dims[3];
  DType dt = xt.dtype;
  KernelBuilder kb("global_avg_pool", cx.origin(n));
  int i = kb.new_var("i"), acc = kb.new_var("acc", dt);
  loop_nest(kb, {xt.dims[0] * xt.dims[1]}, [&](const std::vector<E>& flat) {
    return std::vector<Stmt>{assign(acc, zero_of(dt)),
                             for_(i, 0, HW, {assign(acc, add(kb.v(acc), cx.ld(x, add(mul(flat[0], int_(HW)), kb.v(i)))))}),
                             store(out, flat[0], div(kb.v(acc), fconst(static_cast<double>(HW), dt)))};
  }, 16);
  cx.emit(std::move(kb));
}

}  // namespace stag::lowering
