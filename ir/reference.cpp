// The reference interpreter: one plain, obviously correct implementation per op, in double.
// Layouts are row-major; images are NCHW, conv weights OIHW (transposed conv: IOHW).

#include "ir/reference.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "ir/attention.h"
#include "ir/geometry.h"
#include "ir/random.h"
#include "ir/scan.h"

namespace stag {

RefTensor RefTensor::filled(const Type& t, double fill) {
  return RefTensor(t, std::vector<double>(static_cast<size_t>(*checked_numel(t.dims)), fill));
}

namespace {

using Operands = std::vector<const RefTensor*>;
constexpr double kInf = std::numeric_limits<double>::infinity();

Dims strides_of(const Dims& d) {
  Dims s(d.size(), 1);
  for (size_t i = d.size(); i-- > 1;) s[i - 1] = s[i] * d[i];
  return s;
}

int64_t norm_axis(int64_t axis, size_t rank) { return axis < 0 ? axis + static_cast<int64_t>(rank) : axis; }

// Strides that read `in` (right-aligned, size-1 dims repeated) at the indices of `out`.
Dims broadcast_strides(const Dims& in, const Dims& out) {
  Dims s(out.size(), 0), own = strides_of(in);
  size_t off = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) s[off + i] = in[i] == 1 ? 0 : own[i];
  return s;
}

// Calls fn(out_index, offsets...) for each element of `out`, with the offset into each input.
template <typename Fn>
void for_each_broadcast(const Dims& out, const std::vector<Dims>& ins, Fn fn) {
  std::vector<Dims> st;
  for (const auto& d : ins) st.push_back(broadcast_strides(d, out));
  int64_t n = *checked_numel(out);
  Dims idx(out.size(), 0);
  std::vector<int64_t> off(ins.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    fn(i, off);
    for (size_t d = out.size(); d-- > 0;) {
      ++idx[d];
      for (size_t k = 0; k < ins.size(); ++k) off[k] += st[k][d];
      if (idx[d] < out[d]) break;
      for (size_t k = 0; k < ins.size(); ++k) off[k] -= st[k][d] * out[d];
      idx[d] = 0;
    }
  }
}

RefTensor elementwise(const Type& out, const Operands& xs, const auto& fn) {
  RefTensor r = RefTensor::filled(out, 0);
  std::vector<Dims> ins;
  for (auto* x : xs) ins.push_back(x->type.dims);
  for_each_broadcast(out.dims, ins, [&](int64_t i, const std::vector<int64_t>& off) {
    double a = xs[0]->data[off[0]];
    double b = xs.size() > 1 ? xs[1]->data[off[1]] : 0;
    double c = xs.size() > 2 ? xs[2]->data[off[2]] : 0;
    r.data[i] = fn(a, b, c);
  });
  return r;
}

// Integer results round toward zero, as C and PyTorch's integer ops do; floats stay double
// (the reference never rounds to f32 on the way).
double to_dtype(double v, DType t) {
  switch (t) {
    case DType::b8: return v != 0 ? 1 : 0;
    case DType::i32:
    case DType::i64: return std::trunc(v);
    default: return v;
  }
}

double gelu(double x, bool tanh_approx) {
  if (tanh_approx) return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
  return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
}

double unary(Op op, double x, const Node& n) {
  switch (op) {
    case Op::neg: return -x;
    case Op::abs: return std::fabs(x);
    case Op::exp: return std::exp(x);
    case Op::log: return std::log(x);
    case Op::sqrt: return std::sqrt(x);
    case Op::rsqrt: return 1 / std::sqrt(x);
    case Op::square: return x * x;
    case Op::tanh: return std::tanh(x);
    case Op::sigmoid: return 1 / (1 + std::exp(-x));
    case Op::relu: return x > 0 ? x : 0;
    case Op::leaky_relu: return x > 0 ? x : n.f("alpha") * x;
    case Op::gelu: return gelu(x, n.s("approximate") == "tanh");
    case Op::erf: return std::erf(x);
    case Op::sign: return (x > 0) - (x < 0);
    default: break;
  }
  throw std::logic_error("not a unary op");
}

double binary(Op op, double a, double b, DType t) {
  switch (op) {
    case Op::add: return a + b;
    case Op::sub: return a - b;
    case Op::mul: return a * b;
    case Op::div:
      if (is_int(t)) {
        if (b == 0) throw RefError("integer division by zero");
        return std::trunc(a / b);
      }
      return a / b;
    case Op::pow: return std::pow(a, b);
    case Op::maximum: return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b);
    case Op::minimum: return std::isnan(a) || std::isnan(b) ? NAN : std::min(a, b);
    case Op::gt: return a > b;
    case Op::ge: return a >= b;
    case Op::lt: return a < b;
    case Op::le: return a <= b;
    case Op::eq: return a == b;
    default: break;
  }
  throw std::logic_error("not a binary op");
}

