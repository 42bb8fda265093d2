// Shape rules: for each op, what its operands must be and what its results are.
// One function per row of ops.def's shape_rule column; messages omit the op name (the caller
// prefixes it) and name both shapes when two disagree.

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "ir/geometry.h"
#include "ir/ops.h"

namespace stag::rules {

namespace {

std::string t(const Type& x) { return to_string(x); }

// Python-style axis: -1 is the last. Nullopt when out of range.
std::optional<int64_t> norm_axis(int64_t axis, size_t rank) {
  int64_t r = static_cast<int64_t>(rank);
  if (axis < -r || axis >= r) return std::nullopt;
  return axis < 0 ? axis + r : axis;
}

std::string bad_axis(int64_t axis, const Type& x) {
  return fmt::format("axis {} is out of range for {} (rank {})", axis, t(x), x.rank());
}

std::string need_float(const Type& x, std::string_view what = "operand") {
  if (is_float(x.dtype)) return {};
  return fmt::format("{} must be f32 or f64, got {}", what, t(x));
}

std::string need_numeric(const Type& x, std::string_view what = "operand") {
  if (x.dtype != DType::b8) return {};
  return fmt::format("{} must be numeric, got {}", what, t(x));
}

std::string need_int(const Type& x, std::string_view what) {
  if (is_int(x.dtype)) return {};
  return fmt::format("{} must be i32 or i64, got {}", what, t(x));
}

std::string need_rank(const Type& x, size_t rank, std::string_view what) {
  if (x.rank() == rank) return {};
  return fmt::format("{} must have rank {}, got {}", what, rank, t(x));
}

// numpy broadcasting of two shapes; nullopt when they do not broadcast.
std::optional<Dims> broadcast(const Dims& a, const Dims& b) {
  size_t r = std::max(a.size(), b.size());
  Dims out(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t x = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t y = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (x != y && x != 1 && y != 1) return std::nullopt;
    out[i] = x == 1 ? y : x;
  }
  return out;
}

std::string same_dtype(const Type& a, const Type& b) {
  if (a.dtype == b.dtype) return {};
  return fmt::format("operands have different element types: {} and {}", t(a), t(b));
}

std::string broadcast_pair(ShapeCtx& c, DType result) {
  const Type &a = c.operands[0], &b = c.operands[1];
  if (auto e = same_dtype(a, b); !e.empty()) return e;
  auto dims = broadcast(a.dims, b.dims);
  if (!dims) return fmt::format("cannot broadcast {} with {}", t(a), t(b));
  c.results.push_back({result, *dims});
  return {};
}

std::string check_pair(const Ints& v, std::string_view name, int64_t min) {
  if (v.size() != 2) return fmt::format("{} must have 2 values, got {}", name, v.size());
  for (int64_t x : v)
    if (x < min) return fmt::format("{} values must be at least {}, got {}", name, min, x);
  return {};
}

// Normalised, duplicate-free reduction axes; empty `axes` means every axis.
std::string reduction_axes(const Ints& axes, const Type& x, std::vector<bool>& reduced) {
  reduced.assign(x.rank(), axes.empty());
  for (int64_t a : axes) {
    auto n = norm_axis(a, x.rank());
    if (!n) return bad_axis(a, x);
    if (reduced[*n]) return fmt::format("axis {} is listed twice", a);
    reduced[*n] = true;
  }
  return {};
}

std::string reduce(ShapeCtx& c, DType result) {
  const Type& x = c.operands[0];
  std::vector<bool> reduced;
  if (auto e = reduction_axes(c.ints("axes"), x, reduced); !e.empty()) return e;
  Dims out;
  for (size_t i = 0; i < x.rank(); ++i) {
    if (!reduced[i]) out.push_back(x.dims[i]);
    else if (c.b("keepdims")) out.push_back(1);
  }
  c.results.push_back({result, out});
  return {};
}

std::string declared_one(ShapeCtx& c) {
  if (c.declared.size() != 1)
    return fmt::format("needs exactly one declared result type, got {}", c.declared.size());
  return {};
}

std::string scalar_key(ShapeCtx& c, size_t index) {
  if (c.operands.size() <= index) return {};
  const Type& k = c.operands[index];
  if (k.dtype != DType::i64 || k.rank() != 0)
    return fmt::format("the generator key must be i64[], got {}", t(k));
  return {};
}

std::string scalar_part(ShapeCtx& c, size_t index) {
  if (c.operands.size() <= index) return {};
  const Type& k = c.operands[index];
  if (k.dtype != DType::i64 || k.rank() != 0) return fmt::format("the part must be i64[], got {}", t(k));
  return {};
}

std::string loss_result(ShapeCtx& c, const Type& per_element) {
  const std::string& red = c.s("reduction");
  if (red == "none") c.results.push_back(per_element);
  else c.results.push_back({per_element.dtype, {}});
  return {};
}

}  // namespace

// ---------------------------------------------------------------- sources

std::string source_any(ShapeCtx& c) {
  if (auto e = declared_one(c); !e.empty()) return e;
  c.results.push_back(c.declared[0]);
  return {};
}

std::string source_float(ShapeCtx& c) {
  if (auto e = declared_one(c); !e.empty()) return e;
  if (auto e = need_float(c.declared[0], "type"); !e.empty()) return e;
  const std::string& init = c.s("init");
  if (init == "uniform" && !(c.f("low") < c.f("high")))
    return fmt::format("uniform init needs low < high, got low={} high={}", format_float(c.f("low")),
                       format_float(c.f("high")));
  if ((init == "normal") && !(c.f("std") >= 0))
    return fmt::format("normal init needs std >= 0, got {}", format_float(c.f("std")));
  bool fan_based = init.starts_with("xavier") || init.starts_with("kaiming") || init == "orthogonal";
  if (fan_based && c.declared[0].rank() < 2)
    return fmt::format("{} init needs a parameter of rank 2 or more, got {}", init, t(c.declared[0]));
  c.results.push_back(c.declared[0]);
  return {};
}

std::string constant(ShapeCtx& c) {
  if (auto e = declared_one(c); !e.empty()) return e;
  const Type& ty = c.declared[0];
  const Floats& v = c.floats("value");
  auto n = checked_numel(ty.dims);
  if (v.size() != 1 && (!n || static_cast<int64_t>(v.size()) != *n))
    return fmt::format("value has {} elements but {} needs {} (or 1, to fill it)", v.size(), t(ty),
                       n ? std::to_string(*n) : "too many");
  for (double x : v) {
    if (is_float(ty.dtype)) continue;
    // The range check comes first: converting nan or an out-of-range double to int64 is UB.
    bool integral = x >= -0x1p63 && x < 0x1p63 && x == static_cast<double>(static_cast<int64_t>(x));
    if (!integral || (ty.dtype == DType::b8 && x != 0 && x != 1) ||
        (ty.dtype == DType::i32 && (x < -2147483648.0 || x > 2147483647.0)))
      return fmt::format("value {} is not a valid {}", format_float(x), dtype_name(ty.dtype));
  }
  c.results.push_back(ty);
  return {};
}

std::string iota(ShapeCtx& c) {
  if (auto e = declared_one(c); !e.empty()) return e;
  const Type& ty = c.declared[0];
  if (ty.dtype == DType::b8) return fmt::format("type must be numeric, got {}", t(ty));
  if (!norm_axis(c.i("axis"), ty.rank())) return bad_axis(c.i("axis"), ty);
  c.results.push_back(ty);
  return {};
}

std::string source_random(ShapeCtx& c) {
  if (auto e = declared_one(c); !e.empty()) return e;
  if (auto e = need_float(c.declared[0], "type"); !e.empty()) return e;
  if (auto e = scalar_key(c, 0); !e.empty()) return e;
  if (auto e = scalar_part(c, 1); !e.empty()) return e;
  if (c.info.attr_index("std") >= 0 && !(c.f("std") >= 0))
    return fmt::format("std must be >= 0, got {}", format_float(c.f("std")));
  if (c.info.attr_index("low") >= 0 && !(c.f("low") < c.f("high")))
    return fmt::format("needs low < high, got low={} high={}", format_float(c.f("low")),
                       format_float(c.f("high")));
  c.results.push_back(c.declared[0]);
  return {};
}

// ---------------------------------------------------------------- elementwise

std::string unary_float(ShapeCtx& c) {
  if (auto e = need_float(c.operands[0]); !e.empty()) return e;
  c.results.push_back(c.operands[0]);
  return {};
}

std::string unary_numeric(ShapeCtx& c) {
  if (auto e = need_numeric(c.operands[0]); !e.empty()) return e;
  c.results.push_back(c.operands[0]);
  return {};
}

std::string cast(ShapeCtx& c) {
  c.results.push_back({c.dtype("to"), c.operands[0].dims});
  return {};
}

std::string binary_numeric(ShapeCtx& c) {
  if (auto e = need_numeric(c.operands[0], "lhs"); !e.empty()) return e;
  return broadcast_pair(c, c.operands[0].dtype);
}

std::string binary_float(ShapeCtx& c) {
  if (auto e = need_float(c.operands[0], "lhs"); !e.empty()) return e;
  return broadcast_pair(c, c.operands[0].dtype);
}

std::string compare(ShapeCtx& c) {
  return broadcast_pair(c, DType::b8);  // any one element type, bool included, as in PyTorch
}

std::string select(ShapeCtx& c) {
  const Type &cond = c.operands[0], &a = c.operands[1], &b = c.operands[2];
  if (cond.dtype != DType::b8) return fmt::format("condition must be bool, got {}", t(cond));
  if (auto e = same_dtype(a, b); !e.empty()) return e;
  auto ab = broadcast(a.dims, b.dims);
  auto all = ab ? broadcast(cond.dims, *ab) : std::nullopt;
  if (!all) return fmt::format("cannot broadcast {}, {} and {}", t(cond), t(a), t(b));
  c.results.push_back({a.dtype, *all});
  return {};
}

// ---------------------------------------------------------------- reductions

std::string reduce_numeric(ShapeCtx& c) {
  // As in PyTorch, a sum of integers or bools (counting a mask) accumulates and returns i64;
  // max keeps the element type.
  DType d = c.operands[0].dtype;
  if (c.info.op == Op::sum && !is_float(d)) return reduce(c, DType::i64);
  if (auto e = need_numeric(c.operands[0]); !e.empty()) return e;
  return reduce(c, d);
}

std::string reduce_float(ShapeCtx& c) {
  if (auto e = need_float(c.operands[0]); !e.empty()) return e;
  return reduce(c, c.operands[0].dtype);
}

std::string argmax(ShapeCtx& c) {
  const Type& x = c.operands[0];
  if (auto e = need_numeric(x); !e.empty()) return e;
  auto axis = norm_axis(c.i("axis"), x.rank());
  if (!axis) return bad_axis(c.i("axis"), x);
  Dims out;
  for (size_t i = 0; i < x.rank(); ++i) {
    if (static_cast<int64_t>(i) != *axis) out.push_back(x.dims[i]);
    else if (c.b("keepdims")) out.push_back(1);
  }
  c.results.push_back({DType::i64, out});
  return {};
}

// ---------------------------------------------------------------- linear algebra

std::string matmul(ShapeCtx& c) {
  const Type &a = c.operands[0], &b = c.operands[1];
  if (auto e = need_float(a, "lhs"); !e.empty()) return e;
  if (auto e = same_dtype(a, b); !e.empty()) return e;
  if (a.rank() < 2 || b.rank() < 2)
    return fmt::format("operands must have rank 2 or more, got {} x {}", t(a), t(b));
  size_t ra = a.rank(), rb = b.rank();
  bool ta = c.b("transpose_a"), tb = c.b("transpose_b");
  int64_t m = ta ? a.dims[ra - 1] : a.dims[ra - 2];
  int64_t ka = ta ? a.dims[ra - 2] : a.dims[ra - 1];
  int64_t kb = tb ? b.dims[rb - 1] : b.dims[rb - 2];
  int64_t n = tb ? b.dims[rb - 2] : b.dims[rb - 1];
  if (ka != kb)
    return fmt::format("inner dimensions differ ({} vs {}): {}{} x {}{}", ka, kb, t(a), ta ? "^T" : "",
                       t(b), tb ? "^T" : "");
  auto batch = broadcast(Dims(a.dims.begin(), a.dims.end() - 2), Dims(b.dims.begin(), b.dims.end() - 2));
  if (!batch) return fmt::format("batch dimensions do not broadcast: {} x {}", t(a), t(b));
  batch->push_back(m);
  batch->push_back(n);
  c.results.push_back({a.dtype, *batch});
  return {};
}

// ---------------------------------------------------------------- neural network

namespace {

std::string conv_common(ShapeCtx& c, bool transposed) {
  const Window2d win = Window2d::of(c);
  const Type &x = c.operands[0], &w = c.operands[1];
  if (auto e = need_float(x, "input"); !e.empty()) return e;
  if (auto e = need_rank(x, 4, "input"); !e.empty()) return e;
  if (auto e = need_rank(w, 4, "weight"); !e.empty()) return e;
  if (auto e = same_dtype(x, w); !e.empty()) return e;
  if (auto e = check_pair(win.stride, "stride", 1); !e.empty()) return e;
  if (auto e = check_pair(win.padding, "padding", 0); !e.empty()) return e;
  if (auto e = check_pair(win.dilation, "dilation", 1); !e.empty()) return e;
  int64_t g = win.groups;
  if (g < 1) return fmt::format("groups must be at least 1, got {}", g);
  int64_t cin = x.dims[1];
  if (cin % g != 0) return fmt::format("input channels {} are not divisible by groups {}", cin, g);
  int64_t cout;
  if (!transposed) {
    cout = w.dims[0];
    auto expects = checked_mul(w.dims[1], g);
    if (!expects || *expects != cin)
      return fmt::format("weight {} expects {} input channels, input {} has {}", t(w),
                         expects ? std::to_string(*expects) : "too many", t(x), cin);
    if (cout % g != 0) return fmt::format("output channels {} are not divisible by groups {}", cout, g);
  } else {
    if (w.dims[0] != cin)
      return fmt::format("weight {} expects {} input channels, input {} has {}", t(w), w.dims[0],
                         t(x), cin);
    auto co = checked_mul(w.dims[1], g);
    if (!co) return "output channel count overflows";
    cout = *co;
  }
  if (c.operands.size() == 3) {
    const Type& bias = c.operands[2];
    if (bias.dtype != x.dtype || bias.dims != Dims{cout})
      return fmt::format("bias must be {}[{}], got {}", dtype_name(x.dtype), cout, t(bias));
  }
  Dims out{x.dims[0], cout, 0, 0};
  for (int i = 0; i < 2; ++i) {
    int64_t in = x.dims[2 + i], k = w.dims[2 + i];
    int64_t s = win.stride[i], p = win.padding[i], d = win.dilation[i];
    // Attributes come from text: compute in 128 bits so absurd values report, never wrap.
    __int128 span = static_cast<__int128>(d) * (k - 1);
    __int128 o;
    if (!transposed) {
      __int128 padded = static_cast<__int128>(in) + 2 * static_cast<__int128>(p);
      if (padded < span + 1)
        return fmt::format("kernel {} (dilation {}) is larger than the padded input {} in dimension {}",
                           k, d, static_cast<int64_t>(std::min<__int128>(padded, INT64_MAX)), 2 + i);
      o = (padded - span - 1) / s + 1;
    } else {
      int64_t op = win.output_padding[i];
      if (op < 0 || (op >= s && op >= d))
        return fmt::format("output_padding {} must be smaller than stride {} or dilation {}", op, s, d);
      o = static_cast<__int128>(in - 1) * s - 2 * static_cast<__int128>(p) + span + op + 1;
      if (o < 1) return fmt::format("output size {} in dimension {} is not positive", static_cast<int64_t>(std::max<__int128>(o, INT64_MIN)), 2 + i);
    }
    if (o > INT64_MAX) return fmt::format("output size in dimension {} overflows", 2 + i);
    out[2 + i] = static_cast<int64_t>(o);
  }
  c.results.push_back({x.dtype, out});
  return {};
}

}  // namespace

std::string conv2d(ShapeCtx& c) { return conv_common(c, false); }

// x [N, C, H, W] and dy [N, O, OH, OW], where (OH, OW) is conv2d's output of x for the
// kernel and attributes; the result is the weight's [O, C / groups, KH, KW].
std::string conv2d_weight_grad(ShapeCtx& c) {
  const Window2d win = Window2d::of(c);
  const Type &x = c.operands[0], &dy = c.operands[1];
  if (auto e = need_float(x, "input"); !e.empty()) return e;
  if (auto e = need_rank(x, 4, "input"); !e.empty()) return e;
  if (auto e = need_rank(dy, 4, "output gradient"); !e.empty()) return e;
  if (auto e = same_dtype(x, dy); !e.empty()) return e;
  const Ints& kernel = win.kernel;
  if (auto e = check_pair(kernel, "kernel", 1); !e.empty()) return e;
  if (auto e = check_pair(win.stride, "stride", 1); !e.empty()) return e;
  if (auto e = check_pair(win.padding, "padding", 0); !e.empty()) return e;
  if (auto e = check_pair(win.dilation, "dilation", 1); !e.empty()) return e;
  int64_t g = win.groups;
  if (g < 1) return fmt::format("groups must be at least 1, got {}", g);
  if (dy.dims[0] != x.dims[0]) return fmt::format("batch sizes differ: input {}, output gradient {}", t(x), t(dy));
  int64_t cin = x.dims[1], cout = dy.dims[1];
  if (cin % g != 0) return fmt::format("input channels {} are not divisible by groups {}", cin, g);
  if (cout % g != 0) return fmt::format("output channels {} are not divisible by groups {}", cout, g);
  for (int i = 0; i < 2; ++i) {
    int64_t s = win.stride[i], p = win.padding[i], d = win.dilation[i];
    __int128 span = static_cast<__int128>(d) * (kernel[i] - 1);
    __int128 padded = static_cast<__int128>(x.dims[2 + i]) + 2 * static_cast<__int128>(p);
    if (padded < span + 1)
      return fmt::format("kernel {} (dilation {}) is larger than the padded input {} in dimension {}", kernel[i], d,
                         static_cast<int64_t>(std::min<__int128>(padded, INT64_MAX)), 2 + i);
    __int128 o = (padded - span - 1) / s + 1;
    if (o != dy.dims[2 + i])
      return fmt::format("output gradient {} must have size {} in dimension {}, the convolution's output of input {}", t(dy),
                         static_cast<int64_t>(std::min<__int128>(o, INT64_MAX)), 2 + i, t(x));
  }
  c.results.push_back({x.dtype, {cout, cin / g, kernel[0], kernel[1]}});
  return {};
}

std::string conv_transpose2d(ShapeCtx& c) {
  const Window2d win = Window2d::of(c);
  if (auto e = check_pair(win.output_padding, "output_padding", 0); !e.empty()) return e;
  return conv_common(c, true);
}

namespace {

// The result dims of pooling input `x` with the op's window attributes (PyTorch's
// pooling_output_shape), or the reason there are none.
std::string pooled_dims(ShapeCtx& c, const Type& x, Dims& out) {
  const Window2d win = Window2d::of(c);
  if (auto e = need_float(x, "input"); !e.empty()) return e;
  if (auto e = need_rank(x, 4, "input"); !e.empty()) return e;
  const Ints& kernel = win.kernel;
  const Ints& stride = win.stride;
  const Ints& pad = win.padding;
  const Ints& dil = win.dilation;
  if (auto e = check_pair(kernel, "kernel", 1); !e.empty()) return e;
  if (auto e = check_pair(stride, "stride", 1); !e.empty()) return e;
  if (auto e = check_pair(pad, "padding", 0); !e.empty()) return e;
  if (auto e = check_pair(dil, "dilation", 1); !e.empty()) return e;
  out = {x.dims[0], x.dims[1], 0, 0};
  for (int i = 0; i < 2; ++i) {
    if (static_cast<__int128>(pad[i]) * 2 > kernel[i])
      return fmt::format("padding {} must be at most half the kernel {}", pad[i], kernel[i]);
    __int128 in = x.dims[2 + i], span = static_cast<__int128>(dil[i]) * (kernel[i] - 1) + 1;
    __int128 padded = in + 2 * static_cast<__int128>(pad[i]);
    // Floor division (a window may overhang the input only in ceil_mode), and the last window
    // must start inside the input or the left padding.
    __int128 num = padded - span + (win.ceil_mode ? stride[i] - 1 : 0);
    __int128 o = (num >= 0 ? num / stride[i] : -((-num + stride[i] - 1) / stride[i])) + 1;
    if (win.ceil_mode && (o - 1) * stride[i] >= in + pad[i]) --o;
    if (o < 1)
      return fmt::format("kernel {} is larger than the padded input {} in dimension {}", kernel[i],
                         static_cast<int64_t>(std::min<__int128>(padded, INT64_MAX)), 2 + i);
    out[2 + i] = static_cast<int64_t>(o);
  }
  return {};
}

}  // namespace

std::string pool2d(ShapeCtx& c) {
  const Type& x = c.operands[0];
  Dims out;
  if (auto e = pooled_dims(c, x, out); !e.empty()) return e;
  c.results.push_back({x.dtype, out});
  return {};
}

std::string max_pool2d_grad(ShapeCtx& c) {
  const Type &x = c.operands[0], &dy = c.operands[1];
  Dims pooled;
  if (auto e = pooled_dims(c, x, pooled); !e.empty()) return e;
  if (auto e = same_dtype(x, dy); !e.empty()) return e;
  if (dy.dims != pooled)
    return fmt::format("the gradient {} does not match the pool's result {} for input {}", t(dy),
                       t({x.dtype, pooled}), t(x));
  c.results.push_back(x);
  return {};
}

std::string global_avg_pool(ShapeCtx& c) {
  const Type& x = c.operands[0];
  if (auto e = need_float(x, "input"); !e.empty()) return e;
  if (auto e = need_rank(x, 4, "input"); !e.empty()) return e;
  c.results.push_back({x.dtype, {x.dims[0], x.dims[1], 1, 1}});
  return {};
}

std::string batch_norm(ShapeCtx& c) {
  const Type& x = c.operands[0];
  if (auto e = need_float(x, "input"); !e.empty()) return e;
  if (x.rank() < 2) return fmt::format("input must have rank 2 or more, got {}", t(x));
  if (!(c.f("eps") > 0)) return fmt::format("eps must be positive, got {}", format_float(c.f("eps")));
  Type channel{x.dtype, {x.dims[1]}};
  static constexpr std::string_view names[] = {"", "weight", "bias", "running_mean", "running_var"};
  for (size_t i = 1; i < 5; ++i)
    if (c.operands[i] != channel)
      return fmt::format("{} must be {} for input {}, got {}", names[i], t(channel), t(x),
                         t(c.operands[i]));
  // Results: the normalised input, then the batch mean and biased variance (in eval mode, the
  // running statistics) that the caller folds into the running statistics.
  c.results = {x, channel, channel};
  return {};
}

std::string layer_norm(ShapeCtx& c) {
  const Type& x = c.operands[0];
  if (auto e = need_float(x, "input"); !e.empty()) return e;
  int64_t k = c.i("normalized_dims");
  if (k < 1 || k > static_cast<int64_t>(x.rank()))
    return fmt::format("normalized_dims {} must be between 1 and the rank of {}", k, t(x));
  if (!(c.f("eps") > 0)) return fmt::format("eps must be positive, got {}", format_float(c.f("eps")));
  if (c.operands.size() == 2) return "takes an input alone, or an input, a weight and a bias";
  Type norm{x.dtype, Dims(x.dims.end() - k, x.dims.end())};
  for (size_t i = 1; i < c.operands.size(); ++i)
    if (c.operands[i] != norm)
      return fmt::format("{} must be {} for input {}, got {}", i == 1 ? "weight" : "bias", t(norm),
                         t(x), t(c.operands[i]));
  c.results.push_back(x);
  return {};
}

std::string dropout(ShapeCtx& c) {
  if (auto e = need_float(c.operands[0], "input"); !e.empty()) return e;
  double p = c.f("p");
  if (!(p >= 0 && p < 1)) return fmt::format("p must be in [0, 1), got {}", format_float(p));
  if (auto e = scalar_key(c, 1); !e.empty()) return e;
  if (auto e = scalar_part(c, 2); !e.empty()) return e;
  c.results.push_back(c.operands[0]);
  return {};
}

std::string softmax(ShapeCtx& c) {
  const Type& x = c.operands[0];
  if (auto e = need_float(x, "input"); !e.empty()) return e;
  if (!norm_axis(c.i("axis"), x.rank())) return bad_axis(c.i("axis"), x);
  c.results.push_back(x);
  return {};
}

std::string embedding(ShapeCtx& c) {
  const Type &w = c.operands[0], &ids = c.operands[1];
  if (auto e = need_float(w, "weight"); !e.empty()) return e;
  if (auto e = need_rank(w, 2, "weight"); !e.empty()) return e;
  if (auto e = need_int(ids, "indices"); !e.empty()) return e;
  if (ids.rank() + 1 > kMaxRank) return fmt::format("indices {} have too many dimensions", t(ids));
  Dims out = ids.dims;
  out.push_back(w.dims[1]);
  c.results.push_back({w.dtype, out});
  return {};
}

std::string embedding_grad(ShapeCtx& c) {
  const Type &dy = c.operands[0], &ids = c.operands[1];
  if (auto e = need_float(dy, "output gradient"); !e.empty()) return e;
  if (auto e = need_int(ids, "indices"); !e.empty()) return e;
  if (c.i("num_embeddings") < 1) return fmt::format("num_embeddings must be at least 1, got {}", c.i("num_embeddings"));
  if (dy.rank() != ids.rank() + 1 || !std::equal(ids.dims.begin(), ids.dims.end(), dy.dims.begin()))
    return fmt::format("output gradient {} must be indices {} with one more dimension (the embedding's)", t(dy), t(ids));
  c.results.push_back({dy.dtype, {c.i("num_embeddings"), dy.dims.back()}});
  return {};
}

std::string one_hot(ShapeCtx& c) {
  const Type& ids = c.operands[0];
  if (auto e = need_int(ids, "indices"); !e.empty()) return e;
  if (c.i("num_classes") < 1) return fmt::format("num_classes must be at least 1, got {}", c.i("num_classes"));
  if (ids.rank() + 1 > kMaxRank) return fmt::format("indices {} have too many dimensions", t(ids));
  Dims out = ids.dims;
  out.push_back(c.i("num_classes"));
  c.results.push_back({c.dtype("dtype"), out});
  return {};
}

// ---------------------------------------------------------------- shape

std::string reshape(ShapeCtx& c) {
  const Type& x = c.operands[0];
  Dims out = c.ints("shape");
  if (out.size() > kMaxRank) return fmt::format("shape has rank {}, more than {}", out.size(), kMaxRank);
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      if (infer >= 0) return "shape may hold at most one -1";
      infer = static_cast<int>(i);
      continue;
    }
    if (out[i] < 1) return fmt::format("shape {} has a dimension below 1", dims_to_string(out));
    auto k = checked_mul(known, out[i]);
    if (!k) return fmt::format("shape {} has more elements than fit in int64", dims_to_string(out));
    known = *k;
  }
  int64_t n = *checked_numel(x.dims);  // operand types are valid, so this fits
  if (infer >= 0) {
    if (n % known != 0)
      return fmt::format("cannot reshape {} to {}: {} elements do not divide by {}", t(x),
                         dims_to_string(out), n, known);
    out[infer] = n / known;
  } else if (known != n) {
    return fmt::format("cannot reshape {} ({} elements) to {} ({} elements)", t(x), n,
                       dims_to_string(out), known);
  }
  c.results.push_back({x.dtype, out});
  return {};
}

