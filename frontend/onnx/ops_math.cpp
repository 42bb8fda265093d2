// Converters of elementwise math, activations, comparisons and logic, reductions and
// products (MatMul, Gemm).
#include <fmt/format.h>

#include <cmath>

#include "frontend/onnx/ctx.h"

namespace stag::onnx_import {

namespace {

using Vals = std::vector<Value*>;

template <Op O>
Vals unary(Ctx& c) {
  return {c.op(O, {c.in(0)})};
}

template <Op O>
Vals binary(Ctx& c) {
  return {c.op(O, {c.in(0), c.in(1)})};
}

// Max, Min, Sum of any number of operands, broadcast together.
template <Op O>
Vals variadic(Ctx& c) {
  Value* acc = c.in(0);
  for (size_t i = 1; i < c.inputs(); ++i) acc = c.op(O, {acc, c.in(i)});
  return {acc};
}

Vals mean_of(Ctx& c) {
  Value* sum = variadic<Op::add>(c)[0];
  return {c.op(Op::div, {sum, c.scalar(static_cast<double>(c.inputs()), sum)})};
}

Vals identity(Ctx& c) { return {c.in(0)}; }

Vals reciprocal(Ctx& c) {
  Value* x = c.in(0);
  return {c.op(Op::div, {c.scalar(1, x), x})};
}

Value* softplus(Ctx& c, Value* x) { return c.op(Op::log, {c.op(Op::add, {c.op(Op::exp, {x}), c.scalar(1, x)})}); }

Vals softplus_op(Ctx& c) { return {softplus(c, c.in(0))}; }

Vals softsign(Ctx& c) {
  Value* x = c.in(0);
  return {c.op(Op::div, {x, c.op(Op::add, {c.op(Op::abs, {x}), c.scalar(1, x)})})};
}

Vals mish(Ctx& c) {
  Value* x = c.in(0);
  return {c.op(Op::mul, {x, c.op(Op::tanh, {softplus(c, x)})})};
}

// alpha * (exp(x) - 1) where x <= 0, scaled by gamma (Elu: gamma 1; Selu: its constants).
Value* elu(Ctx& c, Value* x, double alpha, double gamma) {
  Value* neg = c.op(Op::mul, {c.scalar(alpha, x), c.op(Op::sub, {c.op(Op::exp, {x}), c.scalar(1, x)})});
  Value* y = c.op(Op::select, {c.op(Op::gt, {x, c.scalar(0, x)}), x, neg});
  return gamma == 1 ? y : c.op(Op::mul, {y, c.scalar(gamma, x)});
}

Vals elu_op(Ctx& c) { return {elu(c, c.in(0), c.af("alpha", 1), 1)}; }

Vals selu(Ctx& c) {
  return {elu(c, c.in(0), c.af("alpha", 1.67326319217681884765625), c.af("gamma", 1.05070102214813232421875))};
}

Vals celu(Ctx& c) {
  Value* x = c.in(0);
  double alpha = c.af("alpha", 1);
  Value* scaled = c.op(Op::div, {x, c.scalar(alpha, x)});
  Value* neg = c.op(Op::mul, {c.scalar(alpha, x), c.op(Op::sub, {c.op(Op::exp, {scaled}), c.scalar(1, x)})});
  return {c.op(Op::select, {c.op(Op::gt, {x, c.scalar(0, x)}), x, neg})};
}

Vals leaky_relu(Ctx& c) { return {c.op(Op::leaky_relu, {c.in(0)}, {{"alpha", c.af("alpha", 0.01)}})}; }

Vals thresholded_relu(Ctx& c) {
  Value* x = c.in(0);
  return {c.op(Op::select, {c.op(Op::gt, {x, c.scalar(c.af("alpha", 1), x)}), x, c.scalar(0, x)})};
}

Value* hard_sigmoid(Ctx& c, Value* x, double alpha, double beta) {
  Value* lin = c.op(Op::add, {c.op(Op::mul, {x, c.scalar(alpha, x)}), c.scalar(beta, x)});
  return c.op(Op::minimum, {c.op(Op::maximum, {lin, c.scalar(0, x)}), c.scalar(1, x)});
}

Vals hard_sigmoid_op(Ctx& c) { return {hard_sigmoid(c, c.in(0), c.af("alpha", 0.2), c.af("beta", 0.5))}; }

Vals hard_swish(Ctx& c) {
  Value* x = c.in(0);
  return {c.op(Op::mul, {x, hard_sigmoid(c, x, 1.0 / 6, 0.5)})};
}

Vals prelu(Ctx& c) {
  Value* x = c.in(0);
  return {c.op(Op::select, {c.op(Op::lt, {x, c.scalar(0, x)}), c.op(Op::mul, {x, c.in(1)}), x})};
}

Vals pow_op(Ctx& c) {
  Value* x = c.in(0);
  if (!is_float(x->type.dtype)) fail("an integer base is not supported");
  return {c.op(Op::pow, {x, c.cast(c.in(1), x->type.dtype)})};
}

Vals clip(Ctx& c) {
  Value* x = c.in(0);
  bool attrs = c.opset < 11;
  if (attrs ? c.attr("min") != nullptr : c.has(1)) x = c.op(Op::maximum, {x, attrs ? c.scalar(c.af("min", 0), x) : c.in(1)});
  if (attrs ? c.attr("max") != nullptr : c.has(2)) x = c.op(Op::minimum, {x, attrs ? c.scalar(c.af("max", 0), x) : c.in(2)});
  return {x};
}

Vals where(Ctx& c) { return {c.op(Op::select, {c.in(0), c.in(1), c.in(2)})}; }

Vals cast_like(Ctx& c) { return {c.cast(c.in(0), c.in(1)->type.dtype)}; }

// ---- comparisons and logic; bools are b8, so logic is selects and comparisons

template <Op O, bool Swap>
Vals compare(Ctx& c) {
  return {Swap ? c.op(O, {c.in(1), c.in(0)}) : c.op(O, {c.in(0), c.in(1)})};
}

Value* logical_not(Ctx& c, Value* x) { return c.op(Op::eq, {x, c.scalar(0, x)}); }

Vals not_op(Ctx& c) { return {logical_not(c, c.in(0))}; }

Vals and_op(Ctx& c) {
  Value *a = c.in(0), *b = c.in(1);
  return {c.op(Op::select, {a, b, c.scalar(0, b)})};
}

Vals or_op(Ctx& c) {
  Value *a = c.in(0), *b = c.in(1);
  return {c.op(Op::select, {a, c.scalar(1, b), b})};
}

Vals xor_op(Ctx& c) { return {logical_not(c, c.op(Op::eq, {c.in(0), c.in(1)}))}; }

// ---- reductions

struct ReduceSpec {
  Ints axes;
  bool keepdims;
  bool noop;  // empty axes with noop_with_empty_axes: the input unchanged
};

ReduceSpec reduce_spec(Ctx& c, bool axes_input) {
  ReduceSpec s{axes_input ? c.ints_input(1, "the axes", {}) : c.aints("axes"), c.ai("keepdims", 1) != 0, false};
  s.noop = s.axes.empty() && c.ai("noop_with_empty_axes", 0) != 0;
  for (int64_t& a : s.axes) a = norm_axis(a, c.in(0)->type.rank());
  return s;
}

Value* reduce(Ctx& c, Op op, Value* x, const ReduceSpec& s) {
  if (s.noop) return x;
  Value* r = c.op(op, {x}, {{"axes", s.axes}, {"keepdims", s.keepdims}});
  return c.cast(r, x->type.dtype);  // stag sums integers as i64; ONNX keeps the type
}

enum class Post { none, neg, log, sqrt };

// Reduce* as a map before, a stag reduction and a map after.
template <Op Pre, Op Red, Post After, bool AxesInput>
Vals reduce_op(Ctx& c) {
  Value* x = c.in(0);
  ReduceSpec s = reduce_spec(c, AxesInput && c.opset >= 13);
  if (Pre != Op::input) x = Pre == Op::exp && After == Post::log ? x : c.op(Pre, {x});
  if (Pre == Op::exp && After == Post::log) {  // log-sum-exp, shifted by the max for range
    Value* m = reduce(c, Op::max, x, {s.axes, true, s.noop});
    Value* sum = reduce(c, Op::sum, c.op(Op::exp, {c.op(Op::sub, {x, m})}), s);
    Value* shift = s.keepdims || s.noop ? m : reduce(c, Op::max, x, s);
    return {c.op(Op::add, {c.op(Op::log, {sum}), shift})};
  }
  Value* r = reduce(c, Red, x, s);
  if (After == Post::neg) r = c.op(Op::neg, {r});
  if (After == Post::log) r = c.op(Op::log, {r});
  if (After == Post::sqrt) r = c.op(Op::sqrt, {r});
  return {r};
}

template <bool Min>
Vals arg_extreme(Ctx& c) {
  if (c.ai("select_last_index", 0) != 0) fail("select_last_index=1 is not supported");
  Value* x = Min ? c.op(Op::neg, {c.in(0)}) : c.in(0);
  return {c.op(Op::argmax, {x}, {{"axis", norm_axis(c.ai("axis", 0), x->type.rank())}, {"keepdims", c.ai("keepdims", 1) != 0}})};
}

// ---- products

// numpy's matmul: a vector operand gains a unit axis for the product and loses it after.
Vals matmul(Ctx& c) {
  Value *a = c.in(0), *b = c.in(1);
  bool va = a->type.rank() == 1, vb = b->type.rank() == 1;
  if (va) a = c.reshape(a, {1, a->type.dims[0]});
  if (vb) b = c.reshape(b, {b->type.dims[0], 1});
  Value* y = c.op(Op::matmul, {a, b});
  Dims out = y->type.dims;
  if (va) out.erase(out.end() - 2);
  if (vb) out.erase(out.end() - 1);
  return {c.reshape(y, out)};
}

Vals gemm(Ctx& c) {
  Value* y = c.op(Op::matmul, {c.in(0), c.in(1)}, {{"transpose_a", c.ai("transA", 0) != 0}, {"transpose_b", c.ai("transB", 0) != 0}});
  double alpha = c.af("alpha", 1), beta = c.af("beta", 1);
  if (alpha != 1) y = c.op(Op::mul, {y, c.scalar(alpha, y)});
  if (!c.has(2) || beta == 0) return {y};
  Value* bias = c.in(2);
  if (beta != 1) bias = c.op(Op::mul, {bias, c.scalar(beta, bias)});
  return {c.op(Op::add, {y, bias})};
}

}  // namespace

const std::vector<OpEntry>& math_ops() {
  static const std::vector<OpEntry> table = {
      {"Abs", unary<Op::abs>}, {"Neg", unary<Op::neg>}, {"Exp", unary<Op::exp>}, {"Log", unary<Op::log>},
      {"Sqrt", unary<Op::sqrt>}, {"Tanh", unary<Op::tanh>}, {"Sigmoid", unary<Op::sigmoid>}, {"Relu", unary<Op::relu>},
      {"Sign", unary<Op::sign>}, {"Erf", unary<Op::erf>}, {"Identity", identity}, {"Reciprocal", reciprocal}, {"Softplus", softplus_op},
      {"Softsign", softsign}, {"Mish", mish}, {"Elu", elu_op}, {"Selu", selu}, {"Celu", celu},
      {"LeakyRelu", leaky_relu}, {"ThresholdedRelu", thresholded_relu}, {"HardSigmoid", hard_sigmoid_op},
      {"HardSwish", hard_swish}, {"PRelu", prelu},
      {"Add", binary<Op::add>}, {"Sub", binary<Op::sub>}, {"Mul", binary<Op::mul>}, {"Div", binary<Op::div>},
      {"Pow", pow_op}, {"Max", variadic<Op::maximum>}, {"Min", variadic<Op::minimum>}, {"Sum", variadic<Op::add>},
      {"Mean", mean_of}, {"Clip", clip}, {"Where", where}, {"CastLike", cast_like},
      {"Equal", compare<Op::eq, false>}, {"Less", compare<Op::lt, false>}, {"Greater", compare<Op::gt, false>},
      {"LessOrEqual", compare<Op::le, false>}, {"GreaterOrEqual", compare<Op::ge, false>},
      {"Not", not_op}, {"And", and_op}, {"Or", or_op}, {"Xor", xor_op},
      {"ReduceSum", reduce_op<Op::input, Op::sum, Post::none, true>},
      {"ReduceMean", reduce_op<Op::input, Op::mean, Post::none, false>},
      {"ReduceMax", reduce_op<Op::input, Op::max, Post::none, false>},
      {"ReduceMin", reduce_op<Op::neg, Op::max, Post::neg, false>},
      {"ReduceL1", reduce_op<Op::abs, Op::sum, Post::none, false>},
      {"ReduceL2", reduce_op<Op::square, Op::sum, Post::sqrt, false>},
      {"ReduceSumSquare", reduce_op<Op::square, Op::sum, Post::none, false>},
      {"ReduceLogSum", reduce_op<Op::input, Op::sum, Post::log, false>},
      {"ReduceLogSumExp", reduce_op<Op::exp, Op::sum, Post::log, false>},
      {"ArgMax", arg_extreme<false>}, {"ArgMin", arg_extreme<true>},
      {"MatMul", matmul}, {"Gemm", gemm},
  };
  return table;
}

}  // namespace stag::onnx_import