// ---------------------------------------------------------------- reductions

// Calls fn(out_index, in_index) for each input element, mapping it to its reduced slot.
template <typename Fn>
void for_each_reduced(const Dims& in, const std::vector<bool>& reduced, Fn fn) {
  Dims out_dims;
  for (size_t i = 0; i < in.size(); ++i) out_dims.push_back(reduced[i] ? 1 : in[i]);
  Dims ost = strides_of(out_dims);
  for (size_t i = 0; i < in.size(); ++i)
    if (reduced[i]) ost[i] = 0;
  int64_t n = *checked_numel(in);
  Dims idx(in.size(), 0);
  int64_t o = 0;
  for (int64_t i = 0; i < n; ++i) {
    fn(o, i);
    for (size_t d = in.size(); d-- > 0;) {
      ++idx[d];
      o += ost[d];
      if (idx[d] < in[d]) break;
      o -= ost[d] * in[d];
      idx[d] = 0;
    }
  }
}

std::vector<bool> reduced_axes(const Ints& axes, size_t rank) {
  std::vector<bool> r(rank, axes.empty());
  for (int64_t a : axes) r[norm_axis(a, rank)] = true;
  return r;
}

RefTensor reduce(const Node& n, const RefTensor& x) {
  const Type& out = n.result()->type;
  auto red = reduced_axes(n.ints("axes"), x.type.rank());
  bool is_max = n.op == Op::max;
  RefTensor r = RefTensor::filled(out, is_max ? -kInf : 0);
  std::vector<int64_t> count(r.data.size(), 0);
  for_each_reduced(x.type.dims, red, [&](int64_t o, int64_t i) {
    double v = x.data[i];
    if (is_max) r.data[o] = (std::isnan(v) || v > r.data[o]) && !std::isnan(r.data[o]) ? v : r.data[o];
    else r.data[o] += v;
    ++count[o];
  });
  if (n.op == Op::mean)
    for (size_t i = 0; i < r.data.size(); ++i) r.data[i] /= static_cast<double>(count[i]);
  return r;
}

RefTensor argmax(const Node& n, const RefTensor& x) {
  size_t rank = x.type.rank();
  int64_t axis = norm_axis(n.i("axis"), rank);
  std::vector<bool> red(rank, false);
  red[axis] = true;
  RefTensor best = RefTensor::filled(n.result()->type, -kInf);
  RefTensor r = RefTensor::filled(n.result()->type, 0);
  int64_t inner = strides_of(x.type.dims)[axis], len = x.type.dims[axis];
  // The first maximum wins, as in PyTorch; a NaN counts as the maximum.
  for_each_reduced(x.type.dims, red, [&](int64_t o, int64_t i) {
    int64_t k = (i / inner) % len;
    double v = x.data[i];
    if (k == 0 || (!std::isnan(best.data[o]) && (std::isnan(v) || v > best.data[o]))) {
      best.data[o] = v;
      r.data[o] = static_cast<double>(k);
    }
  });
  return r;
}

// ---------------------------------------------------------------- linear algebra

RefTensor matmul(const Node& n, const RefTensor& a, const RefTensor& b) {
  const Type& out = n.result()->type;
  bool ta = n.b("transpose_a"), tb = n.b("transpose_b");
  size_t ra = a.type.rank(), rb = b.type.rank(), ro = out.rank();
  int64_t m = out.dims[ro - 2], nn = out.dims[ro - 1];
  int64_t k = ta ? a.type.dims[ra - 2] : a.type.dims[ra - 1];
  Dims batch(out.dims.begin(), out.dims.end() - 2);
  Dims ba(a.type.dims.begin(), a.type.dims.end() - 2), bb(b.type.dims.begin(), b.type.dims.end() - 2);
  RefTensor r = RefTensor::filled(out, 0);
  int64_t a_mat = a.type.dims[ra - 2] * a.type.dims[ra - 1], b_mat = b.type.dims[rb - 2] * b.type.dims[rb - 1];
  for_each_broadcast(batch, {ba, bb}, [&](int64_t bi, const std::vector<int64_t>& off) {
    const double* A = a.data.data() + off[0] * a_mat;
    const double* B = b.data.data() + off[1] * b_mat;
    double* C = r.data.data() + bi * m * nn;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < nn; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += (ta ? A[p * m + i] : A[i * k + p]) * (tb ? B[j * k + p] : B[p * nn + j]);
        C[i * nn + j] = s;
      }
  });
  return r;
}

// ---------------------------------------------------------------- neural network