std::string transpose(ShapeCtx& c) {
  const Type& x = c.operands[0];
  const Ints& perm = c.ints("perm");
  if (perm.size() != x.rank())
    return fmt::format("perm {} must list each of the {} axes of {}", dims_to_string(perm), x.rank(), t(x));
  std::vector<bool> seen(x.rank(), false);
  Dims out;
  for (int64_t p : perm) {
    auto a = norm_axis(p, x.rank());
    if (!a) return bad_axis(p, x);
    if (seen[*a]) return fmt::format("perm {} lists axis {} twice", dims_to_string(perm), *a);
    seen[*a] = true;
    out.push_back(x.dims[*a]);
  }
  c.results.push_back({x.dtype, out});
  return {};
}

std::string broadcast_to(ShapeCtx& c) {
  const Type& x = c.operands[0];
  Type target{x.dtype, c.ints("shape")};
  if (auto e = type_error(target); !e.empty()) return "shape: " + e;
  auto b = broadcast(x.dims, target.dims);
  if (!b || *b != target.dims) return fmt::format("cannot broadcast {} to {}", t(x), t(target));
  c.results.push_back(target);
  return {};
}

std::string concat(ShapeCtx& c) {
  const Type& first = c.operands[0];
  auto axis = norm_axis(c.i("axis"), first.rank());
  if (!axis) return bad_axis(c.i("axis"), first);
  Dims out = first.dims;
  for (size_t i = 1; i < c.operands.size(); ++i) {
    const Type& x = c.operands[i];
    if (x.dtype != first.dtype || x.rank() != first.rank())
      return fmt::format("operand {} is {}, not compatible with {}", i, t(x), t(first));
    for (size_t d = 0; d < x.rank(); ++d)
      if (static_cast<int64_t>(d) != *axis && x.dims[d] != first.dims[d])
        return fmt::format("operand {} is {}; dimension {} differs from {}", i, t(x), d, t(first));
    auto sum = checked_add(out[*axis], x.dims[*axis]);
    if (!sum) return "concatenated dimension overflows";
    out[*axis] = *sum;
  }
  c.results.push_back({first.dtype, out});
  return {};
}

