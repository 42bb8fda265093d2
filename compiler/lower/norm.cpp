// Normalisations and their neighbours: batch_norm, layer_norm, dropout, softmax and log_softmax.

#include <algorithm>

#include "compiler/lower/families.h"

namespace stag::lowering {

using namespace kir;

static void batch_norm_apply(LowerContext& cx, const Node& n, const std::vector<int>& xs, int y, int mean, int var);

// The index in `dims` of element q of plane (b, c): the plane's axes from the flat q.
static std::vector<E> plane_index(const Dims& dims, E b, E c, E q) {
  std::vector<E> idx = {std::move(b), std::move(c)};
  Dims st = strides_of(Dims(dims.begin() + 2, dims.end()));
  for (size_t j = 2; j < dims.size(); ++j) idx.push_back(bin(Bin::rem, bin(Bin::div, q, int_(st[j - 2])), int_(dims[j])));
  return idx;
}

// A channel's mean and variance in one pass over its N x inner elements: the sums of d and d^2
// for d = x - K, K the channel's first element. The shift keeps the variance's cancellation as
// small as the spread of the data around K (not around 0): var = (S2 - S1^2/n) / n exactly in
// real arithmetic for any K, and K is a sample of the channel, so |x - K| is of the order of
// the standard deviation for data that is not wildly skewed (the reference's two passes are
// the oracle, tests/compiler/test_ops.cpp).
static void batch_norm_stats(LowerContext& cx, int x, int mean, int var, const std::string& from) {
  const Type xt = cx.B(x).type;
  int64_t N = xt.dims[0], C = xt.dims[1], inner = numel(xt) / (N * C);
  DType dt = xt.dtype;
  KernelBuilder kb("batch_norm_stats", from);
  int b = kb.new_var("b"), i = kb.new_var("i"), s1 = kb.new_var("s1", dt), s2 = kb.new_var("s2", dt), k = kb.new_var("k", dt);
  loop_nest(kb, {C}, [&](const std::vector<E>& c) {
    E d = sub(cx.ld(x, offset({kb.v(b), c[0], kb.v(i)}, {N, C, inner})), kb.v(k));
    E count = fconst(static_cast<double>(N * inner), dt);
    E m1 = div(kb.v(s1), count);
    return std::vector<Stmt>{
        assign(k, cx.ld(x, mul(c[0], int_(inner)))),
        assign(s1, zero_of(dt)),
        assign(s2, zero_of(dt)),
        for_(b, 0, N, {for_(i, 0, inner, {assign(s1, add(kb.v(s1), d)), assign(s2, add(kb.v(s2), mul(d, d)))})}),
        store(mean, c[0], add(kb.v(k), m1)),
        store(var, c[0], bin(Bin::max, sub(div(kb.v(s2), count), mul(m1, m1)), zero_of(dt))),
    };
  }, 1);
  cx.emit(std::move(kb));
}

// A channel's mean and variance from its planes' (conv.h's PlaneStats, computed as the
// convolution producing x stored them): relative to K, the first plane's first element, plane
// b's mean is d_b = (k_b - K) + (its mean less k_b); the channel's is K + mean(d), and its sum of
// squared deviations the planes' plus each plane's count times (d_b - mean(d))^2 (Chan et al.'s
// pairwise update, exact in real arithmetic and free of a sum of squares' cancellation).
static void combine_plane_stats(LowerContext& cx, int planes, int mean, int var, const Type& xt, const std::string& from) {
  int64_t N = xt.dims[0], C = xt.dims[1], inner = numel(xt) / (N * C);
  DType dt = xt.dtype;
  KernelBuilder kb("batch_norm_combine", from);
  int b = kb.new_var("b"), s = kb.new_var("s", dt), m = kb.new_var("m", dt), K = kb.new_var("K", dt);
  loop_nest(kb, {C}, [&](const std::vector<E>& c) {
    auto part = [&](int64_t q) { return cx.ld(planes, add(mul(add(kb.v(b), int_(q * N)), int_(C)), c[0])); };
    E d = add(sub(part(0), kb.v(K)), part(1)), dev = sub(d, kb.v(m));
    E M2 = add(kb.v(s), add(part(2), mul(fconst(static_cast<double>(inner), dt), mul(dev, dev))));
    return std::vector<Stmt>{
        assign(K, cx.ld(planes, c[0])),
        assign(s, zero_of(dt)),
        for_(b, 0, N, {assign(s, add(kb.v(s), d))}),
        assign(m, div(kb.v(s), fconst(static_cast<double>(N), dt))),
        assign(s, zero_of(dt)),
        for_(b, 0, N, {assign(s, M2)}),
        store(mean, c[0], add(kb.v(K), kb.v(m))),
        store(var, c[0], div(kb.v(s), fconst(static_cast<double>(N * inner), dt))),
    };
  });
  cx.emit(std::move(kb));
}

// `out`: where y is stored (through its epilogue, the ReLU and residual add after it).
void batch_norm(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  const Type xt = cx.B(xs[0]).type;
  int64_t N = xt.dims[0], C = xt.dims[1], inner = numel(xt) / (N * C);
  int y = out, mean = cx.in(n.result(1)), var = cx.in(n.result(2));
  DType dt = xt.dtype;
  std::string from = cx.origin(n);
  auto planes = cx.plane_stats.find(n.operands[0]);
  if (n.b("training") && planes != cx.plane_stats.end()) {
    combine_plane_stats(cx, planes->second, mean, var, xt, from);
  } else if (n.b("training")) {
    batch_norm_stats(cx, xs[0], mean, var, from);
  } else {
    cx.copy_kernel(from, mean, xs[3]);
    cx.copy_kernel(from, var, xs[4]);
  }
  batch_norm_apply(cx, n, xs, y, mean, var);
}

// y = (x - mean) / sqrt(var + eps) * weight + bias, a channel's plane as one loop: the square
// root once a channel (it is loop-invariant, but LLVM cannot prove the store to y leaves var
// alone), and a 7 x 7 plane one loop of 49 that vectorizes. An epilogue (ReLU, a residual add)
// rides in the store, reading its operands on the plane as one axis too where they allow;
// followers (a leaky ReLU whose input the backward reads too) are stored beside it.
static void batch_norm_apply(LowerContext& cx, const Node& n, const std::vector<int>& xs, int y, int mean, int var) {
  const Type xt = cx.B(xs[0]).type;
  int64_t N = xt.dims[0], C = xt.dims[1], inner = numel(xt) / (N * C);
  DType dt = xt.dtype;
  KernelBuilder kb("batch_norm", cx.origin(n));
  int i = kb.new_var("i"), r = kb.new_var("rstd", dt);
  loop_nest(kb, {N, C}, [&](const std::vector<E>& idx) {
    E c = idx[1], at = offset({idx[0], c, kb.v(i)}, {N, C, inner});
    E norm = mul(sub(cx.ld(xs[0], at), cx.ld(mean, c)), kb.v(r));
    E rstd = div(fconst(1, dt), un(Un::sqrt, add(cx.ld(var, c), fconst(n.f("eps"), dt))));
    E v = add(mul(norm, cx.ld(xs[1], c)), cx.ld(xs[2], c));
    E stored = cx.merged_epilogue(n, v, {idx[0], c, kb.v(i)}, 2);
    if (!stored) stored = cx.epilogue(n, v, plane_index(xt.dims, idx[0], c, kb.v(i)));
    std::vector<Stmt> stores = {store(y, at, stored)};
    for (Stmt& s : cx.follower_stores(n, y, at)) stores.push_back(std::move(s));
    return std::vector<Stmt>{assign(r, rstd), for_(i, 0, inner, std::move(stores))};
  }, grain_of(kGrainElements, inner));  // the loop nest counts a plane as one element
  cx.emit(std::move(kb));
}

void layer_norm(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  const Type xt = cx.B(xs[0]).type;
  int64_t k = n.i("normalized_dims");
  int64_t inner = *checked_numel(Dims(xt.dims.end() - k, xt.dims.end())), rows = numel(xt) / inner;
  DType dt = xt.dtype;
  KernelBuilder kb("layer_norm", cx.origin(n));
  int i = kb.new_var("i"), s = kb.new_var("s", dt), m = kb.new_var("m", dt), r = kb.new_var("rstd", dt);
  loop_nest(kb, {rows}, [&](const std::vector<E>& row) {
    E at = add(mul(row[0], int_(inner)), kb.v(i));
    E dv = sub(cx.ld(xs[0], at), kb.v(m));
    E count = fconst(static_cast<double>(inner), dt);
    E z = mul(dv, kb.v(r));
    if (xs.size() == 3) z = add(mul(z, cx.ld(xs[1], kb.v(i))), cx.ld(xs[2], kb.v(i)));
    return std::vector<Stmt>{
        assign(s, zero_of(dt)),
        for_(i, 0, inner, {assign(s, add(kb.v(s), cx.ld(xs[0], at)))}),
        assign(m, div(kb.v(s), count)),
        assign(s, zero_of(dt)),
        for_(i, 0, inner, {assign(s, add(kb.v(s), mul(dv, dv)))}),
        assign(r, div(fconst(1, dt), un(Un::sqrt, add(div(kb.v(s), count), fconst(n.f("eps"), dt))))),
        for_(i, 0, inner, {store(out, at, z)}),
    };
  }, 16);
  cx.emit(std::move(kb));
}

void dropout(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  double p = n.f("p");
  if (!n.b("training") || p == 0) return cx.copy_kernel(cx.origin(n), out, xs[0]);
  const Type xt = cx.B(xs[0]).type;
  DType dt = xt.dtype;
  cx.map_kernel("dropout", cx.origin(n), out, {numel(xt)}, [&](const std::vector<E>& idx) {
    E key = xs.size() > 1 ? cx.ld(xs[1], int_(0)) : int_(0);
    E first = xs.size() > 2 ? mul(cx.ld(xs[2], int_(0)), int_(numel(xt))) : int_(0);  // ops.def: the part's
    E u = philox_uniform(int_(n.i("seed")), key, add(first, idx[0]));
    return select(lt(u, fconst(p, DType::f64)), zero_of(dt), mul(cx.ld(xs[0], idx[0]), fconst(1 / (1 - p), dt)));
  });
}

void softmax(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  int x = xs[0];
  const Type xt = cx.B(x).type;
  int64_t axis = norm_axis(n.i("axis"), xt.rank());
  int64_t len = xt.dims[axis], inner = strides_of(xt.dims)[axis], outer = numel(xt) / (len * inner);
  DType dt = xt.dtype;
  bool log = n.op == Op::log_softmax;
  KernelBuilder kb(std::string(n.info().name), cx.origin(n));
  int j = kb.new_var("j"), mx = kb.new_var("mx", dt), s = kb.new_var("s", dt), ev = kb.new_var("e", dt);
  loop_nest(kb, {outer * inner}, [&](const std::vector<E>& row) {
    E o = bin(Bin::div, row[0], int_(inner)), i = bin(Bin::rem, row[0], int_(inner));
    E at = offset({o, kb.v(j), i}, {outer, len, inner});
    E v = cx.ld(x, at);
    E e = exp_masked(sub(v, kb.v(mx)));
    // softmax stores each exp in its output and scales it there: each element's exp is computed once
    std::vector<Stmt> sum = {assign(s, add(kb.v(s), e))};
    if (!log) sum = {assign(ev, e), store(out, at, kb.v(ev)), assign(s, add(kb.v(s), kb.v(ev)))};
    E result = log ? sub(sub(v, kb.v(mx)), un(Un::log, kb.v(s))) : div(load(out, dt, at), kb.v(s));
    return std::vector<Stmt>{
        assign(mx, fconst(-kInf, dt)),
        vectorized_for(j, 0, len, {assign(mx, nan_max(kb.v(mx), v))}),
        assign(s, zero_of(dt)),
        for_(j, 0, len, std::move(sum)),
        for_(j, 0, len, {store(out, at, result)}),
    };
  }, 16);
  cx.emit(std::move(kb));
}

}  // namespace stag::lowering