RefTensor conv2d(const Node& n, const Operands& xs) {
  const RefTensor &x = *xs[0], &w = *xs[1];
  const Type& out = n.result()->type;
  int64_t N = x.type.dims[0], C = x.type.dims[1], H = x.type.dims[2], W = x.type.dims[3];
  int64_t O = out.dims[1], OH = out.dims[2], OW = out.dims[3], KH = w.type.dims[2], KW = w.type.dims[3];
  const Window2d win = Window2d::of(n);
  int64_t G = win.groups, cg = C / G, og = O / G;
  const Ints &s = win.stride, &p = win.padding, &d = win.dilation;
  RefTensor r = RefTensor::filled(out, 0);
  for (int64_t b = 0; b < N; ++b)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = xs.size() == 3 ? xs[2]->data[o] : 0;
          int64_t g = o / og;
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                int64_t ih = oh * s[0] - p[0] + kh * d[0], iw = ow * s[1] - p[1] + kw * d[1];
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += x.data[((b * C + g * cg + c) * H + ih) * W + iw] * w.data[((o * cg + c) * KH + kh) * KW + kw];
              }
          r.data[((b * O + o) * OH + oh) * OW + ow] = acc;
        }
  return r;
}

// dw[o, c, kh, kw] = sum over (b, oh, ow) of dy[b, o, oh, ow] times the input pixel under tap
// (kh, kw) of output (oh, ow): conv2d's sum with the weight's and the input's roles swapped.
RefTensor conv2d_weight_grad(const Node& n, const Operands& xs) {
  const RefTensor &x = *xs[0], &dy = *xs[1];
  const Type& out = n.result()->type;
  int64_t N = x.type.dims[0], C = x.type.dims[1], H = x.type.dims[2], W = x.type.dims[3];
  int64_t O = dy.type.dims[1], OH = dy.type.dims[2], OW = dy.type.dims[3], KH = out.dims[2], KW = out.dims[3];
  const Window2d win = Window2d::of(n);
  int64_t G = win.groups, cg = C / G, og = O / G;
  const Ints &s = win.stride, &p = win.padding, &d = win.dilation;
  RefTensor r = RefTensor::filled(out, 0);
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < cg; ++c)
      for (int64_t kh = 0; kh < KH; ++kh)
        for (int64_t kw = 0; kw < KW; ++kw) {
          double acc = 0;
          int64_t ci = o / og * cg + c;
          for (int64_t b = 0; b < N; ++b)
            for (int64_t oh = 0; oh < OH; ++oh)
              for (int64_t ow = 0; ow < OW; ++ow) {
                int64_t ih = oh * s[0] - p[0] + kh * d[0], iw = ow * s[1] - p[1] + kw * d[1];
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += dy.data[((b * O + o) * OH + oh) * OW + ow] * x.data[((b * C + ci) * H + ih) * W + iw];
              }
          r.data[((o * cg + c) * KH + kh) * KW + kw] = acc;
        }
  return r;
}

RefTensor conv_transpose2d(const Node& n, const Operands& xs) {
  const RefTensor &x = *xs[0], &w = *xs[1];
  const Type& out = n.result()->type;
  int64_t N = x.type.dims[0], C = x.type.dims[1], H = x.type.dims[2], W = x.type.dims[3];
  int64_t O = out.dims[1], OH = out.dims[2], OW = out.dims[3], KH = w.type.dims[2], KW = w.type.dims[3];
  const Window2d win = Window2d::of(n);
  int64_t G = win.groups, cg = C / G, og = O / G;
  const Ints &s = win.stride, &p = win.padding, &d = win.dilation;
  RefTensor r = RefTensor::filled(out, 0);
  // Each input pixel scatters its kernel-weighted value into the output.
  for (int64_t b = 0; b < N; ++b)
    for (int64_t c = 0; c < C; ++c) {
      int64_t g = c / cg;
      for (int64_t ih = 0; ih < H; ++ih)
        for (int64_t iw = 0; iw < W; ++iw)
          for (int64_t oc = 0; oc < og; ++oc)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                int64_t oh = ih * s[0] - p[0] + kh * d[0], ow = iw * s[1] - p[1] + kw * d[1];
                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                r.data[((b * O + g * og + oc) * OH + oh) * OW + ow] +=
                    x.data[((b * C + c) * H + ih) * W + iw] * w.data[((c * og + oc) * KH + kh) * KW + kw];
              }
    }
  if (xs.size() == 3)
    for (int64_t i = 0; i < r.numel(); ++i) r.data[i] += xs[2]->data[(i / (OH * OW)) % O];
  return r;
}

// A pooling node's window geometry: output (oh, ow) of a plane covers input rows
// h0 + kh*d[0] and columns w0 + kw*d[1], h0 = oh*s[0] - p[0], w0 = ow*s[1] - p[1].
struct PoolWindows {
  int64_t H, W, OH, OW;
  Ints k, s, p, d;
  PoolWindows(const Node& n, const Type& in, const Dims& pooled) : PoolWindows(Window2d::of(n), in, pooled) {}
  PoolWindows(const Window2d& g, const Type& in, const Dims& pooled)
      : H(in.dims[2]), W(in.dims[3]), OH(pooled[2]), OW(pooled[3]), k(g.kernel), s(g.stride), p(g.padding), d(g.dilation) {}
};