std::string slice(ShapeCtx& c) {
  const Type& x = c.operands[0];
  const Ints &axes = c.ints("axes"), &starts = c.ints("starts"), &ends = c.ints("ends");
  Ints steps = c.ints("steps");
  if (steps.empty()) steps.assign(axes.size(), 1);
  if (starts.size() != axes.size() || ends.size() != axes.size() || steps.size() != axes.size())
    return "axes, starts, ends and steps must have the same length";
  Dims out = x.dims;
  std::vector<bool> seen(x.rank(), false);
  for (size_t i = 0; i < axes.size(); ++i) {
    auto a = norm_axis(axes[i], x.rank());
    if (!a) return bad_axis(axes[i], x);
    if (seen[*a]) return fmt::format("axis {} is sliced twice", axes[i]);
    seen[*a] = true;
    int64_t dim = x.dims[*a];
    // Python-style negative indices, then a strict range: no silent clamping.
    int64_t s = starts[i] < 0 && starts[i] >= -dim ? starts[i] + dim : starts[i];
    int64_t e = ends[i] < 0 && ends[i] >= -dim ? ends[i] + dim : ends[i];
    if (steps[i] < 1) return fmt::format("step must be at least 1, got {}", steps[i]);
    if (s < 0 || e > dim || s >= e)
      return fmt::format("slice [{}:{}] of axis {} (size {}) of {} is out of range or empty",
                         starts[i], ends[i], *a, dim, t(x));
    out[*a] = (e - s - 1) / steps[i] + 1;
  }
  c.results.push_back({x.dtype, out});
  return {};
}

