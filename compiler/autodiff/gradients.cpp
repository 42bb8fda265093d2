// Gradient rules: one short function an op, in the order of ir/ops.def, each building the
// backward of one node from existing ops with the Builder. `g` is the gradient of the result.

#include <algorithm>
#include <cmath>

#include "compiler/autodiff/autodiff.h"
#include "ir/geometry.h"

namespace stag::autodiff {

namespace {

using Grads = std::vector<Value*>;

const Dims& dims(const Value* v) { return v->type.dims; }
DType dt(const Value* v) { return v->type.dtype; }
int64_t numel(const Value* v) { return *checked_numel(v->type.dims); }
int64_t norm(int64_t axis, size_t rank) { return axis < 0 ? axis + static_cast<int64_t>(rank) : axis; }

// ---------------------------------------------------------------- helpers

Value* k(GradCtx& c, double v, const Value* like) {
  Value*& s = c.scalars[{v, dt(like)}];
  if (!s) s = c.b.scalar(v, dt(like));
  return s;
}
Value* zeros(GradCtx& c, const Type& t) { return c.b.constant(t, {0.0}); }
Value* mul(GradCtx& c, Value* a, Value* b) { return c.b.mul({a, b}); }
Value* add(GradCtx& c, Value* a, Value* b) { return c.b.add({a, b}); }
Value* sub(GradCtx& c, Value* a, Value* b) { return c.b.sub({a, b}); }
Value* div(GradCtx& c, Value* a, Value* b) { return c.b.div({a, b}); }
Value* mul(GradCtx& c, Value* a, double s) { return mul(c, a, k(c, s, a)); }
// a + b where either may be missing.
Value* add_opt(GradCtx& c, Value* a, Value* b) { return !a ? b : !b ? a : add(c, a, b); }
Value* to_float(GradCtx& c, Value* mask, DType t) { return c.b.cast({mask}, {{"to", t}}); }
Value* reshape(GradCtx& c, Value* v, const Dims& d) {
  return dims(v) == d ? v : c.b.reshape({v}, {{"shape", Ints(d)}});
}
Value* sum(GradCtx& c, Value* v, const Ints& axes, bool keep) {
  return c.b.sum({v}, {{"axes", axes}, {"keepdims", keep}});
}
Value* transpose(GradCtx& c, Value* v, const Ints& perm) { return c.b.transpose({v}, {{"perm", perm}}); }
Value* slice(GradCtx& c, Value* v, const Ints& axes, const Ints& starts, const Ints& ends) {
  return c.b.slice({v}, {{"axes", axes}, {"starts", starts}, {"ends", ends}});
}
// The node's attributes by name, to build a node of the same kind (dropout's mask).
NamedAttrs same_attrs(const Node& n) {
  NamedAttrs a;
  for (size_t i = 0; i < n.attrs.size(); ++i) a.emplace_back(n.info().attrs[i].name, n.attrs[i]);
  return a;
}

// Sums a broadcast gradient back to the operand's shape (numpy broadcasting: right-aligned,
// size-1 dimensions repeated).
Value* unbroadcast(GradCtx& c, Value* g, const Type& to) {
  if (dims(g) == to.dims) return g;
  size_t lead = g->type.rank() - to.rank();
  Ints axes;
  for (size_t i = 0; i < g->type.rank(); ++i)
    if (i < lead || (to.dims[i - lead] == 1 && dims(g)[i] != 1)) axes.push_back(static_cast<int64_t>(i));
  if (!axes.empty()) g = sum(c, g, axes, false);
  return reshape(c, g, to.dims);
}

// The adjoint of a strided slice: a zero tensor of dims `full` holding g's elements at
// start + i*step along each axis. Steps interleave zeros by reshape and pad, so no scatter op.
Value* unslice(GradCtx& c, Value* g, const Dims& full, const Ints& start, const Ints& step) {
  size_t rank = full.size();
  for (size_t a = 0; a < rank; ++a) {
    int64_t len = dims(g)[a], st = step[a];
    if (st == 1 || len == 1) continue;
    Dims split = dims(g);
    split.insert(split.begin() + a + 1, 1);
    Ints pads(2 * (rank + 1), 0);
    pads[2 * (a + 1) + 1] = st - 1;
    Value* spread = c.b.pad({reshape(c, g, split)}, {{"pads", pads}});
    Dims joined = dims(g);
    joined[a] = len * st;
    g = reshape(c, spread, joined);
    // The last element's trailing zeros may overhang the full extent: trim them then.
    if (start[a] + len * st > full[a]) g = slice(c, g, {static_cast<int64_t>(a)}, {0}, {(len - 1) * st + 1});
  }
  Ints pads(2 * rank, 0);
  bool any = false;
  for (size_t a = 0; a < rank; ++a) {
    pads[2 * a] = start[a];
    pads[2 * a + 1] = full[a] - start[a] - dims(g)[a];
    any = any || pads[2 * a] || pads[2 * a + 1];
  }
  return any ? c.b.pad({g}, {{"pads", pads}}) : g;
}

// ---------------------------------------------------------------- elementwise unary

Grads neg_(GradCtx& c) { return {c.b.neg({c.dy[0]})}; }
// |x|' = sign(x), 0 at 0 as in PyTorch.
Grads abs_(GradCtx& c) { return {mul(c, c.dy[0], c.b.sign({c.x()}))}; }
Grads exp_(GradCtx& c) { return {mul(c, c.dy[0], c.y())}; }
Grads log_(GradCtx& c) { return {div(c, c.dy[0], c.x())}; }
Grads sqrt_(GradCtx& c) { return {div(c, c.dy[0], mul(c, c.y(), 2.0))}; }
// (x^-1/2)' = -1/2 x^-3/2 = -1/2 y^3.
Grads rsqrt_(GradCtx& c) { return {mul(c, c.dy[0], mul(c, mul(c, c.y(), c.b.square({c.y()})), -0.5))}; }
Grads square_(GradCtx& c) { return {mul(c, c.dy[0], mul(c, c.x(), 2.0))}; }
Grads tanh_(GradCtx& c) { return {mul(c, c.dy[0], sub(c, k(c, 1, c.y()), c.b.square({c.y()})))}; }
Grads sigmoid_(GradCtx& c) { return {mul(c, c.dy[0], mul(c, c.y(), sub(c, k(c, 1, c.y()), c.y())))}; }
// Zero at 0, as in PyTorch.
// Tested on the output (positive exactly where the input is), so the input may be fused away.
Grads relu_(GradCtx& c) { return {c.b.select({c.b.gt({c.y(), k(c, 0, c.x())}), c.dy[0], k(c, 0, c.x())})}; }
Grads leaky_relu_(GradCtx& c) {
  return {c.b.select({c.b.gt({c.x(), k(c, 0, c.x())}), c.dy[0], mul(c, c.dy[0], c.n.f("alpha"))})};
}
Grads gelu_(GradCtx& c) {
  Value *x = c.x(), *d;
  if (c.n.s("approximate") == "tanh") {
    // y = x/2 (1 + tanh u), u = sqrt(2/pi) (x + 0.044715 x^3)
    double s = std::sqrt(2 / M_PI), a = 0.044715;
    Value* x2 = c.b.square({x});
    Value* t = c.b.tanh({mul(c, add(c, x, mul(c, mul(c, x, x2), a)), s)});
    Value* du = mul(c, add(c, k(c, 1, x), mul(c, x2, 3 * a)), s);
    Value* left = mul(c, add(c, k(c, 1, x), t), 0.5);
    Value* right = mul(c, mul(c, mul(c, x, sub(c, k(c, 1, x), c.b.square({t}))), du), 0.5);
    d = add(c, left, right);
  } else {
    // y = x Phi(x), y' = Phi(x) + x phi(x); Phi = y/x (1/2 at 0), read from the
    // forward's result rather than computed again.
    Value* zero = c.b.eq({x, k(c, 0, x)});
    Value* cdf = c.b.select({zero, k(c, 0.5, x), div(c, c.y(), c.b.select({zero, k(c, 1, x), x}))});
    Value* pdf = mul(c, c.b.exp({mul(c, c.b.square({x}), -0.5)}), 1 / std::sqrt(2 * M_PI));
    d = add(c, cdf, mul(c, x, pdf));
  }
  return {mul(c, c.dy[0], d)};
}
// erf'(x) = 2/sqrt(pi) exp(-x^2).
Grads erf_(GradCtx& c) { return {mul(c, c.dy[0], mul(c, c.b.exp({c.b.neg({c.b.square({c.x()})})}), 2 / std::sqrt(M_PI)))}; }
// Between float types the gradient casts back; casts to integers carry none.
Grads cast_(GradCtx& c) {
  if (!is_float(dt(c.x())) || !is_float(dt(c.y()))) return {nullptr};
  return {c.b.cast({c.dy[0]}, {{"to", dt(c.x())}})};
}

// ---------------------------------------------------------------- elementwise binary

Grads both(GradCtx& c, Value* ga, Value* gb) {
  return {ga && c.wants[0] ? unbroadcast(c, ga, c.x(0)->type) : nullptr,
          gb && c.wants[1] ? unbroadcast(c, gb, c.x(1)->type) : nullptr};
}
Grads add_(GradCtx& c) { return both(c, c.dy[0], c.dy[0]); }
Grads sub_(GradCtx& c) { return both(c, c.dy[0], c.wants[1] ? c.b.neg({c.dy[0]}) : nullptr); }
Grads mul_(GradCtx& c) {
  return both(c, c.wants[0] ? mul(c, c.dy[0], c.x(1)) : nullptr, c.wants[1] ? mul(c, c.dy[0], c.x(0)) : nullptr);
}
// (a/b)' = 1/b, -a/b^2 = -y/b.
Grads div_(GradCtx& c) {
  return both(c, c.wants[0] ? div(c, c.dy[0], c.x(1)) : nullptr,
              c.wants[1] ? c.b.neg({div(c, mul(c, c.dy[0], c.y()), c.x(1))}) : nullptr);
}
// (a^b)' = b a^(b-1), a^b log a.
Grads pow_(GradCtx& c) {
  Value *a = c.x(0), *e = c.x(1), *g = c.dy[0];
  Value* ga = c.wants[0] ? mul(c, g, mul(c, e, c.b.pow({a, sub(c, e, k(c, 1, e))}))) : nullptr;
  Value* gb = c.wants[1] ? mul(c, g, mul(c, c.y(), c.b.log({a}))) : nullptr;
  return both(c, ga, gb);
}
// Ties split the gradient in halves, as PyTorch's maximum/minimum do.
Grads min_max(GradCtx& c, bool is_max) {
  Value *a = c.x(0), *b = c.x(1), *g = c.dy[0];
  Value* wins = to_float(c, is_max ? c.b.gt({a, b}) : c.b.lt({a, b}), dt(g));
  Value* wa = add(c, wins, mul(c, to_float(c, c.b.eq({a, b}), dt(g)), 0.5));
  return both(c, mul(c, g, wa), mul(c, g, sub(c, k(c, 1, g), wa)));
}
Grads maximum_(GradCtx& c) { return min_max(c, true); }
Grads minimum_(GradCtx& c) { return min_max(c, false); }
Grads select_(GradCtx& c) {
  Value *cond = c.x(0), *g = c.dy[0], *zero = k(c, 0, g);
  Value* ga = c.wants[1] ? unbroadcast(c, c.b.select({cond, g, zero}), c.x(1)->type) : nullptr;
  Value* gb = c.wants[2] ? unbroadcast(c, c.b.select({cond, zero, g}), c.x(2)->type) : nullptr;
  return {nullptr, ga, gb};
}

// ---------------------------------------------------------------- reductions

// The result's dims with the reduced axes kept as 1, so it broadcasts against the input.
Dims kept_dims(const Node& n) {
  const Dims& in = dims(n.operands[0]);
  Dims d = in;
  const Ints& axes = n.ints("axes");
  for (size_t i = 0; i < d.size(); ++i)
    if (axes.empty()) d[i] = 1;
  for (int64_t a : axes) d[norm(a, in.size())] = 1;
  return d;
}
Grads sum_(GradCtx& c) {
  return {c.b.broadcast_to({reshape(c, c.dy[0], kept_dims(c.n))}, {{"shape", Ints(dims(c.x()))}})};
}
Grads mean_(GradCtx& c) {
  double count = static_cast<double>(numel(c.x()) / numel(c.y()));
  return {mul(c, sum_(c)[0], 1 / count)};
}
// Ties share the gradient equally, as PyTorch's amax does.
Grads max_(GradCtx& c) {
  Dims kd = kept_dims(c.n);
  Value* hit = to_float(c, c.b.eq({c.x(), reshape(c, c.y(), kd)}), dt(c.x()));
  Value* ties = sum(c, hit, c.n.ints("axes"), true);
  return {mul(c, hit, div(c, reshape(c, c.dy[0], kd), ties))};
}

// ---------------------------------------------------------------- linear algebra

// v's leading dims folded into its rows: [..., m, k] as [prod(...) m, k].
Value* rows_2d(GradCtx& c, Value* v) {
  int64_t cols = dims(v).back();
  return reshape(c, v, {numel(v) / cols, cols});
}

// C = op(A) op(B): each gradient is one matmul with transpose flags, never a transpose node.
// A batched A against a shared 2-D B (a linear layer on [batch, time, features]) stacks its
// batch's rows, so B's gradient is one product over all of them, not one a batch entry
// followed by a sum of the batch's partial gradients.
Grads matmul_(GradCtx& c) {
  Value *a = c.x(0), *b = c.x(1), *g = c.dy[0];
  bool ta = c.n.b("transpose_a"), tb = c.n.b("transpose_b");
  auto mm = [&](Value* l, Value* r, bool tl, bool tr) {
    return c.b.matmul({l, r}, {{"transpose_a", tl}, {"transpose_b", tr}});
  };
  Value *ga = nullptr, *gb = nullptr;
  if (c.wants[0]) ga = ta ? mm(b, g, tb, true) : mm(g, b, false, !tb);  // A^T: B g^T; A: g B^T
  if (c.wants[1] && !ta && a->type.rank() > 2 && b->type.rank() == 2) {
    a = rows_2d(c, a);
    g = rows_2d(c, g);
  }
  if (c.wants[1]) gb = tb ? mm(g, a, true, ta) : mm(a, g, !ta, false);  // B^T: g^T A; B: A^T g
  return both(c, ga, gb);
}

// ---------------------------------------------------------------- neural network

// A convolution's attributes for window `w`: its stride, padding, dilation and groups.
NamedAttrs conv_attrs(const Window2d& w) {
  return {{"stride", w.stride}, {"padding", w.padding}, {"dilation", w.dilation}, {"groups", w.groups}};
}
// d conv2d / d weight, as a conv2d of the input by the output gradient with batch and channels
// swapped (stride and dilation trade places), one group at a time.
Value* conv_weight_grad_composite(GradCtx& c, Value* in, Value* g, const Dims& w_dims, const Window2d& win) {
  int64_t ci = dims(in)[1] / win.groups, co = dims(g)[1] / win.groups;
  Grads parts;
  for (int64_t gi = 0; gi < win.groups; ++gi) {
    Value* x = win.groups == 1 ? in : slice(c, in, {1}, {gi * ci}, {(gi + 1) * ci});
    Value* y = win.groups == 1 ? g : slice(c, g, {1}, {gi * co}, {(gi + 1) * co});
    Value* r = c.b.conv2d({transpose(c, x, {1, 0, 2, 3}), transpose(c, y, {1, 0, 2, 3})},
                          {{"stride", win.dilation}, {"padding", win.padding}, {"dilation", win.stride}});
    if (dims(r)[2] != w_dims[2] || dims(r)[3] != w_dims[3]) r = slice(c, r, {2, 3}, {0, 0}, {w_dims[2], w_dims[3]});
    parts.push_back(transpose(c, r, {1, 0, 2, 3}));
  }
  return win.groups == 1 ? parts[0] : c.b.concat(parts, {{"axis", int64_t{0}}});
}
// The weight gradient as one op where its shape is conv2d's (always, for conv2d itself); a
// transposed convolution's output_padding can reach past that, and then the composite does.
Value* weight_grad(GradCtx& c, Value* in, Value* g, const Dims& w_dims, const Window2d& win) {
  const Ints &s = win.stride, &p = win.padding, &d = win.dilation;
  bool fits = true;
  for (int i = 0; i < 2; ++i)
    fits = fits && (dims(in)[2 + i] + 2 * p[i] - d[i] * (w_dims[2 + i] - 1) - 1) / s[i] + 1 == dims(g)[2 + i];
  if (!fits) return conv_weight_grad_composite(c, in, g, w_dims, win);
  NamedAttrs attrs = conv_attrs(win);
  attrs.insert(attrs.begin(), {"kernel", Ints{w_dims[2], w_dims[3]}});
  return c.b.conv2d_weight_grad({in, g}, attrs);
}
Value* bias_grad(GradCtx& c, Value* g) { return sum(c, g, {0, 2, 3}, false); }
// Crops a [N, C, H', W'] result to the spatial size of `like` (rows a stride never reaches).
Value* crop_to(GradCtx& c, Value* v, const Value* like) {
  if (dims(v) == dims(like)) return v;
  return slice(c, v, {2, 3}, {0, 0}, {dims(like)[2], dims(like)[3]});
}

// The data gradient is the transposed convolution with the same weight; output_padding
// restores the rows the forward's floor division dropped.
Value* conv_data_grad(GradCtx& c, const Value* x, Value* w, Value* g, const Window2d& win) {
  const Ints &s = win.stride, &p = win.padding, &d = win.dilation;
  Ints op(2);
  for (int i = 0; i < 2; ++i) op[i] = dims(x)[2 + i] + 2 * p[i] - d[i] * (dims(w)[2 + i] - 1) - 1 - (dims(g)[2 + i] - 1) * s[i];
  return c.b.conv_transpose2d({g, w}, {{"stride", s}, {"padding", p}, {"output_padding", op}, {"dilation", d}, {"groups", win.groups}});
}
Grads conv2d_(GradCtx& c) {
  Value *x = c.x(0), *w = c.x(1), *g = c.dy[0];
  const Window2d win = Window2d::of(c.n);
  Grads r(c.n.operands.size(), nullptr);
  if (c.wants[0]) r[0] = conv_data_grad(c, x, w, g, win);
  if (c.wants[1]) r[1] = weight_grad(c, x, g, dims(w), win);
  if (r.size() == 3 && c.wants[2]) r[2] = bias_grad(c, g);
  return r;
}
// The weight gradient is linear in each operand: its input's gradient is the data gradient
// of a convolution with the upstream gradient as weight, its dy's the convolution itself.
Grads conv2d_weight_grad_(GradCtx& c) {
  Value *x = c.x(0), *dy = c.x(1), *u = c.dy[0];
  const Window2d win = Window2d::of(c.n);
  Grads r(2, nullptr);
  if (c.wants[0]) r[0] = conv_data_grad(c, x, u, dy, win);
  if (c.wants[1]) r[1] = c.b.conv2d({x, u}, conv_attrs(win));
  return r;
}
// conv_transpose2d is the adjoint of conv2d in its input: its data gradient is conv2d with the
// same weight, and its weight gradient is conv2d's with input and output gradient swapped.
Grads conv_transpose2d_(GradCtx& c) {
  Value *x = c.x(0), *w = c.x(1), *g = c.dy[0];
  const Window2d win = Window2d::of(c.n);
  Grads r(c.n.operands.size(), nullptr);
  if (c.wants[0]) r[0] = crop_to(c, c.b.conv2d({g, w}, conv_attrs(win)), x);
  if (c.wants[1]) r[1] = weight_grad(c, g, x, dims(w), win);
  if (r.size() == 3 && c.wants[2]) r[2] = bias_grad(c, g);
  return r;
}

// A pooling window as shifted strided views of the padded input: view (kh, kw) holds, for
// every output position, the input element at that offset of its window.
struct Window {
  Ints k, s, p, d;
  Dims in, out;  // the pool's input and result dims
  Dims padded;   // input dims after padding (and ceil_mode's overhang)
  Ints pads;     // the pad op's pads
};
// `in`, `out`: the pooling's input and result dims (for max_pool2d_grad, x's and dy's).
Window window_of(const Node& n, const Dims& in, const Dims& out) {
  Window w;
  const Window2d win = Window2d::of(n);
  w.k = win.kernel, w.s = win.stride, w.p = win.padding, w.d = win.dilation;
  w.in = in;
  w.out = out;
  w.padded = in;
  w.pads.assign(8, 0);
  for (int i = 0; i < 2; ++i) {
    int64_t need = (out[2 + i] - 1) * w.s[i] + w.d[i] * (w.k[i] - 1) + 1;
    int64_t extra = std::max<int64_t>(0, need - (in[2 + i] + 2 * w.p[i]));
    w.pads[4 + 2 * i] = w.p[i];
    w.pads[5 + 2 * i] = w.p[i] + extra;
    w.padded[2 + i] = in[2 + i] + 2 * w.p[i] + extra;
  }
  return w;
}
// `v` (of the input's dims) padded to the window's extent with `value`.
Value* pad_input(GradCtx& c, const Window& w, Value* v, double value) {
  return w.padded == w.in ? v : c.b.pad({v}, {{"pads", w.pads}, {"value", value}});
}
Value* view(GradCtx& c, const Window& w, Value* padded, int64_t kh, int64_t kw) {
  Ints st{kh * w.d[0], kw * w.d[1]};
  return c.b.slice({padded}, {{"axes", Ints{2, 3}}, {"starts", st},
                              {"ends", Ints{st[0] + (w.out[2] - 1) * w.s[0] + 1, st[1] + (w.out[3] - 1) * w.s[1] + 1}},
                              {"steps", Ints{w.s[0], w.s[1]}}});
}
// Sums the views' gradients back into the input (the adjoint of view, then of the padding).
Value* unview(GradCtx& c, const Window& w, Value* acc, Value* g, int64_t kh, int64_t kw) {
  Value* back = unslice(c, g, w.padded, {0, 0, kh * w.d[0], kw * w.d[1]}, {1, 1, w.s[0], w.s[1]});
  return add_opt(c, acc, back);
}
Value* unpad_input(GradCtx& c, const Window& w, Value* g) {
  return dims(g) == w.in ? g : slice(c, g, {2, 3}, {w.pads[4], w.pads[6]}, {w.pads[4] + w.in[2], w.pads[6] + w.in[3]});
}
// Where max_pool2d_grad sends each window's gradient, as a 0/1 mask of the result's shape per
// tap (kh, kw), row-major: the first tap equal to the max; for a NaN max, the last NaN tap
// (window_max_at in ir/reference.cpp). Taps in the padding never hit, even when the window's
// inputs are all -inf.
std::vector<Value*> first_max_hits(GradCtx& c, const Window& w, Value* x) {
  Value* y = c.b.max_pool2d({x}, same_attrs(c.n));
  Value* xp = pad_input(c, w, x, -INFINITY);
  Value* inside = w.padded == w.in ? nullptr : pad_input(c, w, c.b.constant(x->type, {1.0}), 0.0);
  std::vector<Value*> views, hits;
  Value* taken = nullptr;
  for (int64_t kh = 0; kh < w.k[0]; ++kh)
    for (int64_t kw = 0; kw < w.k[1]; ++kw) {
      views.push_back(view(c, w, xp, kh, kw));
      Value* hit = to_float(c, c.b.eq({views.back(), y}), dt(x));
      if (inside) hit = mul(c, hit, view(c, w, inside, kh, kw));
      if (taken) hit = mul(c, hit, sub(c, k(c, 1, x), taken));
      taken = add_opt(c, taken, hit);
      hits.push_back(hit);
    }
  // A NaN max equals no tap above, so its window has no hit yet.
  Value* nan_taken = nullptr;
  for (size_t t = views.size(); t-- > 0;) {
    Value* nan = sub(c, k(c, 1, x), to_float(c, c.b.eq({views[t], views[t]}), dt(x)));
    if (nan_taken) nan = mul(c, nan, sub(c, k(c, 1, x), nan_taken));
    nan_taken = add_opt(c, nan_taken, nan);
    hits[t] = add(c, hits[t], nan);
  }
  return hits;
}
// The gradient goes to the first maximum of each window (PyTorch's max_pool2d index).
Grads max_pool2d_(GradCtx& c) { return {c.b.max_pool2d_grad({c.x(), c.dy[0]}, same_attrs(c.n))}; }
// Piecewise constant in x (no gradient); linear in dy: each window takes the upstream
// gradient at the tap its dy went to.
Grads max_pool2d_grad_(GradCtx& c) {
  Grads r(2, nullptr);
  if (!c.wants[1]) return r;
  Window w = window_of(c.n, dims(c.x(0)), dims(c.x(1)));
  std::vector<Value*> hits = first_max_hits(c, w, c.x(0));
  Value* up = pad_input(c, w, c.dy[0], 0.0);
  for (int64_t kh = 0; kh < w.k[0]; ++kh)
    for (int64_t kw = 0; kw < w.k[1]; ++kw)
      r[1] = add_opt(c, r[1], mul(c, hits[static_cast<size_t>(kh * w.k[1] + kw)], view(c, w, up, kh, kw)));
  return r;
}
// Each output is the window's sum over a divisor fixed by its position (see ir/reference.cpp).
Grads avg_pool2d_(GradCtx& c) {
  Window w = window_of(c.n, dims(c.x()), dims(c.y()));
  const Dims &in = dims(c.x()), &out = dims(c.y());
  bool include_pad = c.n.b("count_include_pad");
  Floats inv;
  for (int64_t oh = 0; oh < out[2]; ++oh)
    for (int64_t ow = 0; ow < out[3]; ++ow) {
      int64_t h0 = oh * w.s[0] - w.p[0], w0 = ow * w.s[1] - w.p[1];
      int64_t h1 = std::min(h0 + w.k[0], in[2] + w.p[0]), w1 = std::min(w0 + w.k[1], in[3] + w.p[1]);
      int64_t padded = (h1 - h0) * (w1 - w0);
      int64_t count = (std::min(h1, in[2]) - std::max<int64_t>(h0, 0)) * (std::min(w1, in[3]) - std::max<int64_t>(w0, 0));
      inv.push_back(1.0 / static_cast<double>(include_pad ? padded : count));
    }
  Value* g = mul(c, c.dy[0], c.b.constant({dt(c.y()), {out[2], out[3]}}, inv));
  Value* acc = nullptr;
  for (int64_t kh = 0; kh < w.k[0]; ++kh)
    for (int64_t kw = 0; kw < w.k[1]; ++kw) acc = unview(c, w, acc, g, kh, kw);
  return {unpad_input(c, w, acc)};
}
Grads global_avg_pool_(GradCtx& c) {
  double hw = static_cast<double>(dims(c.x())[2] * dims(c.x())[3]);
  return {c.b.broadcast_to({mul(c, c.dy[0], 1 / hw)}, {{"shape", Ints(dims(c.x()))}})};
}

// Per-channel statistics of an [N, C, ...] tensor: reductions over every axis but 1.
Ints channel_axes(const Value* x) {
  Ints a{0};
  for (size_t i = 2; i < x->type.rank(); ++i) a.push_back(static_cast<int64_t>(i));
  return a;
}
Dims channel_dims(const Value* x) {
  Dims d(x->type.rank(), 1);
  d[1] = dims(x)[1];
  return d;
}
// Train: y = gamma xhat + beta with batch statistics (llm.c's layernorm_backward, per channel);
// the mean and variance results also carry gradients when used. Eval: an affine map whose
// running statistics are operands 3 and 4 and pass through as results 1 and 2.
Grads batch_norm_(GradCtx& c) {
  Value *x = c.x(0), *gy = c.dy[0], *g_mean = c.dy[1], *g_var = c.dy[2];
  Ints axes = channel_axes(x);
  Dims cd = channel_dims(x);
  auto per_channel = [&](Value* v) { return reshape(c, v, cd); };
  Value* gamma = per_channel(c.x(1));
  bool training = c.n.b("training");
  Value* mu = per_channel(training ? c.y(1) : c.x(3));
  Value* rstd = c.b.rsqrt({add(c, per_channel(training ? c.y(2) : c.x(4)), k(c, c.n.f("eps"), x))});
  Value* xc = sub(c, x, mu);
  Value* xhat = mul(c, xc, rstd);
  Grads r(5, nullptr);
  Value* gsum = gy ? sum(c, gy, axes, true) : nullptr;
  // sum(gy xhat) per channel: gamma's gradient, and (training) a term of x's.
  Value* gxsum = gy && (c.wants[1] || (training && c.wants[0])) ? sum(c, mul(c, gy, xhat), axes, true) : nullptr;
  if (c.wants[1] && gy) r[1] = reshape(c, gxsum, dims(c.x(1)));
  if (c.wants[2] && gy) r[2] = reshape(c, gsum, dims(c.x(2)));
  if (!training) {
    if (c.wants[0] && gy) r[0] = mul(c, gy, mul(c, gamma, rstd));
    Value* scale = mul(c, gamma, rstd);
    if (c.wants[3]) r[3] = add_opt(c, gy ? reshape(c, c.b.neg({mul(c, gsum, scale)}), dims(c.x(3))) : nullptr, g_mean);
    if (c.wants[4] && gy) {
      // d/dvar of (x - m)(var + eps)^-1/2 = -1/2 (x - m) rstd^3
      Value* t = sum(c, mul(c, gy, mul(c, xc, c.b.square({rstd}))), axes, true);
      r[4] = reshape(c, mul(c, mul(c, t, scale), -0.5), dims(c.x(4)));
    }
    if (c.wants[4]) r[4] = add_opt(c, r[4], g_var);
    return r;
  }
  if (!c.wants[0]) return r;
  double m = static_cast<double>(numel(x) / dims(x)[1]);
  Value* dx = nullptr;
  if (gy) {
    // With dxhat = gy gamma, dx = rstd/m (m dxhat - sum(dxhat) - xhat sum(dxhat xhat)); gamma is
    // per channel, so its sums are gamma times gy's (the ones beta's and gamma's gradients take).
    Value* inner = sub(c, sub(c, mul(c, gy, m), gsum), mul(c, xhat, gxsum));
    dx = mul(c, inner, mul(c, gamma, mul(c, rstd, 1 / m)));
  }
  if (g_mean) dx = add_opt(c, dx, c.b.broadcast_to({mul(c, per_channel(g_mean), 1 / m)}, {{"shape", Ints(dims(x))}}));
  if (g_var) dx = add_opt(c, dx, mul(c, xc, mul(c, per_channel(g_var), 2 / m)));
  r[0] = dx;
  return r;
}
Grads layer_norm_(GradCtx& c) {
  Value *x = c.x(0), *gy = c.dy[0];
  size_t rank = x->type.rank(), nd = static_cast<size_t>(c.n.i("normalized_dims"));
  Ints axes;
  for (size_t i = rank - nd; i < rank; ++i) axes.push_back(static_cast<int64_t>(i));
  auto mean = [&](Value* v) { return c.b.mean({v}, {{"axes", axes}, {"keepdims", true}}); };
  Value* xc = sub(c, x, mean(x));
  Value* rstd = c.b.rsqrt({add(c, mean(c.b.square({xc})), k(c, c.n.f("eps"), x))});
  Value* xhat = mul(c, xc, rstd);
  bool affine = c.n.operands.size() == 3;
  Grads r(c.n.operands.size(), nullptr);
  if (c.wants[0]) {
    Value* dxhat = affine ? mul(c, gy, c.x(1)) : gy;
    r[0] = mul(c, rstd, sub(c, sub(c, dxhat, mean(dxhat)), mul(c, xhat, mean(mul(c, dxhat, xhat)))));
  }
  if (affine && c.wants[1]) r[1] = unbroadcast(c, mul(c, gy, xhat), c.x(1)->type);
  if (affine && c.wants[2]) r[2] = unbroadcast(c, gy, c.x(2)->type);
  return r;
}
// Dropout is linear in its input for a fixed mask: the same op (same seed, step key and part)
// on the gradient draws the same mask.
Grads dropout_(GradCtx& c) {
  std::vector<Value*> ops{c.dy[0]};
  for (size_t i = 1; i < c.n.operands.size(); ++i) ops.push_back(c.x(i));
  return {c.b.dropout(ops, same_attrs(c.n)), nullptr};
}
Grads softmax_(GradCtx& c) {
  NamedAttrs a{{"axes", Ints{c.n.i("axis")}}, {"keepdims", true}};
  Value* gy = mul(c, c.dy[0], c.y());
  return {sub(c, gy, mul(c, c.y(), c.b.sum({gy}, a)))};
}
Grads log_softmax_(GradCtx& c) {
  NamedAttrs a{{"axes", Ints{c.n.i("axis")}}, {"keepdims", true}};
  return {sub(c, c.dy[0], mul(c, c.b.exp({c.y()}), c.b.sum({c.dy[0]}, a)))};
}
// Flash attention's backward: one op that recomputes the probabilities from q, k and the
// logsumexp instead of keeping them, and the dropout mask from the same key and part. Its own
// gradient (a second derivative) has no rule.
Grads attention_(GradCtx& c) {
  std::vector<Value*> ops{c.x(0), c.x(1), c.x(2), c.y(1), c.dy[0] ? c.dy[0] : zeros(c, c.y(0)->type)};
  if (c.dy[1]) ops.push_back(c.dy[1]);
  for (size_t i = 3; i < c.n.operands.size(); ++i) ops.push_back(c.x(i));
  std::vector<Value*> g = c.b.create(Op::attention_grad, ops, same_attrs(c.n));
  return {g[0], g[1], g[2]};
}
// The rows' gradients scatter-added by one op: as one_hot(ids)^T dy it would be a dense
// product over the whole vocabulary.
Grads embedding_(GradCtx& c) {
  return {c.b.embedding_grad({c.dy[0], c.x(1)}, {{"num_embeddings", dims(c.x(0))[0]}}), nullptr};
}
// Linear in dy: each row of dy received row ids[i] of the gradient.
Grads embedding_grad_(GradCtx& c) { return {c.b.embedding({c.dy[0], c.x(1)}), nullptr}; }

// ---------------------------------------------------------------- shape

Grads reshape_(GradCtx& c) { return {reshape(c, c.dy[0], dims(c.x()))}; }
Grads transpose_(GradCtx& c) {
  const Ints& perm = c.n.ints("perm");
  Ints inv(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inv[norm(perm[i], perm.size())] = static_cast<int64_t>(i);
  return {transpose(c, c.dy[0], inv)};
}
Grads broadcast_to_(GradCtx& c) { return {unbroadcast(c, c.dy[0], c.x()->type)}; }
Grads concat_(GradCtx& c) {
  int64_t axis = norm(c.n.i("axis"), c.y()->type.rank()), at = 0;
  Grads r;
  for (size_t i = 0; i < c.n.operands.size(); ++i) {
    int64_t len = dims(c.x(i))[axis];
    r.push_back(c.wants[i] ? slice(c, c.dy[0], {axis}, {at}, {at + len}) : nullptr);
    at += len;
  }
  return r;
}
Grads slice_(GradCtx& c) {
  const Dims& in = dims(c.x());
  const Ints &axes = c.n.ints("axes"), &starts = c.n.ints("starts"), &steps = c.n.ints("steps");
  Ints start(in.size(), 0), step(in.size(), 1);
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t a = norm(axes[i], in.size());
    start[a] = starts[i] < 0 ? starts[i] + in[a] : starts[i];
    if (!steps.empty()) step[a] = steps[i];
  }
  return {unslice(c, c.dy[0], in, start, step)};
}
Grads pad_(GradCtx& c) {
  const Dims& in = dims(c.x());
  const Ints& pads = c.n.ints("pads");
  Ints axes, starts, ends;
  for (size_t d = 0; d < in.size(); ++d) {
    axes.push_back(static_cast<int64_t>(d));
    starts.push_back(pads[2 * d]);
    ends.push_back(pads[2 * d] + in[d]);
  }
  return {slice(c, c.dy[0], axes, starts, ends)};
}
Grads split_(GradCtx& c) {
  Grads parts;
  for (size_t i = 0; i < c.n.results.size(); ++i) parts.push_back(c.dy[i] ? c.dy[i] : zeros(c, c.y(i)->type));
  return {parts.size() == 1 ? parts[0] : c.b.concat(parts, {{"axis", c.n.i("axis")}})};
}

// ---------------------------------------------------------------- losses

// The upstream gradient of each element's loss: g itself (none, sum; a scalar broadcasts) or
// g over the element count (mean).
Value* per_element(GradCtx& c) {
  if (c.n.s("reduction") != "mean") return c.dy[0];
  return mul(c, c.dy[0], 1.0 / static_cast<double>(numel(c.x())));
}
Grads pair(GradCtx& c, Value* d_pred, Value* d_target) {
  return {c.wants[0] ? d_pred : nullptr, c.wants[1] ? d_target : nullptr};
}
Grads mse_(GradCtx& c) {
  Value* d = mul(c, mul(c, sub(c, c.x(0), c.x(1)), 2.0), per_element(c));
  return pair(c, d, c.wants[1] ? c.b.neg({d}) : nullptr);
}
// (huber)' = clamp(x - t, -delta, delta).
Grads huber_(GradCtx& c) {
  double delta = c.n.f("delta");
  Value* d = sub(c, c.x(0), c.x(1));
  Value* clamped = c.b.maximum({c.b.minimum({d, k(c, delta, d)}), k(c, -delta, d)});
  Value* g = mul(c, clamped, per_element(c));
  return pair(c, g, c.wants[1] ? c.b.neg({g}) : nullptr);
}
// max(x,0) - x t + log(1 + e^-|x|): d/dx = sigmoid(x) - t, d/dt = -x.
Grads bce_with_logits_(GradCtx& c) {
  Value* g = per_element(c);
  return pair(c, mul(c, sub(c, c.b.sigmoid({c.x(0)}), c.x(1)), g), c.wants[1] ? c.b.neg({mul(c, c.x(0), g)}) : nullptr);
}
// Rows with the ignored label get nothing; the mean divides by the rows not ignored.
// Returns the per-row weight [N, 1] and the (smoothed) one-hot targets [N, C].
std::pair<Value*, Value*> class_targets(GradCtx& c, double smoothing) {
  Value *x = c.x(0), *labels = c.x(1);
  int64_t n = dims(x)[0], classes = dims(x)[1];
  Value* ignored = c.b.eq({labels, k(c, static_cast<double>(c.n.i("ignore_index")), labels)});
  Value* valid = c.b.select({ignored, k(c, 0, x), k(c, 1, x)});
  Value* safe = c.b.select({ignored, k(c, 0, labels), labels});
  Value* target = c.b.one_hot({safe}, {{"num_classes", classes}, {"dtype", dt(x)}});
  if (smoothing != 0) target = add(c, mul(c, target, 1 - smoothing), k(c, smoothing / static_cast<double>(classes), x));
  Value* g = c.dy[0];
  if (c.n.s("reduction") == "mean") g = div(c, g, sum(c, valid, {}, false));
  return {reshape(c, mul(c, valid, g), {n, 1}), target};
}
Grads cross_entropy_(GradCtx& c) {
  auto [w, target] = class_targets(c, c.n.f("label_smoothing"));
  Value* p = c.b.softmax({c.x(0)}, {{"axis", int64_t{1}}});
  return {mul(c, sub(c, p, target), w), nullptr};
}
Grads nll_(GradCtx& c) {
  auto [w, target] = class_targets(c, 0);
  return {c.b.neg({mul(c, target, w)}), nullptr};
}
Grads l1_penalty_(GradCtx& c) { return {mul(c, c.b.sign({c.x()}), c.dy[0])}; }
Grads l2_penalty_(GradCtx& c) { return {mul(c, mul(c, c.x(), 2.0), c.dy[0])}; }

// ---------------------------------------------------------------- the table

struct Entry {
  Op op;
  GradRule rule;
};

// In the order of ir/ops.def. Ops absent here are in kNonDifferentiable.
const Entry kRules[] = {
    {Op::neg, neg_}, {Op::abs, abs_}, {Op::exp, exp_}, {Op::log, log_}, {Op::sqrt, sqrt_},
    {Op::rsqrt, rsqrt_}, {Op::square, square_}, {Op::tanh, tanh_}, {Op::sigmoid, sigmoid_},
    {Op::relu, relu_}, {Op::leaky_relu, leaky_relu_}, {Op::gelu, gelu_}, {Op::erf, erf_}, {Op::cast, cast_},
    {Op::add, add_}, {Op::sub, sub_}, {Op::mul, mul_}, {Op::div, div_}, {Op::pow, pow_},
    {Op::maximum, maximum_}, {Op::minimum, minimum_}, {Op::select, select_},
    {Op::sum, sum_}, {Op::mean, mean_}, {Op::max, max_},
    {Op::matmul, matmul_},
    {Op::conv2d, conv2d_}, {Op::conv_transpose2d, conv_transpose2d_}, {Op::conv2d_weight_grad, conv2d_weight_grad_},
    {Op::max_pool2d, max_pool2d_}, {Op::max_pool2d_grad, max_pool2d_grad_}, {Op::avg_pool2d, avg_pool2d_},
    {Op::global_avg_pool, global_avg_pool_}, {Op::batch_norm, batch_norm_},
    {Op::layer_norm, layer_norm_}, {Op::dropout, dropout_}, {Op::softmax, softmax_},
    {Op::log_softmax, log_softmax_}, {Op::attention, attention_}, {Op::embedding, embedding_}, {Op::embedding_grad, embedding_grad_},
    {Op::reshape, reshape_}, {Op::transpose, transpose_}, {Op::broadcast_to, broadcast_to_},
    {Op::concat, concat_}, {Op::slice, slice_}, {Op::pad, pad_}, {Op::flatten, reshape_}, {Op::split, split_},
    {Op::scan, scan_gradient},
    {Op::mse, mse_}, {Op::huber, huber_}, {Op::bce_with_logits, bce_with_logits_},
    {Op::cross_entropy, cross_entropy_}, {Op::nll, nll_}, {Op::l1_penalty, l1_penalty_},
    {Op::l2_penalty, l2_penalty_},
};

// Sources have no operands; compares, argmax and one_hot give bools or integers; sign is
// piecewise constant (zero gradient almost everywhere, as in PyTorch).
const Op kNonDifferentiable[] = {
    Op::input, Op::parameter, Op::constant, Op::iota, Op::random_uniform, Op::random_normal,
    Op::sign, Op::gt, Op::ge, Op::lt, Op::le, Op::eq, Op::argmax, Op::one_hot,
};

// Differentiable ops whose gradient is not built: differentiating through one is an error
// naming it. attention_grad: attention's second derivatives.
const Op kWithoutRule[] = {Op::attention_grad};

}  // namespace

GradRule gradient_rule(Op op) {
  for (const Entry& e : kRules)
    if (e.op == op) return e.rule;
  return nullptr;
}

bool is_non_differentiable(Op op) {
  for (Op o : kNonDifferentiable)
    if (o == op) return true;
  return false;
}

bool lacks_gradient_rule(Op op) { return std::find(std::begin(kWithoutRule), std::end(kWithoutRule), op) != std::end(kWithoutRule); }

}  // namespace stag::autodiff