// Where in `plane` (H x W) the max of window (oh, ow) is: PyTorch's max_pool2d index, the
// first maximum in (kh, kw) order, except that every NaN takes over (so the last NaN); the
// first position inside the input when nothing beats -inf. Padding is never the answer.
int64_t window_max_at(const PoolWindows& w, const double* plane, int64_t oh, int64_t ow) {
  int64_t h0 = oh * w.s[0] - w.p[0], w0 = ow * w.s[1] - w.p[1], at = -1;
  double best = -kInf;
  for (int64_t kh = 0; kh < w.k[0]; ++kh)
    for (int64_t kw = 0; kw < w.k[1]; ++kw) {
      int64_t ih = h0 + kh * w.d[0], iw = w0 + kw * w.d[1];
      if (ih < 0 || ih >= w.H || iw < 0 || iw >= w.W) continue;
      double v = plane[ih * w.W + iw];
      if (at < 0 || std::isnan(v) || v > best) best = v, at = ih * w.W + iw;
    }
  return at;
}

RefTensor pool2d(const Node& n, const RefTensor& x) {
  const Type& out = n.result()->type;
  bool is_max = n.op == Op::max_pool2d;
  PoolWindows w(n, x.type, out.dims);
  int64_t N = x.type.dims[0], C = x.type.dims[1], H = w.H, W = w.W;
  const Ints &k = w.k, &p = w.p;
  bool include_pad = !is_max && n.b("count_include_pad");
  RefTensor r = RefTensor::filled(out, 0);
  for (int64_t b = 0; b < N * C; ++b)
    for (int64_t oh = 0; oh < w.OH; ++oh)
      for (int64_t ow = 0; ow < w.OW; ++ow) {
        double& result = r.data[(b * w.OH + oh) * w.OW + ow];
        const double* plane = x.data.data() + b * H * W;
        if (is_max) {
          result = plane[window_max_at(w, plane, oh, ow)];
          continue;
        }
        double acc = 0;
        int64_t count = 0;
        int64_t h0 = oh * w.s[0] - p[0], w0 = ow * w.s[1] - p[1];
        for (int64_t kh = 0; kh < k[0]; ++kh)
          for (int64_t kw = 0; kw < k[1]; ++kw) {
            int64_t ih = h0 + kh, iw = w0 + kw;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
            acc += plane[ih * W + iw];
            ++count;
          }
        // PyTorch divides by the window clipped to the padded input when padding counts.
        int64_t hend = std::min(h0 + k[0], H + p[0]), wend = std::min(w0 + k[1], W + p[1]);
        int64_t padded = (hend - h0) * (wend - w0);
        result = acc / static_cast<double>(include_pad ? padded : count);
      }
  return r;
}

// Each window's gradient goes to where max_pool2d took its value; overlapping windows add up.
RefTensor max_pool2d_grad(const Node& n, const RefTensor& x, const RefTensor& dy) {
  PoolWindows w(n, x.type, dy.type.dims);
  int64_t planes = x.type.dims[0] * x.type.dims[1];
  RefTensor r = RefTensor::filled(x.type, 0);
  for (int64_t b = 0; b < planes; ++b)
    for (int64_t oh = 0; oh < w.OH; ++oh)
      for (int64_t ow = 0; ow < w.OW; ++ow) {
        int64_t at = window_max_at(w, x.data.data() + b * w.H * w.W, oh, ow);
        r.data[b * w.H * w.W + at] += dy.data[(b * w.OH + oh) * w.OW + ow];
      }
  return r;
}

std::vector<RefTensor> batch_norm(const Node& n, const Operands& xs) {
  const RefTensor& x = *xs[0];
  int64_t N = x.type.dims[0], C = x.type.dims[1];
  int64_t inner = x.numel() / (N * C);
  Type ct{x.type.dtype, {C}};
  RefTensor mean(ct, xs[3]->data), var(ct, xs[4]->data);
  if (n.b("training")) {
    double count = static_cast<double>(N * inner);
    for (int64_t c = 0; c < C; ++c) {
      double s = 0, ss = 0;
      for (int64_t b = 0; b < N; ++b)
        for (int64_t i = 0; i < inner; ++i) s += x.data[(b * C + c) * inner + i];
      double m = s / count;
      for (int64_t b = 0; b < N; ++b)
        for (int64_t i = 0; i < inner; ++i) {
          double dv = x.data[(b * C + c) * inner + i] - m;
          ss += dv * dv;
        }
      mean.data[c] = m;
      var.data[c] = ss / count;
    }
  }
  RefTensor y = RefTensor::filled(x.type, 0);
  double eps = n.f("eps");
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t c = (i / inner) % C;
    y.data[i] = (x.data[i] - mean.data[c]) / std::sqrt(var.data[c] + eps) * xs[1]->data[c] + xs[2]->data[c];
  }
  return {y, mean, var};
}