std::string pad(ShapeCtx& c) {
  const Type& x = c.operands[0];
  const Ints& pads = c.ints("pads");
  if (pads.size() != 2 * x.rank())
    return fmt::format("pads must hold a (before, after) pair for each of the {} axes of {}, got {} values",
                       x.rank(), t(x), pads.size());
  Dims out = x.dims;
  for (size_t d = 0; d < x.rank(); ++d) {
    if (pads[2 * d] < 0 || pads[2 * d + 1] < 0)
      return fmt::format("pads must not be negative, got {}", dims_to_string(pads));
    auto s = checked_add(x.dims[d], pads[2 * d]);
    if (s) s = checked_add(*s, pads[2 * d + 1]);
    if (!s) return "padded dimension overflows";
    out[d] = *s;
  }
  c.results.push_back({x.dtype, out});
  return {};
}

std::string flatten(ShapeCtx& c) {
  const Type& x = c.operands[0];
  // As in PyTorch, a scalar flattens to [1], its dims checked as if it had rank 1.
  size_t rank = std::max<size_t>(x.rank(), 1);
  auto s = norm_axis(c.i("start_dim"), rank);
  auto e = norm_axis(c.i("end_dim"), rank);
  if (!s) return bad_axis(c.i("start_dim"), x);
  if (!e) return bad_axis(c.i("end_dim"), x);
  if (*s > *e) return fmt::format("start_dim {} comes after end_dim {}", c.i("start_dim"), c.i("end_dim"));
  if (x.rank() == 0) {
    c.results.push_back({x.dtype, {1}});
    return {};
  }
  Dims out(x.dims.begin(), x.dims.begin() + *s);
  out.push_back(*checked_numel(Dims(x.dims.begin() + *s, x.dims.begin() + *e + 1)));
  out.insert(out.end(), x.dims.begin() + *e + 1, x.dims.end());
  c.results.push_back({x.dtype, out});
  return {};
}