RefTensor layer_norm(const Node& n, const Operands& xs) {
  const RefTensor& x = *xs[0];
  int64_t k = n.i("normalized_dims");
  int64_t inner = *checked_numel(Dims(x.type.dims.end() - k, x.type.dims.end()));
  RefTensor y = RefTensor::filled(x.type, 0);
  for (int64_t row = 0; row < x.numel() / inner; ++row) {
    const double* v = x.data.data() + row * inner;
    double m = 0, var = 0;
    for (int64_t i = 0; i < inner; ++i) m += v[i];
    m /= static_cast<double>(inner);
    for (int64_t i = 0; i < inner; ++i) var += (v[i] - m) * (v[i] - m);
    var /= static_cast<double>(inner);
    for (int64_t i = 0; i < inner; ++i) {
      double z = (v[i] - m) / std::sqrt(var + n.f("eps"));
      if (xs.size() == 3) z = z * xs[1]->data[i] + xs[2]->data[i];
      y.data[row * inner + i] = z;
    }
  }
  return y;
}

int64_t step_key(const Operands& xs, size_t index) {
  return xs.size() > index ? static_cast<int64_t>(xs[index]->data[0]) : 0;
}

RefTensor dropout(const Node& n, const Operands& xs) {
  const RefTensor& x = *xs[0];
  double p = n.f("p");
  if (!n.b("training") || p == 0) return x;
  RefTensor y = x;
  int64_t key = step_key(xs, 1), seed = n.i("seed"), first = step_key(xs, 2) * x.numel();
  for (int64_t i = 0; i < x.numel(); ++i)
    y.data[i] = random_uniform01(seed, key, first + i) < p ? 0 : x.data[i] / (1 - p);
  return y;
}

RefTensor softmax(const Node& n, const RefTensor& x) {
  size_t rank = x.type.rank();
  int64_t axis = norm_axis(n.i("axis"), rank);
  int64_t len = x.type.dims[axis], inner = strides_of(x.type.dims)[axis], outer = x.numel() / (len * inner);
  RefTensor y = RefTensor::filled(x.type, 0);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      auto at = [&](int64_t j) { return (o * len + j) * inner + in; };
      double mx = -kInf, s = 0;
      for (int64_t j = 0; j < len; ++j) mx = std::max(mx, x.data[at(j)]);
      for (int64_t j = 0; j < len; ++j) s += std::exp(x.data[at(j)] - mx);
      for (int64_t j = 0; j < len; ++j)
        y.data[at(j)] = n.op == Op::softmax ? std::exp(x.data[at(j)] - mx) / s : x.data[at(j)] - mx - std::log(s);
    }
  return y;
}

int64_t index_in_range(double v, int64_t size, std::string_view what) {
  if (!(v >= 0 && v < static_cast<double>(size)))
    throw RefError(fmt::format("{} index {} is out of range [0, {})", what, v, size));
  return static_cast<int64_t>(v);
}

RefTensor embedding(const Node& n, const RefTensor& w, const RefTensor& ids) {
  int64_t V = w.type.dims[0], D = w.type.dims[1];
  RefTensor y = RefTensor::filled(n.result()->type, 0);
  for (int64_t i = 0; i < ids.numel(); ++i) {
    int64_t row = index_in_range(ids.data[i], V, "embedding");
    std::copy_n(w.data.begin() + row * D, D, y.data.begin() + i * D);
  }
  return y;
}

// Rows of dy added into the rows their ids name, in the order of the ids.
RefTensor embedding_grad(const Node& n, const RefTensor& dy, const RefTensor& ids) {
  int64_t V = n.i("num_embeddings"), D = dy.type.dims.back();
  RefTensor dw = RefTensor::filled(n.result()->type, 0);
  for (int64_t i = 0; i < ids.numel(); ++i) {
    int64_t row = index_in_range(ids.data[i], V, "embedding_grad");
    for (int64_t d = 0; d < D; ++d) dw.data[row * D + d] += dy.data[i * D + d];
  }
  return dw;
}

RefTensor one_hot(const Node& n, const RefTensor& ids) {
  int64_t C = n.i("num_classes");
  RefTensor y = RefTensor::filled(n.result()->type, 0);
  for (int64_t i = 0; i < ids.numel(); ++i) y.data[i * C + index_in_range(ids.data[i], C, "one_hot")] = 1;
  return y;
}

// ---------------------------------------------------------------- shape

// Copies from `x` into a result, reading the input at index map(out multi-index).
template <typename Map>
RefTensor gather_by_index(const Type& out, const RefTensor& x, Map map) {
  RefTensor r = RefTensor::filled(out, 0);
  Dims xs = strides_of(x.type.dims), idx(out.rank(), 0);
  for (int64_t i = 0; i < r.numel(); ++i) {
    int64_t off = 0;
    if (map(idx, xs, off)) r.data[i] = x.data[off];
    for (size_t d = out.rank(); d-- > 0;) {
      if (++idx[d] < out.dims[d]) break;
      idx[d] = 0;
    }
  }
  return r;
}

RefTensor transpose(const Node& n, const RefTensor& x) {
  const Ints& perm = n.ints("perm");
  return gather_by_index(n.result()->type, x, [&](const Dims& idx, const Dims& xs, int64_t& off) {
    for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * xs[norm_axis(perm[d], idx.size())];
    return true;
  });
}

RefTensor slice(const Node& n, const RefTensor& x) {
  size_t rank = x.type.rank();
  Dims start(rank, 0), step(rank, 1);
  const Ints &axes = n.ints("axes"), &starts = n.ints("starts");
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t a = norm_axis(axes[i], rank);
    start[a] = starts[i] < 0 ? starts[i] + x.type.dims[a] : starts[i];
    if (!n.ints("steps").empty()) step[a] = n.ints("steps")[i];
  }
  return gather_by_index(n.result()->type, x, [&](const Dims& idx, const Dims& xs, int64_t& off) {
    for (size_t d = 0; d < rank; ++d) off += (start[d] + idx[d] * step[d]) * xs[d];
    return true;
  });
}

RefTensor pad(const Node& n, const RefTensor& x) {
  const Ints& pads = n.ints("pads");
  RefTensor r = gather_by_index(n.result()->type, x, [&](const Dims& idx, const Dims& xs, int64_t& off) {
    for (size_t d = 0; d < idx.size(); ++d) {
      int64_t i = idx[d] - pads[2 * d];
      if (i < 0 || i >= x.type.dims[d]) return false;
      off += i * xs[d];
    }
    return true;
  });
  // gather_by_index leaves 0 outside; fill the padding value there.
  RefTensor mask = gather_by_index(n.result()->type, RefTensor::filled(x.type, 1),
                                   [&](const Dims& idx, const Dims& xs, int64_t& off) {
                                     for (size_t d = 0; d < idx.size(); ++d) {
                                       int64_t i = idx[d] - pads[2 * d];
                                       if (i < 0 || i >= x.type.dims[d]) return false;
                                       off += i * xs[d];
                                     }
                                     return true;
                                   });
  for (int64_t i = 0; i < r.numel(); ++i)
    if (mask.data[i] == 0) r.data[i] = n.f("value");
  return r;
}

// Outer/inner extents around `axis`: the tensor is [outer, dims[axis], inner].
std::pair<int64_t, int64_t> around(const Dims& d, int64_t axis) {
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= d[i];
  for (size_t i = axis + 1; i < d.size(); ++i) inner *= d[i];
  return {outer, inner};
}

RefTensor concat(const Node& n, const Operands& xs) {
  const Type& out = n.result()->type;
  int64_t axis = norm_axis(n.i("axis"), out.rank());
  auto [outer, inner] = around(out.dims, axis);
  RefTensor r = RefTensor::filled(out, 0);
  int64_t at = 0;  // offset along the axis
  for (const RefTensor* x : xs) {
    int64_t len = x->type.dims[axis];
    for (int64_t o = 0; o < outer; ++o)
      std::copy_n(x->data.begin() + o * len * inner, len * inner,
                  r.data.begin() + (o * out.dims[axis] + at) * inner);
    at += len;
  }
  return r;
}

std::vector<RefTensor> split(const Node& n, const RefTensor& x) {
  int64_t axis = norm_axis(n.i("axis"), x.type.rank());
  auto [outer, inner] = around(x.type.dims, axis);
  std::vector<RefTensor> parts;
  int64_t at = 0;
  for (const auto& v : n.results) {
    RefTensor r = RefTensor::filled(v->type, 0);
    int64_t len = v->type.dims[axis];
    for (int64_t o = 0; o < outer; ++o)
      std::copy_n(x.data.begin() + (o * x.type.dims[axis] + at) * inner, len * inner,
                  r.data.begin() + o * len * inner);
    at += len;
    parts.push_back(std::move(r));
  }
  return parts;
}

// ---------------------------------------------------------------- losses

RefTensor reduce_loss(const Node& n, const Type& per_type, std::vector<double> per, double count) {
  const std::string& red = n.s("reduction");
  if (red == "none") return RefTensor(per_type, std::move(per));
  double s = std::accumulate(per.begin(), per.end(), 0.0);
  // PyTorch: a mean over zero counted elements (every label ignored) is NaN.
  return RefTensor(n.result()->type, {red == "sum" ? s : s / count});
}