std::string split(ShapeCtx& c) {
  const Type& x = c.operands[0];
  auto axis = norm_axis(c.i("axis"), x.rank());
  if (!axis) return bad_axis(c.i("axis"), x);
  const Ints& sizes = c.ints("sizes");
  if (sizes.empty()) return "sizes must not be empty";
  if (sizes.size() > 4096) return fmt::format("{} pieces are too many", sizes.size());
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 1) return fmt::format("sizes must be at least 1, got {}", s);
    auto t2 = checked_add(total, s);
    if (!t2) return "sizes overflow";
    total = *t2;
  }
  if (total != x.dims[*axis])
    return fmt::format("sizes {} add up to {}, but axis {} of {} is {}", dims_to_string(sizes), total,
                       *axis, t(x), x.dims[*axis]);
  for (int64_t s : sizes) {
    Dims d = x.dims;
    d[*axis] = s;
    c.results.push_back({x.dtype, d});
  }
  return {};
}

// ---------------------------------------------------------------- losses

std::string regression_loss(ShapeCtx& c) {
  const Type &pred = c.operands[0], &target = c.operands[1];
  if (auto e = need_float(pred, "prediction"); !e.empty()) return e;
  if (pred != target)
    return fmt::format("prediction and target must have the same type, got {} and {}", t(pred), t(target));
  if (c.info.attr_index("delta") >= 0 && !(c.f("delta") > 0))
    return fmt::format("delta must be positive, got {}", format_float(c.f("delta")));
  return loss_result(c, pred);
}

std::string classification_loss(ShapeCtx& c) {
  const Type &x = c.operands[0], &labels = c.operands[1];
  if (auto e = need_float(x, "logits"); !e.empty()) return e;
  if (auto e = need_rank(x, 2, "logits"); !e.empty()) return e;
  if (auto e = need_int(labels, "labels"); !e.empty()) return e;
  if (labels.dims != Dims{x.dims[0]})
    return fmt::format("labels must be [{}] for logits {}, got {}", x.dims[0], t(x), t(labels));
  if (c.info.attr_index("label_smoothing") >= 0) {
    double ls = c.f("label_smoothing");
    if (!(ls >= 0 && ls <= 1)) return fmt::format("label_smoothing must be in [0, 1], got {}", format_float(ls));
  }
  return loss_result(c, {x.dtype, {x.dims[0]}});
}

std::string penalty(ShapeCtx& c) {
  if (auto e = need_float(c.operands[0]); !e.empty()) return e;
  c.results.push_back({c.operands[0].dtype, {}});
  return {};
}

}  // namespace stag::rules