RefTensor regression_loss(const Node& n, const RefTensor& x, const RefTensor& t) {
  std::vector<double> per(x.data.size());
  for (size_t i = 0; i < per.size(); ++i) {
    double d = x.data[i] - t.data[i];
    switch (n.op) {
      case Op::mse: per[i] = d * d; break;
      case Op::huber: {
        double delta = n.f("delta");
        per[i] = std::fabs(d) < delta ? 0.5 * d * d : delta * (std::fabs(d) - 0.5 * delta);
        break;
      }
      default:  // bce_with_logits, in the overflow-free form
        per[i] = std::max(x.data[i], 0.0) - x.data[i] * t.data[i] + std::log1p(std::exp(-std::fabs(x.data[i])));
    }
  }
  return reduce_loss(n, x.type, std::move(per), static_cast<double>(per.size()));
}

RefTensor classification_loss(const Node& n, const RefTensor& x, const RefTensor& labels) {
  int64_t N = x.type.dims[0], C = x.type.dims[1];
  int64_t ignore = n.i("ignore_index");
  bool from_logits = n.op == Op::cross_entropy;
  double smooth = from_logits ? n.f("label_smoothing") : 0;
  std::vector<double> per(N, 0.0);
  double count = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (static_cast<int64_t>(labels.data[i]) == ignore) continue;
    int64_t y = index_in_range(labels.data[i], C, n.info().name);
    const double* row = x.data.data() + i * C;
    std::vector<double> logp(row, row + C);
    if (from_logits) {
      double mx = *std::max_element(row, row + C), s = 0;
      for (int64_t c = 0; c < C; ++c) s += std::exp(row[c] - mx);
      for (int64_t c = 0; c < C; ++c) logp[c] = row[c] - mx - std::log(s);
    }
    per[i] = -logp[y];
    if (smooth != 0) {  // only then: a -inf logit elsewhere makes the smoothing term infinite, as in PyTorch
      double all = 0;
      for (int64_t c = 0; c < C; ++c) all -= logp[c];
      per[i] = (1 - smooth) * per[i] + smooth / static_cast<double>(C) * all;
    }
    count += 1;
  }
  return reduce_loss(n, {x.type.dtype, {N}}, std::move(per), count);
}

// ---------------------------------------------------------------- sources

RefTensor source(const Node& n, const Operands& xs) {
  const Type& t = n.result()->type;
  RefTensor r = RefTensor::filled(t, 0);
  int64_t first = step_key(xs, 1) * r.numel();  // ops.def: the part's counters
  switch (n.op) {
    case Op::constant: {
      const Floats& v = n.floats("value");
      for (int64_t i = 0; i < r.numel(); ++i) r.data[i] = v.size() == 1 ? v[0] : v[i];
      break;
    }
    case Op::iota: {
      int64_t axis = norm_axis(n.i("axis"), t.rank());
      int64_t inner = strides_of(t.dims)[axis];
      for (int64_t i = 0; i < r.numel(); ++i) r.data[i] = static_cast<double>((i / inner) % t.dims[axis]);
      break;
    }
    case Op::random_uniform:
      for (int64_t i = 0; i < r.numel(); ++i)
        r.data[i] = n.f("low") + (n.f("high") - n.f("low")) * random_uniform01(n.i("seed"), step_key(xs, 0), first + i);
      break;
    case Op::random_normal:
      for (int64_t i = 0; i < r.numel(); ++i)
        r.data[i] = n.f("mean") + n.f("std") * random_standard_normal(n.i("seed"), step_key(xs, 0), first + i);
      break;
    default: throw std::logic_error("not a computed source");
  }
  return r;
}

}  // namespace

double round_to_bf16(double x) {
  float f = static_cast<float>(x);
  if (std::isnan(f)) return x;
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&f, &bits, 4);
  return f;
}

// The node's results from its operands, as they are given.
static std::vector<RefTensor> evaluate_op(const Node& n, const Operands& xs) {
  const Type& out = n.results.empty() ? Type{} : n.result()->type;
  const RefTensor* x = xs.empty() ? nullptr : xs[0];
  const OpInfo& info = n.info();
  if (info.has(Elementwise)) {
    DType t = xs[0]->type.dtype;
    if (n.op == Op::cast) return {elementwise(out, xs, [&](double a, double, double) { return to_dtype(a, out.dtype); })};
    if (n.op == Op::select) return {elementwise(out, xs, [](double c, double a, double b) { return c != 0 ? a : b; })};
    if (xs.size() == 1)
      return {elementwise(out, xs, [&](double a, double, double) { return to_dtype(unary(n.op, a, n), t); })};
    return {elementwise(out, xs, [&](double a, double b, double) { return to_dtype(binary(n.op, a, b, t), out.dtype); })};
  }
  switch (n.op) {
    case Op::input:
    case Op::parameter: throw std::logic_error("inputs and parameters are fed, not evaluated");
    case Op::constant:
    case Op::iota:
    case Op::random_uniform:
    case Op::random_normal: return {source(n, xs)};
    case Op::sum:
    case Op::mean:
    case Op::max: return {reduce(n, *x)};
    case Op::argmax: return {argmax(n, *x)};
    case Op::matmul: return {matmul(n, *xs[0], *xs[1])};
    case Op::conv2d: return {conv2d(n, xs)};
    case Op::conv_transpose2d: return {conv_transpose2d(n, xs)};
    case Op::conv2d_weight_grad: return {conv2d_weight_grad(n, xs)};
    case Op::max_pool2d:
    case Op::avg_pool2d: return {pool2d(n, *x)};
    case Op::max_pool2d_grad: return {max_pool2d_grad(n, *x, *xs[1])};
    case Op::global_avg_pool: {
      int64_t hw = x->type.dims[2] * x->type.dims[3];
      RefTensor r = RefTensor::filled(out, 0);
      for (int64_t i = 0; i < x->numel(); ++i) r.data[i / hw] += x->data[i] / static_cast<double>(hw);
      return {r};
    }
    case Op::batch_norm: return batch_norm(n, xs);
    case Op::layer_norm: return {layer_norm(n, xs)};
    case Op::dropout: return {dropout(n, xs)};
    case Op::softmax:
    case Op::log_softmax: return {softmax(n, *x)};
    case Op::attention: return evaluate_attention(n, xs);
    case Op::attention_grad: return evaluate_attention_grad(n, xs);
    case Op::embedding: return {embedding(n, *xs[0], *xs[1])};
    case Op::embedding_grad: return {embedding_grad(n, *x, *xs[1])};
    case Op::one_hot: return {one_hot(n, *x)};
    case Op::reshape:
    case Op::flatten: return {RefTensor(out, x->data)};
    case Op::transpose: return {transpose(n, *x)};
    case Op::broadcast_to: return {elementwise(out, xs, [](double a, double, double) { return a; })};
    case Op::concat: return {concat(n, xs)};
    case Op::slice: return {slice(n, *x)};
    case Op::pad: return {pad(n, *x)};
    case Op::split: return split(n, *x);
    case Op::scan: return evaluate_scan(n, xs);
    case Op::mse:
    case Op::huber:
    case Op::bce_with_logits: return {regression_loss(n, *xs[0], *xs[1])};
    case Op::cross_entropy:
    case Op::nll: return {classification_loss(n, *xs[0], *xs[1])};
    case Op::l1_penalty:
    case Op::l2_penalty: {
      double s = 0;
      for (double v : x->data) s += n.op == Op::l1_penalty ? std::fabs(v) : v * v;
      return {RefTensor(out, {s})};
    }
    default: break;
  }
  throw std::logic_error(fmt::format("reference interpreter: no implementation of {}", info.name));
}

// A bf16 product multiplies its first two operands rounded to bf16; the rest as they are.
std::vector<RefTensor> evaluate(const Node& n, const Operands& xs) {
  if (!n.in_bf16()) return evaluate_op(n, xs);
  std::vector<RefTensor> rounded{*xs[0], *xs[1]};
  for (auto& t : rounded)
    for (double& v : t.data) v = round_to_bf16(v);
  Operands ys = xs;
  ys[0] = &rounded[0], ys[1] = &rounded[1];
  return evaluate_op(n, ys);
}

RefResult interpret(const Graph& g, const std::map<std::string, RefTensor>& feeds, bool keep_values) {
  std::unordered_map<const Value*, RefTensor> env;
  for (const auto& node : g.nodes) {
    if (node->op == Op::input || node->op == Op::parameter) {
      const Value* v = node->result();
      auto it = feeds.find(v->name);
      if (it == feeds.end()) throw RefError(fmt::format("no value fed for %{} ({})", v->name, to_string(v->type)));
      if (it->second.type != v->type || it->second.numel() != *checked_numel(v->type.dims))
        throw RefError(fmt::format("%{} is {} but the value fed is {}", v->name, to_string(v->type),
                                   to_string(it->second.type)));
      env[v] = it->second;
      continue;
    }
    Operands xs;
    for (const Value* v : node->operands) xs.push_back(&env.at(v));
    auto results = evaluate(*node, xs);
    for (size_t i = 0; i < results.size(); ++i) env[node->result(i)] = std::move(results[i]);
  }
  RefResult r;
  for (const auto& o : g.outputs) r.outputs[o.name] = env.at(o.value);
  for (const auto& u : g.updates) r.updates[u.target->name] = env.at(u.value);
  if (keep_values)
    for (auto& [v, t] : env) r.values[v->name] = t;
  return r;
}

}  // namespace stag
