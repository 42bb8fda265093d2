// Every op's shape rule through Builder::try_create: exact result types (PyTorch's semantics)
// for good operands, the exact message for bad ones. A meta-test keeps the table complete.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <map>

#include "ir/builder.h"
#include "test_util.h"

using namespace stag;

namespace {

Type f32(Dims d) { return {DType::f32, std::move(d)}; }
Type f64(Dims d) { return {DType::f64, std::move(d)}; }
Type i32(Dims d) { return {DType::i32, std::move(d)}; }
Type i64(Dims d) { return {DType::i64, std::move(d)}; }
Type boolean(Dims d) { return {DType::b8, std::move(d)}; }
Attr I(int64_t v) { return v; }
Attr S(const char* v) { return std::string(v); }

/// One row: an op applied to operands of these types. `error` empty: it must give `results`.
struct Case {
  std::string what;
  Op op;
  std::vector<Type> operands;
  NamedAttrs attrs;
  std::vector<Type> declared;
  std::vector<Type> results;
  std::string error;
  std::shared_ptr<Graph> body;  ///< for ops with a body
};

Case ok(std::string what, Op op, std::vector<Type> operands, NamedAttrs attrs, std::vector<Type> results) {
  return {std::move(what), op, std::move(operands), std::move(attrs), {}, std::move(results), {}, nullptr};
}
Case fails(std::string what, Op op, std::vector<Type> operands, NamedAttrs attrs, std::string error) {
  return {std::move(what), op, std::move(operands), std::move(attrs), {}, {}, std::move(error), nullptr};
}
// Sources take their type from the declaration and give it back.
Case source_ok(std::string what, Op op, Type declared, NamedAttrs attrs = {}, std::vector<Type> operands = {}) {
  return {std::move(what), op, std::move(operands), std::move(attrs), {declared}, {declared}, {}, nullptr};
}
Case source_fails(std::string what, Op op, std::vector<Type> declared, NamedAttrs attrs, std::string error,
                  std::vector<Type> operands = {}) {
  return {std::move(what), op, std::move(operands), std::move(attrs), std::move(declared), {}, std::move(error), nullptr};
}

const Type kImage = f32({1, 3, 32, 32});

std::vector<Case> unary_cases() {
  std::vector<Case> cases;
  for (Op op : {Op::exp, Op::log, Op::sqrt, Op::rsqrt, Op::tanh, Op::sigmoid, Op::leaky_relu, Op::gelu, Op::erf}) {
    std::string name(op_info(op).name);
    cases.push_back(ok(name + " keeps a float type", op, {f32({2, 3})}, {}, {f32({2, 3})}));
    cases.push_back(ok(name + " of an f64 scalar", op, {f64({})}, {}, {f64({})}));
    cases.push_back(fails(name + " rejects integers", op, {i32({2})}, {},
                          name + ": operand must be f32 or f64, got i32[2]"));
  }
  for (Op op : {Op::neg, Op::abs, Op::square, Op::relu, Op::sign}) {
    std::string name(op_info(op).name);
    cases.push_back(ok(name + " keeps an integer type", op, {i32({4})}, {}, {i32({4})}));
    cases.push_back(ok(name + " keeps a float type", op, {f64({2, 1})}, {}, {f64({2, 1})}));
    cases.push_back(fails(name + " rejects bool", op, {boolean({4})}, {}, name + ": operand must be numeric, got bool[4]"));
  }
  return cases;
}

std::vector<Case> binary_cases() {
  std::vector<Case> cases;
  for (Op op : {Op::add, Op::sub, Op::mul, Op::div, Op::pow, Op::maximum, Op::minimum, Op::gt, Op::ge,
                Op::lt, Op::le, Op::eq}) {
    std::string name(op_info(op).name);
    bool cmp = op_info(op).shape_rule == op_info(Op::gt).shape_rule;
    auto r = [&](Dims d) { return Type{cmp ? DType::b8 : DType::f32, std::move(d)}; };
    // numpy broadcasting: right-aligned, size-1 and missing dimensions stretch, either side.
    cases.push_back(ok(name + " of equal shapes", op, {f32({2, 3}), f32({2, 3})}, {}, {r({2, 3})}));
    cases.push_back(ok(name + " broadcasts the rhs's missing leading axis", op, {f32({2, 3}), f32({3})}, {}, {r({2, 3})}));
    cases.push_back(ok(name + " broadcasts the lhs's missing leading axis", op, {f32({3}), f32({2, 3})}, {}, {r({2, 3})}));
    cases.push_back(ok(name + " broadcasts size-1 axes on both sides", op, {f32({2, 1}), f32({1, 3})}, {}, {r({2, 3})}));
    cases.push_back(ok(name + " broadcasts across ranks", op, {f32({4, 1, 5}), f32({3, 1})}, {}, {r({4, 3, 5})}));
    cases.push_back(ok(name + " broadcasts a scalar lhs", op, {f32({}), f32({2, 3})}, {}, {r({2, 3})}));
    cases.push_back(ok(name + " broadcasts a scalar rhs", op, {f32({2, 3}), f32({})}, {}, {r({2, 3})}));
    cases.push_back(fails(name + " rejects shapes that do not broadcast", op, {f32({2, 3}), f32({2})}, {},
                          name + ": cannot broadcast f32[2,3] with f32[2]"));
    cases.push_back(fails(name + " rejects mixed element types", op, {f32({2}), f64({2})}, {},
                          name + ": operands have different element types: f32[2] and f64[2]"));
  }
  for (Op op : {Op::add, Op::sub, Op::mul, Op::maximum, Op::minimum})
    cases.push_back(ok(std::string(op_info(op).name) + " of integers", op, {i64({3}), i64({3})}, {}, {i64({3})}));
  for (Op op : {Op::gt, Op::eq})
    cases.push_back(ok(std::string(op_info(op).name) + " compares integers to bool", op, {i32({3}), i32({1})}, {},
                       {boolean({3})}));
  // Integer div keeps the type and truncates (torch.div with rounding_mode="trunc").
  cases.push_back(ok("div of integers keeps the type", Op::div, {i32({2}), i32({2})}, {}, {i32({2})}));
  cases.push_back(fails("pow rejects integers", Op::pow, {i64({2}), i64({2})}, {}, "pow: lhs must be f32 or f64, got i64[2]"));
  cases.push_back(fails("add rejects bool", Op::add, {boolean({2}), boolean({2})}, {}, "add: lhs must be numeric, got bool[2]"));
  cases.push_back(ok("eq compares bool masks", Op::eq, {boolean({2}), boolean({})}, {}, {boolean({2})}));
  cases.push_back(ok("select broadcasts condition and both branches", Op::select,
                     {boolean({2, 1}), f32({3}), f32({})}, {}, {f32({2, 3})}));
  cases.push_back(ok("select of integers", Op::select, {boolean({4}), i64({4}), i64({4})}, {}, {i64({4})}));
  cases.push_back(fails("select needs a bool condition", Op::select, {f32({2}), f32({2}), f32({2})}, {},
                        "select: condition must be bool, got f32[2]"));
  cases.push_back(fails("select's condition must broadcast", Op::select, {boolean({2}), f32({3}), f32({3})}, {},
                        "select: cannot broadcast bool[2], f32[3] and f32[3]"));
  cases.push_back(fails("select's branches share a type", Op::select, {boolean({2}), f32({2}), f64({2})}, {},
                        "select: operands have different element types: f32[2] and f64[2]"));
  return cases;
}

std::vector<Case> reduction_cases() {
  const Type x = f32({2, 3, 4});
  return {
      ok("sum over the last axis by a negative index", Op::sum, {x}, {{"axes", Ints{-1}}}, {f32({2, 3})}),
      ok("sum keepdims keeps a size-1 axis", Op::sum, {x}, {{"axes", Ints{-1}}, {"keepdims", true}}, {f32({2, 3, 1})}),
      ok("sum with no axes reduces to a scalar", Op::sum, {x}, {}, {f32({})}),
      ok("sum with no axes and keepdims", Op::sum, {x}, {{"keepdims", true}}, {f32({1, 1, 1})}),
      ok("sum over the first and last axes", Op::sum, {x}, {{"axes", Ints{0, -1}}}, {f32({3})}),
      ok("sum of i32 gives i64, as in PyTorch", Op::sum, {i32({5, 2})}, {{"axes", Ints{1}}}, {i64({5})}),
      ok("sum of a scalar", Op::sum, {f64({})}, {}, {f64({})}),
      fails("sum rejects an axis past the rank", Op::sum, {x}, {{"axes", Ints{3}}},
            "sum: axis 3 is out of range for f32[2,3,4] (rank 3)"),
      fails("sum rejects an axis below -rank", Op::sum, {x}, {{"axes", Ints{-4}}},
            "sum: axis -4 is out of range for f32[2,3,4] (rank 3)"),
      fails("sum rejects an axis named twice", Op::sum, {x}, {{"axes", Ints{1, -2}}}, "sum: axis -2 is listed twice"),
      ok("sum of bool counts in i64, as in PyTorch", Op::sum, {boolean({2, 5})}, {{"axes", Ints{1}}}, {i64({2})}),
      fails("max rejects bool", Op::max, {boolean({2})}, {}, "max: operand must be numeric, got bool[2]"),
      ok("mean keepdims over the middle axis", Op::mean, {x}, {{"axes", Ints{1}}, {"keepdims", true}}, {f32({2, 1, 4})}),
      fails("mean rejects integers", Op::mean, {i32({2})}, {}, "mean: operand must be f32 or f64, got i32[2]"),
      ok("max keeps the integer type", Op::max, {i32({5, 2})}, {{"axes", Ints{0}}}, {i32({2})}),
      fails("max rejects a repeated axis", Op::max, {x}, {{"axes", Ints{2, 2}}}, "max: axis 2 is listed twice"),
      ok("argmax gives i64 without the axis", Op::argmax, {x}, {{"axis", I(1)}}, {i64({2, 4})}),
      ok("argmax keepdims, negative axis", Op::argmax, {x}, {{"axis", I(-1)}, {"keepdims", true}}, {i64({2, 3, 1})}),
      fails("argmax needs an axis", Op::argmax, {x}, {}, "argmax: missing attribute 'axis' (int)"),
      fails("argmax rejects an axis past the rank", Op::argmax, {x}, {{"axis", I(3)}},
            "argmax: axis 3 is out of range for f32[2,3,4] (rank 3)"),
  };
}

std::vector<Case> matmul_cases() {
  auto tr = [](bool a, bool b) { return NamedAttrs{{"transpose_a", a}, {"transpose_b", b}}; };
  return {
      ok("matmul of matrices", Op::matmul, {f32({2, 3}), f32({3, 4})}, {}, {f32({2, 4})}),
      ok("matmul with transpose_a", Op::matmul, {f32({3, 2}), f32({3, 4})}, tr(true, false), {f32({2, 4})}),
      ok("matmul with transpose_b", Op::matmul, {f32({2, 3}), f32({4, 3})}, tr(false, true), {f32({2, 4})}),
      ok("matmul with both transposed", Op::matmul, {f64({3, 2}), f64({4, 3})}, tr(true, true), {f64({2, 4})}),
      ok("matmul broadcasts a matrix over a batch", Op::matmul, {f32({5, 2, 3}), f32({3, 4})}, {}, {f32({5, 2, 4})}),
      ok("matmul broadcasts batch dimensions both ways", Op::matmul, {f32({5, 1, 2, 3}), f32({4, 3, 2})}, {},
         {f32({5, 4, 2, 2})}),
      ok("batched matmul with transpose_b", Op::matmul, {f32({8, 2, 3}), f32({8, 4, 3})}, tr(false, true),
         {f32({8, 2, 4})}),
      fails("matmul rejects different inner dimensions", Op::matmul, {f32({2, 3}), f32({4, 5})}, {},
            "matmul: inner dimensions differ (3 vs 4): f32[2,3] x f32[4,5]"),
      fails("matmul's message marks a transposed operand", Op::matmul, {f32({2, 3}), f32({3, 5})}, tr(true, false),
            "matmul: inner dimensions differ (2 vs 3): f32[2,3]^T x f32[3,5]"),
      fails("matmul rejects a vector", Op::matmul, {f32({3}), f32({3, 4})}, {},
            "matmul: operands must have rank 2 or more, got f32[3] x f32[3,4]"),
      fails("matmul rejects batch dimensions that do not broadcast", Op::matmul, {f32({2, 2, 3}), f32({3, 3, 4})}, {},
            "matmul: batch dimensions do not broadcast: f32[2,2,3] x f32[3,3,4]"),
      fails("matmul rejects integers", Op::matmul, {i32({2, 2}), i32({2, 2})}, {},
            "matmul: lhs must be f32 or f64, got i32[2,2]"),
      fails("matmul rejects mixed types", Op::matmul, {f32({2, 2}), f64({2, 2})}, {},
            "matmul: operands have different element types: f32[2,2] and f64[2,2]"),
  };
}

// Output sizes follow torch.nn.Conv2d / ConvTranspose2d / MaxPool2d / AvgPool2d:
//   conv:      floor((in + 2p - d(k-1) - 1) / s) + 1
//   transpose: (in-1)s - 2p + d(k-1) + output_padding + 1
//   pool:      the conv formula, rounded up in ceil_mode unless the last window starts past the input
std::vector<Case> conv_cases() {
  const Type w = f32({16, 3, 3, 3});
  return {
      ok("conv2d valid", Op::conv2d, {kImage, w}, {}, {f32({1, 16, 30, 30})}),
      ok("conv2d same padding", Op::conv2d, {kImage, w}, {{"padding", Ints{1, 1}}}, {f32({1, 16, 32, 32})}),
      ok("conv2d stride 2 padding 1", Op::conv2d, {kImage, w}, {{"stride", Ints{2, 2}}, {"padding", Ints{1, 1}}},
         {f32({1, 16, 16, 16})}),
      ok("conv2d dilation 2", Op::conv2d, {kImage, w}, {{"dilation", Ints{2, 2}}}, {f32({1, 16, 28, 28})}),
      ok("conv2d with different settings per axis", Op::conv2d, {f32({1, 1, 7, 9}), f32({1, 1, 3, 2})},
         {{"stride", Ints{2, 3}}, {"padding", Ints{1, 0}}, {"dilation", Ints{1, 2}}}, {f32({1, 1, 4, 3})}),
      ok("conv2d stride that leaves a remainder", Op::conv2d, {f32({2, 1, 8, 8}), f32({4, 1, 3, 3})},
         {{"stride", Ints{3, 3}}}, {f32({2, 4, 2, 2})}),
      ok("conv2d with groups", Op::conv2d, {f32({2, 4, 10, 10}), f32({8, 2, 3, 3})}, {{"groups", I(2)}},
         {f32({2, 8, 8, 8})}),
      ok("conv2d depthwise", Op::conv2d, {f32({1, 4, 5, 5}), f32({4, 1, 3, 3})}, {{"groups", I(4)}},
         {f32({1, 4, 3, 3})}),
      ok("conv2d with bias", Op::conv2d, {kImage, w, f32({16})}, {}, {f32({1, 16, 30, 30})}),
      fails("conv2d rejects a channel mismatch", Op::conv2d, {f32({1, 3, 8, 8}), f32({4, 2, 3, 3})}, {},
            "conv2d: weight f32[4,2,3,3] expects 2 input channels, input f32[1,3,8,8] has 3"),
      fails("conv2d rejects a kernel larger than the input", Op::conv2d, {f32({1, 1, 2, 2}), f32({1, 1, 3, 3})}, {},
            "conv2d: kernel 3 (dilation 1) is larger than the padded input 2 in dimension 2"),
      fails("conv2d counts dilation in the kernel's extent", Op::conv2d, {f32({1, 1, 4, 9}), f32({1, 1, 3, 3})},
            {{"dilation", Ints{2, 2}}}, "conv2d: kernel 3 (dilation 2) is larger than the padded input 4 in dimension 2"),
      fails("conv2d rejects groups that do not divide the input channels", Op::conv2d, {kImage, w}, {{"groups", I(2)}},
            "conv2d: input channels 3 are not divisible by groups 2"),
      fails("conv2d rejects groups that do not divide the output channels", Op::conv2d,
            {f32({1, 4, 8, 8}), f32({3, 2, 3, 3})}, {{"groups", I(2)}},
            "conv2d: output channels 3 are not divisible by groups 2"),
      fails("conv2d rejects groups below 1", Op::conv2d, {kImage, w}, {{"groups", I(0)}},
            "conv2d: groups must be at least 1, got 0"),
      fails("conv2d rejects a bias of the wrong size", Op::conv2d, {kImage, w, f32({8})}, {},
            "conv2d: bias must be f32[16], got f32[8]"),
      fails("conv2d rejects stride 0", Op::conv2d, {kImage, w}, {{"stride", Ints{0, 1}}},
            "conv2d: stride values must be at least 1, got 0"),
      fails("conv2d rejects negative padding", Op::conv2d, {kImage, w}, {{"padding", Ints{-1, 0}}},
            "conv2d: padding values must be at least 0, got -1"),
      fails("conv2d rejects a one-value stride", Op::conv2d, {kImage, w}, {{"stride", Ints{2}}},
            "conv2d: stride must have 2 values, got 1"),
      fails("conv2d rejects a rank-3 input", Op::conv2d, {f32({3, 8, 8}), w}, {},
            "conv2d: input must have rank 4, got f32[3,8,8]"),
      fails("conv2d rejects a huge weight channel count without overflow", Op::conv2d,
            {f32({1, 16, 4, 4}), f32({1, int64_t{1} << 60, 1, 1})}, {{"groups", I(16)}},
            "conv2d: weight f32[1,1152921504606846976,1,1] expects too many input channels, input f32[1,16,4,4] has 16"),
      ok("conv_transpose2d doubles with stride 2 and output_padding 1", Op::conv_transpose2d,
         {f32({1, 16, 8, 8}), f32({16, 8, 3, 3})},
         {{"stride", Ints{2, 2}}, {"padding", Ints{1, 1}}, {"output_padding", Ints{1, 1}}}, {f32({1, 8, 16, 16})}),
      ok("conv_transpose2d with groups multiplies the weight's channels", Op::conv_transpose2d,
         {f32({1, 4, 5, 5}), f32({4, 3, 3, 3})}, {{"groups", I(2)}}, {f32({1, 6, 7, 7})}),
      ok("conv_transpose2d with dilation", Op::conv_transpose2d, {f32({1, 2, 5, 5}), f32({2, 1, 3, 3})},
         {{"dilation", Ints{2, 2}}}, {f32({1, 1, 9, 9})}),
      ok("conv_transpose2d output_padding below dilation", Op::conv_transpose2d, {f32({1, 2, 5, 5}), f32({2, 1, 3, 3}), f32({1})},
         {{"dilation", Ints{2, 2}}, {"output_padding", Ints{1, 0}}}, {f32({1, 1, 10, 9})}),
      fails("conv_transpose2d rejects output_padding not below stride or dilation", Op::conv_transpose2d,
            {f32({1, 2, 5, 5}), f32({2, 1, 3, 3})}, {{"output_padding", Ints{1, 1}}},
            "conv_transpose2d: output_padding 1 must be smaller than stride 1 or dilation 1"),
      fails("conv_transpose2d rejects a channel mismatch", Op::conv_transpose2d, {f32({1, 3, 5, 5}), f32({4, 2, 3, 3})},
            {}, "conv_transpose2d: weight f32[4,2,3,3] expects 4 input channels, input f32[1,3,5,5] has 3"),
      fails("conv_transpose2d rejects a non-positive output", Op::conv_transpose2d, {f32({1, 1, 1, 1}), f32({1, 1, 1, 1})},
            {{"padding", Ints{1, 1}}}, "conv_transpose2d: output size -1 in dimension 2 is not positive"),
      ok("conv2d_weight_grad has the weight's shape", Op::conv2d_weight_grad, {f32({2, 3, 8, 8}), f32({2, 4, 4, 4})},
         {{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1}}}, {f32({4, 3, 3, 3})}),
      ok("conv2d_weight_grad with groups", Op::conv2d_weight_grad, {f32({1, 4, 6, 5}), f32({1, 6, 4, 3})},
         {{"kernel", Ints{3, 2}}, {"dilation", Ints{1, 2}}, {"groups", I(2)}}, {f32({6, 2, 3, 2})}),
      fails("conv2d_weight_grad rejects dy of another size than the convolution's output", Op::conv2d_weight_grad,
            {f32({2, 3, 8, 8}), f32({2, 4, 5, 6})}, {{"kernel", Ints{3, 3}}},
            "conv2d_weight_grad: output gradient f32[2,4,5,6] must have size 6 in dimension 2, the convolution's output of input f32[2,3,8,8]"),
      fails("conv2d_weight_grad rejects different batches", Op::conv2d_weight_grad, {f32({2, 3, 8, 8}), f32({3, 4, 6, 6})},
            {{"kernel", Ints{3, 3}}}, "conv2d_weight_grad: batch sizes differ: input f32[2,3,8,8], output gradient f32[3,4,6,6]"),
      fails("conv2d_weight_grad rejects output channels not divisible by groups", Op::conv2d_weight_grad,
            {f32({1, 4, 6, 6}), f32({1, 3, 4, 4})}, {{"kernel", Ints{3, 3}}, {"groups", I(2)}},
            "conv2d_weight_grad: output channels 3 are not divisible by groups 2"),
      fails("conv2d_weight_grad rejects a kernel larger than the input", Op::conv2d_weight_grad,
            {f32({1, 1, 2, 2}), f32({1, 1, 1, 1})}, {{"kernel", Ints{3, 3}}},
            "conv2d_weight_grad: kernel 3 (dilation 1) is larger than the padded input 2 in dimension 2"),
      fails("conv_transpose2d rejects negative output_padding", Op::conv_transpose2d, {f32({1, 1, 4, 4}), f32({1, 1, 1, 1})},
            {{"output_padding", Ints{0, -1}}}, "conv_transpose2d: output_padding values must be at least 0, got -1"),
  };
}

std::vector<Case> pool_cases() {
  auto k = [](Ints kernel, NamedAttrs more = {}) {
    more.insert(more.begin(), {"kernel", std::move(kernel)});
    return more;
  };
  return {
      ok("max_pool2d stride defaults to the kernel", Op::max_pool2d, {kImage}, k({2, 2}), {f32({1, 3, 16, 16})}),
      ok("max_pool2d 3x3 stride 2 padding 1", Op::max_pool2d, {kImage},
         k({3, 3}, {{"stride", Ints{2, 2}}, {"padding", Ints{1, 1}}}), {f32({1, 3, 16, 16})}),
      ok("max_pool2d floors by default", Op::max_pool2d, {f32({1, 1, 5, 5})}, k({2, 2}), {f32({1, 1, 2, 2})}),
      ok("max_pool2d ceil_mode rounds up", Op::max_pool2d, {f32({1, 1, 5, 5})}, k({2, 2}, {{"ceil_mode", true}}),
         {f32({1, 1, 3, 3})}),
      ok("max_pool2d ceil_mode drops a window that starts in the right padding", Op::max_pool2d, {f32({1, 1, 5, 5})},
         k({2, 2}, {{"padding", Ints{1, 1}}, {"ceil_mode", true}}), {f32({1, 1, 3, 3})}),
      ok("max_pool2d ceil_mode lets one window overhang a small input", Op::max_pool2d, {f32({1, 1, 2, 2})},
         k({3, 3}, {{"stride", Ints{2, 2}}, {"ceil_mode", true}}), {f32({1, 1, 1, 1})}),
      ok("max_pool2d with dilation and unit stride", Op::max_pool2d, {f32({1, 1, 10, 10})},
         k({3, 3}, {{"stride", Ints{1, 1}}, {"dilation", Ints{2, 2}}}), {f32({1, 1, 6, 6})}),
      ok("max_pool2d with dilation and the default stride", Op::max_pool2d, {f32({1, 1, 10, 10})},
         k({3, 3}, {{"dilation", Ints{2, 2}}}), {f32({1, 1, 2, 2})}),
      ok("max_pool2d with different settings per axis", Op::max_pool2d, {f32({2, 3, 9, 8})},
         k({3, 2}, {{"stride", Ints{2, 1}}}), {f32({2, 3, 4, 7})}),
      fails("max_pool2d rejects a kernel larger than the input", Op::max_pool2d, {f32({1, 1, 2, 2})}, k({3, 3}),
            "max_pool2d: kernel 3 is larger than the padded input 2 in dimension 2"),
      fails("max_pool2d rejects padding over half the kernel", Op::max_pool2d, {kImage},
            k({2, 2}, {{"padding", Ints{2, 2}}}), "max_pool2d: padding 2 must be at most half the kernel 2"),
      fails("max_pool2d needs a kernel", Op::max_pool2d, {kImage}, {}, "max_pool2d: missing attribute 'kernel' (ints)"),
      fails("max_pool2d rejects a rank-3 input", Op::max_pool2d, {f32({1, 8, 8})}, k({2, 2}),
            "max_pool2d: input must have rank 4, got f32[1,8,8]"),
      fails("max_pool2d rejects a zero kernel", Op::max_pool2d, {kImage}, k({0, 2}),
            "max_pool2d: kernel values must be at least 1, got 0"),
      ok("max_pool2d_grad has the input's type", Op::max_pool2d_grad, {kImage, f32({1, 3, 16, 16})}, k({2, 2}), {kImage}),
      ok("max_pool2d_grad takes the pool's padding and ceil_mode", Op::max_pool2d_grad,
         {f64({2, 1, 5, 5}), f64({2, 1, 3, 3})}, k({2, 2}, {{"padding", Ints{1, 1}}, {"ceil_mode", true}}),
         {f64({2, 1, 5, 5})}),
      ok("max_pool2d_grad with overlapping dilated windows", Op::max_pool2d_grad, {f32({1, 1, 10, 10}), f32({1, 1, 6, 6})},
         k({3, 3}, {{"stride", Ints{1, 1}}, {"dilation", Ints{2, 2}}}), {f32({1, 1, 10, 10})}),
      fails("max_pool2d_grad rejects a gradient of another shape than the pool's result", Op::max_pool2d_grad,
            {f32({1, 1, 5, 5}), f32({1, 1, 3, 3})}, k({2, 2}),
            "max_pool2d_grad: the gradient f32[1,1,3,3] does not match the pool's result f32[1,1,2,2] for input f32[1,1,5,5]"),
      fails("max_pool2d_grad rejects mixed element types", Op::max_pool2d_grad, {f32({1, 1, 4, 4}), f64({1, 1, 2, 2})},
            k({2, 2}), "max_pool2d_grad: operands have different element types: f32[1,1,4,4] and f64[1,1,2,2]"),
      fails("max_pool2d_grad rejects an integer input", Op::max_pool2d_grad, {i64({1, 1, 4, 4}), i64({1, 1, 2, 2})},
            k({2, 2}), "max_pool2d_grad: input must be f32 or f64, got i64[1,1,4,4]"),
      fails("max_pool2d_grad checks the window like max_pool2d", Op::max_pool2d_grad, {f32({1, 1, 2, 2}), f32({1, 1, 1, 1})},
            k({3, 3}), "max_pool2d_grad: kernel 3 is larger than the padded input 2 in dimension 2"),
      fails("max_pool2d_grad takes two operands", Op::max_pool2d_grad, {kImage}, k({2, 2}),
            "max_pool2d_grad: expects 2 operands, got 1"),
      ok("avg_pool2d 3x3 stride 2", Op::avg_pool2d, {f32({1, 2, 7, 7})}, k({3, 3}, {{"stride", Ints{2, 2}}}),
         {f32({1, 2, 3, 3})}),
      ok("avg_pool2d ceil_mode", Op::avg_pool2d, {f32({1, 2, 8, 8})},
         k({3, 3}, {{"stride", Ints{2, 2}}, {"ceil_mode", true}}), {f32({1, 2, 4, 4})}),
      fails("avg_pool2d rejects a three-value kernel", Op::avg_pool2d, {kImage}, k({2, 2, 2}),
            "avg_pool2d: kernel must have 2 values, got 3"),
      fails("avg_pool2d has no dilation", Op::avg_pool2d, {kImage}, k({2, 2}, {{"dilation", Ints{1, 1}}}),
            "avg_pool2d: unknown attribute 'dilation'"),
      ok("global_avg_pool keeps batch and channels", Op::global_avg_pool, {f32({2, 3, 5, 7})}, {}, {f32({2, 3, 1, 1})}),
      fails("global_avg_pool needs rank 4", Op::global_avg_pool, {f32({2, 3})}, {},
            "global_avg_pool: input must have rank 4, got f32[2,3]"),
  };
}

std::vector<Case> norm_cases() {
  const Type x = f32({8, 3, 5, 5}), c = f32({3});
  const Type y = f32({2, 5, 8});
  return {
      ok("batch_norm gives y, batch mean and variance", Op::batch_norm, {x, c, c, c, c}, {{"training", true}}, {x, c, c}),
      ok("batch_norm of a rank-2 input", Op::batch_norm, {f64({4, 6}), f64({6}), f64({6}), f64({6}), f64({6})}, {},
         {f64({4, 6}), f64({6}), f64({6})}),
      fails("batch_norm checks the weight's channels", Op::batch_norm, {x, f32({4}), c, c, c}, {},
            "batch_norm: weight must be f32[3] for input f32[8,3,5,5], got f32[4]"),
      fails("batch_norm checks the running variance's type", Op::batch_norm, {x, c, c, c, f64({3})}, {},
            "batch_norm: running_var must be f32[3] for input f32[8,3,5,5], got f64[3]"),
      fails("batch_norm needs rank 2", Op::batch_norm, {c, c, c, c, c}, {},
            "batch_norm: input must have rank 2 or more, got f32[3]"),
      fails("batch_norm needs five operands", Op::batch_norm, {x, c, c, c}, {}, "batch_norm: expects 5 operands, got 4"),
      fails("batch_norm needs a positive eps", Op::batch_norm, {x, c, c, c, c}, {{"eps", 0.0}},
            "batch_norm: eps must be positive, got 0.0"),
      ok("layer_norm over the last axis", Op::layer_norm, {y}, {}, {y}),
      ok("layer_norm with weight and bias", Op::layer_norm, {y, f32({8}), f32({8})}, {}, {y}),
      ok("layer_norm over two axes", Op::layer_norm, {y, f32({5, 8}), f32({5, 8})}, {{"normalized_dims", I(2)}}, {y}),
      fails("layer_norm rejects a weight without a bias", Op::layer_norm, {y, f32({8})}, {},
            "layer_norm: takes an input alone, or an input, a weight and a bias"),
      fails("layer_norm checks the weight's shape", Op::layer_norm, {y, f32({5}), f32({8})}, {},
            "layer_norm: weight must be f32[8] for input f32[2,5,8], got f32[5]"),
      fails("layer_norm checks the bias's shape", Op::layer_norm, {y, f32({8}), f32({1, 8})}, {},
            "layer_norm: bias must be f32[8] for input f32[2,5,8], got f32[1,8]"),
      fails("layer_norm rejects normalized_dims past the rank", Op::layer_norm, {y}, {{"normalized_dims", I(4)}},
            "layer_norm: normalized_dims 4 must be between 1 and the rank of f32[2,5,8]"),
      fails("layer_norm rejects integers", Op::layer_norm, {i32({2})}, {}, "layer_norm: input must be f32 or f64, got i32[2]"),
  };
}

std::vector<Case> neural_cases() {
  const Type x = f32({2, 3});
  return {
      ok("dropout keeps the type", Op::dropout, {f32({4, 5})}, {{"p", 0.1}}, {f32({4, 5})}),
      ok("dropout with a generator key", Op::dropout, {f32({4}), i64({})}, {}, {f32({4})}),
      ok("dropout with p = 0", Op::dropout, {f32({4})}, {{"p", 0.0}}, {f32({4})}),
      fails("dropout rejects p = 1", Op::dropout, {x}, {{"p", 1.0}}, "dropout: p must be in [0, 1), got 1.0"),
      fails("dropout rejects a negative p", Op::dropout, {x}, {{"p", -0.5}}, "dropout: p must be in [0, 1), got -0.5"),
      fails("dropout's key must be an i64 scalar", Op::dropout, {x, i64({1})}, {},
            "dropout: the generator key must be i64[], got i64[1]"),
      ok("dropout with a key and a part", Op::dropout, {f32({4}), i64({}), i64({})}, {}, {f32({4})}),
      fails("dropout's part must be an i64 scalar", Op::dropout, {x, i64({}), f32({})}, {},
            "dropout: the part must be i64[], got f32[]"),
      ok("softmax over the last axis", Op::softmax, {x}, {}, {x}),
      ok("softmax over axis 0", Op::softmax, {x}, {{"axis", I(0)}}, {x}),
      fails("softmax rejects an axis past the rank", Op::softmax, {x}, {{"axis", I(2)}},
            "softmax: axis 2 is out of range for f32[2,3] (rank 2)"),
      ok("log_softmax over axis -2", Op::log_softmax, {f64({2, 3})}, {{"axis", I(-2)}}, {f64({2, 3})}),
      fails("log_softmax rejects integers", Op::log_softmax, {i32({2, 3})}, {},
            "log_softmax: input must be f32 or f64, got i32[2,3]"),
      ok("attention gives the output and each query's logsumexp", Op::attention, {f32({2, 4, 8}), f32({2, 6, 8}), f32({2, 6, 3})},
         {{"scale", 0.5}}, {f32({2, 4, 3}), f32({2, 4})}),
      fails("causal attention needs as many queries as keys", Op::attention, {f32({2, 4, 8}), f32({2, 6, 8}), f32({2, 6, 3})},
            {{"scale", 0.5}, {"causal", true}},
            "attention: causal attention needs as many queries as keys, got q f32[2,4,8] and k f32[2,6,8]"),
      fails("attention's leading dimensions must be equal", Op::attention, {f32({2, 4, 8}), f32({1, 6, 8}), f32({1, 6, 3})},
            {{"scale", 0.5}}, "attention: q, k and v must have the same leading dimensions, got f32[2,4,8], f32[1,6,8] and f32[1,6,3]"),
      ok("attention_grad gives q's, k's and v's types", Op::attention_grad,
         {f32({2, 4, 8}), f32({2, 6, 8}), f32({2, 6, 3}), f32({2, 4}), f32({2, 4, 3})}, {{"scale", 0.5}},
         {f32({2, 4, 8}), f32({2, 6, 8}), f32({2, 6, 3})}),
      fails("attention_grad checks dy against the output", Op::attention_grad,
            {f32({2, 4, 8}), f32({2, 6, 8}), f32({2, 6, 3}), f32({2, 4}), f32({2, 4, 8})}, {{"scale", 0.5}},
            "attention_grad: dy must be f32[2,4,3], got f32[2,4,8]"),
      ok("embedding appends the embedding size", Op::embedding, {f32({100, 16}), i64({4, 7})}, {}, {f32({4, 7, 16})}),
      ok("embedding of a scalar index", Op::embedding, {f32({100, 16}), i32({})}, {}, {f32({16})}),
      fails("embedding needs integer indices", Op::embedding, {f32({100, 16}), f32({4})}, {},
            "embedding: indices must be i32 or i64, got f32[4]"),
      fails("embedding needs a matrix", Op::embedding, {f32({2, 3, 4}), i64({4})}, {},
            "embedding: weight must have rank 2, got f32[2,3,4]"),
      fails("embedding of rank-8 indices would exceed the rank limit", Op::embedding,
            {f32({5, 2}), i64({1, 1, 1, 1, 1, 1, 1, 1})}, {},
            "embedding: indices i64[1,1,1,1,1,1,1,1] have too many dimensions"),
      ok("embedding_grad has the weight's shape", Op::embedding_grad, {f32({4, 7, 16}), i64({4, 7})},
         {{"num_embeddings", I(100)}}, {f32({100, 16})}),
      ok("embedding_grad of a scalar index", Op::embedding_grad, {f64({5}), i32({})}, {{"num_embeddings", I(3)}},
         {f64({3, 5})}),
      fails("embedding_grad needs integer indices", Op::embedding_grad, {f32({4, 16}), f32({4})},
            {{"num_embeddings", I(10)}}, "embedding_grad: indices must be i32 or i64, got f32[4]"),
      fails("embedding_grad needs a float gradient", Op::embedding_grad, {i64({4, 16}), i64({4})},
            {{"num_embeddings", I(10)}}, "embedding_grad: output gradient must be f32 or f64, got i64[4,16]"),
      fails("embedding_grad needs rows", Op::embedding_grad, {f32({4, 16}), i64({4})}, {{"num_embeddings", I(0)}},
            "embedding_grad: num_embeddings must be at least 1, got 0"),
      fails("embedding_grad needs dy's leading dims to be the ids'", Op::embedding_grad, {f32({4, 6, 16}), i64({4, 7})},
            {{"num_embeddings", I(10)}},
            "embedding_grad: output gradient f32[4,6,16] must be indices i64[4,7] with one more dimension (the embedding's)"),
      fails("embedding_grad needs the embedding's dimension", Op::embedding_grad, {f32({4, 7}), i64({4, 7})},
            {{"num_embeddings", I(10)}},
            "embedding_grad: output gradient f32[4,7] must be indices i64[4,7] with one more dimension (the embedding's)"),
      ok("one_hot appends the classes, f32 by default", Op::one_hot, {i64({4})}, {{"num_classes", I(10)}},
         {f32({4, 10})}),
      ok("one_hot in i64 as PyTorch gives", Op::one_hot, {i32({2, 3})}, {{"num_classes", I(5)}, {"dtype", DType::i64}},
         {i64({2, 3, 5})}),
      ok("one_hot of a scalar", Op::one_hot, {i64({})}, {{"num_classes", I(3)}}, {f32({3})}),
      fails("one_hot needs classes", Op::one_hot, {i64({4})}, {{"num_classes", I(0)}},
            "one_hot: num_classes must be at least 1, got 0"),
      fails("one_hot needs integer indices", Op::one_hot, {f32({4})}, {{"num_classes", I(2)}},
            "one_hot: indices must be i32 or i64, got f32[4]"),
      fails("one_hot checks its result's size", Op::one_hot, {i32({int64_t{1} << 60})}, {{"num_classes", I(16)}},
            "one_hot: result f32[1152921504606846976,16] has more elements than fit in 64 bits"),
  };
}

std::vector<Case> shape_cases() {
  const Type x = f32({2, 3, 4}), m = f32({10, 20});
  auto sl = [](Ints axes, Ints starts, Ints ends, Ints steps = {}) {
    return NamedAttrs{{"axes", axes}, {"starts", starts}, {"ends", ends}, {"steps", steps}};
  };
  const int64_t big = int64_t{1} << 32;
  return {
      ok("reshape to a matrix", Op::reshape, {x}, {{"shape", Ints{6, 4}}}, {f32({6, 4})}),
      ok("reshape infers a lone -1", Op::reshape, {x}, {{"shape", Ints{-1}}}, {f32({24})}),
      ok("reshape infers a trailing -1", Op::reshape, {x}, {{"shape", Ints{2, -1}}}, {f32({2, 12})}),
      ok("reshape infers a leading -1", Op::reshape, {x}, {{"shape", Ints{-1, 3, 2}}}, {f32({4, 3, 2})}),
      ok("reshape a one-element tensor to a scalar", Op::reshape, {i64({1, 1})}, {{"shape", Ints{}}}, {i64({})}),
      ok("reshape a scalar with -1", Op::reshape, {f32({})}, {{"shape", Ints{-1}}}, {f32({1})}),
      fails("reshape allows one -1", Op::reshape, {x}, {{"shape", Ints{-1, -1}}}, "reshape: shape may hold at most one -1"),
      fails("reshape keeps the element count", Op::reshape, {x}, {{"shape", Ints{5, 5}}},
            "reshape: cannot reshape f32[2,3,4] (24 elements) to [5,5] (25 elements)"),
      fails("reshape's -1 must divide evenly", Op::reshape, {x}, {{"shape", Ints{5, -1}}},
            "reshape: cannot reshape f32[2,3,4] to [5,-1]: 24 elements do not divide by 5"),
      fails("reshape rejects a zero dimension", Op::reshape, {x}, {{"shape", Ints{0, 24}}},
            "reshape: shape [0,24] has a dimension below 1"),
      fails("reshape rejects -2", Op::reshape, {x}, {{"shape", Ints{-2, -12}}}, "reshape: shape [-2,-12] has a dimension below 1"),
      fails("reshape rejects an overflowing shape", Op::reshape, {x}, {{"shape", Ints{big, big}}},
            "reshape: shape [4294967296,4294967296] has more elements than fit in int64"),
      fails("reshape rejects rank 9", Op::reshape, {x}, {{"shape", Ints{1, 1, 1, 1, 1, 1, 2, 3, 4}}},
            "reshape: shape has rank 9, more than 8"),
      fails("reshape needs a shape", Op::reshape, {x}, {}, "reshape: missing attribute 'shape' (ints)"),
      ok("transpose permutes", Op::transpose, {x}, {{"perm", Ints{2, 0, 1}}}, {f32({4, 2, 3})}),
      ok("transpose takes negative axes", Op::transpose, {x}, {{"perm", Ints{-1, 0, 1}}}, {f32({4, 2, 3})}),
      fails("transpose needs every axis", Op::transpose, {x}, {{"perm", Ints{1, 0}}},
            "transpose: perm [1,0] must list each of the 3 axes of f32[2,3,4]"),
      fails("transpose rejects a repeated axis", Op::transpose, {x}, {{"perm", Ints{0, -3, 1}}},
            "transpose: perm [0,-3,1] lists axis 0 twice"),
      fails("transpose rejects an axis past the rank", Op::transpose, {x}, {{"perm", Ints{0, 1, 3}}},
            "transpose: axis 3 is out of range for f32[2,3,4] (rank 3)"),
      ok("broadcast_to adds a leading axis", Op::broadcast_to, {f32({3})}, {{"shape", Ints{2, 3}}}, {f32({2, 3})}),
      ok("broadcast_to stretches a size-1 axis", Op::broadcast_to, {i32({2, 1})}, {{"shape", Ints{2, 5}}}, {i32({2, 5})}),
      ok("broadcast_to from a scalar", Op::broadcast_to, {f32({})}, {{"shape", Ints{4}}}, {f32({4})}),
      fails("broadcast_to aligns on the right", Op::broadcast_to, {f32({3})}, {{"shape", Ints{3, 2}}},
            "broadcast_to: cannot broadcast f32[3] to f32[3,2]"),
      fails("broadcast_to cannot drop axes", Op::broadcast_to, {f32({2, 3})}, {{"shape", Ints{3}}},
            "broadcast_to: cannot broadcast f32[2,3] to f32[3]"),
      fails("broadcast_to rejects a zero dimension", Op::broadcast_to, {f32({1})}, {{"shape", Ints{0}}},
            "broadcast_to: shape: dimension 0 of f32[0] is 0: dimensions must be at least 1"),
      fails("broadcast_to rejects an overflowing shape", Op::broadcast_to, {f32({1})}, {{"shape", Ints{big, big}}},
            "broadcast_to: shape: f32[4294967296,4294967296] has more elements than fit in 64 bits"),
      ok("concat along axis 0", Op::concat, {f32({2, 3}), f32({4, 3})}, {{"axis", I(0)}}, {f32({6, 3})}),
      ok("concat of three along axis -1", Op::concat, {f32({2, 3}), f32({2, 5}), f32({2, 1})}, {{"axis", I(-1)}},
         {f32({2, 9})}),
      ok("concat of one operand", Op::concat, {i64({7})}, {{"axis", I(0)}}, {i64({7})}),
      fails("concat checks the other axes", Op::concat, {f32({2, 3}), f32({2, 4})}, {{"axis", I(0)}},
            "concat: operand 1 is f32[2,4]; dimension 1 differs from f32[2,3]"),
      fails("concat checks element types", Op::concat, {f32({2, 3}), f64({2, 3})}, {{"axis", I(0)}},
            "concat: operand 1 is f64[2,3], not compatible with f32[2,3]"),
      fails("concat checks ranks", Op::concat, {f32({2, 3}), f32({2, 3, 1})}, {{"axis", I(0)}},
            "concat: operand 1 is f32[2,3,1], not compatible with f32[2,3]"),
      fails("concat rejects an axis past the rank", Op::concat, {f32({2, 3})}, {{"axis", I(2)}},
            "concat: axis 2 is out of range for f32[2,3] (rank 2)"),
      fails("concat needs an operand", Op::concat, {}, {{"axis", I(0)}}, "concat: expects at least 1 operand, got 0"),
      ok("slice a range", Op::slice, {m}, sl({0}, {2}, {8}), {f32({6, 20})}),
      ok("slice with step 2 rounds up", Op::slice, {m}, sl({0}, {2}, {8}, {2}), {f32({3, 20})}),
      ok("slice with step 3 over a whole axis", Op::slice, {m}, sl({-1}, {0}, {20}, {3}), {f32({10, 7})}),
      ok("slice from a negative start", Op::slice, {m}, sl({0}, {-3}, {10}), {f32({3, 20})}),
      ok("slice to a negative end", Op::slice, {m}, sl({1}, {0}, {-1}), {f32({10, 19})}),
      ok("slice from -size", Op::slice, {m}, sl({0}, {-10}, {1}), {f32({1, 20})}),
      ok("slice two axes", Op::slice, {m}, sl({0, 1}, {1, 5}, {3, 20}, {1, 5}), {f32({2, 3})}),
      fails("slice rejects an empty range", Op::slice, {m}, sl({0}, {5}, {5}),
            "slice: slice [5:5] of axis 0 (size 10) of f32[10,20] is out of range or empty"),
      fails("slice does not clamp an end past the axis", Op::slice, {m}, sl({0}, {0}, {11}),
            "slice: slice [0:11] of axis 0 (size 10) of f32[10,20] is out of range or empty"),
      fails("slice rejects a start below -size", Op::slice, {m}, sl({0}, {-11}, {2}),
            "slice: slice [-11:2] of axis 0 (size 10) of f32[10,20] is out of range or empty"),
      fails("slice rejects step 0", Op::slice, {m}, sl({0}, {0}, {2}, {0}), "slice: step must be at least 1, got 0"),
      fails("slice rejects a negative step", Op::slice, {m}, sl({0}, {5}, {1}, {-1}), "slice: step must be at least 1, got -1"),
      fails("slice's lists must match", Op::slice, {m}, sl({0, 1}, {0}, {1, 1}),
            "slice: axes, starts, ends and steps must have the same length"),
      fails("slice rejects an axis twice", Op::slice, {m}, sl({0, -2}, {0, 0}, {1, 1}), "slice: axis -2 is sliced twice"),
      fails("slice needs starts", Op::slice, {m}, {{"axes", Ints{0}}, {"ends", Ints{1}}},
            "slice: missing attribute 'starts' (ints)"),
      ok("pad before and after each axis", Op::pad, {f32({2, 3})}, {{"pads", Ints{1, 1, 0, 2}}}, {f32({4, 5})}),
      ok("pad a scalar with no pads", Op::pad, {f32({})}, {{"pads", Ints{}}}, {f32({})}),
      fails("pad needs a pair per axis", Op::pad, {f32({2, 3})}, {{"pads", Ints{1, 1}}},
            "pad: pads must hold a (before, after) pair for each of the 2 axes of f32[2,3], got 2 values"),
      fails("pad rejects negative pads", Op::pad, {f32({2, 3})}, {{"pads", Ints{0, -1, 0, 0}}},
            "pad: pads must not be negative, got [0,-1,0,0]"),
      fails("pad rejects an overflowing dimension", Op::pad, {f32({2})}, {{"pads", Ints{INT64_MAX, 0}}},
            "pad: padded dimension overflows"),
      ok("flatten keeps the batch axis by default", Op::flatten, {f32({2, 3, 4, 5})}, {}, {f32({2, 60})}),
      ok("flatten everything from axis 0", Op::flatten, {f32({2, 3, 4, 5})}, {{"start_dim", I(0)}}, {f32({120})}),
      ok("flatten a middle range", Op::flatten, {f32({2, 3, 4, 5})}, {{"start_dim", I(1)}, {"end_dim", I(2)}},
         {f32({2, 12, 5})}),
      ok("flatten with negative dims", Op::flatten, {f32({2, 3, 4, 5})}, {{"start_dim", I(-2)}}, {f32({2, 3, 20})}),
      ok("flatten a single axis is a no-op", Op::flatten, {f32({2, 3})}, {{"start_dim", I(1)}}, {f32({2, 3})}),
      ok("flatten a scalar from axis 0 gives [1], as in PyTorch", Op::flatten, {f32({})}, {{"start_dim", I(0)}}, {f32({1})}),
      fails("flatten's default start_dim is out of range for a scalar", Op::flatten, {f32({})}, {},
            "flatten: axis 1 is out of range for f32[] (rank 0)"),
      fails("flatten rejects start after end", Op::flatten, {x}, {{"start_dim", I(2)}, {"end_dim", I(1)}},
            "flatten: start_dim 2 comes after end_dim 1"),
      fails("flatten's default start_dim needs rank 2", Op::flatten, {f32({4})}, {},
            "flatten: axis 1 is out of range for f32[4] (rank 1)"),
      ok("split in two", Op::split, {f32({6, 4})}, {{"axis", I(0)}, {"sizes", Ints{2, 4}}}, {f32({2, 4}), f32({4, 4})}),
      ok("split in three along axis -1", Op::split, {i32({6, 4})}, {{"axis", I(-1)}, {"sizes", Ints{1, 1, 2}}},
         {i32({6, 1}), i32({6, 1}), i32({6, 2})}),
      ok("split into one piece", Op::split, {f32({3})}, {{"axis", I(0)}, {"sizes", Ints{3}}}, {f32({3})}),
      fails("split's sizes must add up to the axis", Op::split, {f32({6, 4})}, {{"axis", I(0)}, {"sizes", Ints{2, 2}}},
            "split: sizes [2,2] add up to 4, but axis 0 of f32[6,4] is 6"),
      fails("split rejects a zero size", Op::split, {f32({6})}, {{"axis", I(0)}, {"sizes", Ints{6, 0}}},
            "split: sizes must be at least 1, got 0"),
      fails("split needs sizes", Op::split, {f32({6})}, {{"axis", I(0)}, {"sizes", Ints{}}}, "split: sizes must not be empty"),
      fails("split rejects an axis past the rank", Op::split, {f32({6})}, {{"axis", I(1)}, {"sizes", Ints{6}}},
            "split: axis 1 is out of range for f32[6] (rank 1)"),
  };
}

std::vector<Case> loss_cases() {
  std::vector<Case> cases;
  const Type p = f32({4, 3});
  for (Op op : {Op::mse, Op::huber, Op::bce_with_logits}) {
    std::string name(op_info(op).name);
    cases.push_back(ok(name + " means to a scalar", op, {p, p}, {}, {f32({})}));
    cases.push_back(ok(name + " sums to a scalar", op, {f64({2}), f64({2})}, {{"reduction", S("sum")}}, {f64({})}));
    cases.push_back(ok(name + " without reduction keeps the shape", op, {p, p}, {{"reduction", S("none")}}, {p}));
    cases.push_back(fails(name + " needs matching types", op, {p, f32({4})}, {},
                          name + ": prediction and target must have the same type, got f32[4,3] and f32[4]"));
    cases.push_back(fails(name + " rejects integer predictions", op, {i32({4}), i32({4})}, {},
                          name + ": prediction must be f32 or f64, got i32[4]"));
    cases.push_back(fails(name + " rejects an unknown reduction", op, {p, p}, {{"reduction", S("avg")}},
                          name + ": attribute 'reduction' is \"avg\"; expected one of: mean, sum, none"));
  }
  cases.push_back(fails("huber needs a positive delta", Op::huber, {p, p}, {{"delta", 0.0}},
                        "huber: delta must be positive, got 0.0"));
  const Type logits = f32({8, 10});
  for (Op op : {Op::cross_entropy, Op::nll}) {
    std::string name(op_info(op).name);
    cases.push_back(ok(name + " means to a scalar", op, {logits, i64({8})}, {}, {f32({})}));
    cases.push_back(ok(name + " sums to a scalar with i32 labels", op, {logits, i32({8})}, {{"reduction", S("sum")}},
                       {f32({})}));
    cases.push_back(ok(name + " without reduction gives one loss a row", op, {f64({8, 10}), i64({8})},
                       {{"reduction", S("none")}}, {f64({8})}));
    cases.push_back(fails(name + " needs a label a row", op, {logits, i64({4})}, {},
                          name + ": labels must be [8] for logits f32[8,10], got i64[4]"));
    cases.push_back(fails(name + " needs integer labels", op, {logits, f32({8})}, {},
                          name + ": labels must be i32 or i64, got f32[8]"));
    cases.push_back(fails(name + " needs rank-2 logits", op, {f32({8, 10, 2}), i64({8})}, {},
                          name + ": logits must have rank 2, got f32[8,10,2]"));
  }
  cases.push_back(ok("cross_entropy with label smoothing", Op::cross_entropy, {logits, i64({8})},
                     {{"label_smoothing", 0.1}, {"ignore_index", I(0)}}, {f32({})}));
  cases.push_back(fails("cross_entropy rejects label smoothing above 1", Op::cross_entropy, {logits, i64({8})},
                        {{"label_smoothing", 1.5}}, "cross_entropy: label_smoothing must be in [0, 1], got 1.5"));
  cases.push_back(fails("nll has no label smoothing", Op::nll, {logits, i64({8})}, {{"label_smoothing", 0.1}},
                        "nll: unknown attribute 'label_smoothing'"));
  for (Op op : {Op::l1_penalty, Op::l2_penalty}) {
    std::string name(op_info(op).name);
    cases.push_back(ok(name + " sums to a scalar", op, {f32({3, 4})}, {}, {f32({})}));
    cases.push_back(fails(name + " rejects integers", op, {i32({3})}, {}, name + ": operand must be f32 or f64, got i32[3]"));
  }
  return cases;
}

std::vector<Case> source_cases() {
  const Type w = f32({4, 3});
  return {
      source_ok("input of any type", Op::input, i64({7})),
      source_ok("input scalar", Op::input, boolean({})),
      source_fails("input needs a declared type", Op::input, {}, {}, "input: needs exactly one declared result type, got 0"),
      source_fails("input rejects a zero dimension", Op::input, {f32({2, 0})}, {},
                   "input: dimension 1 of f32[2,0] is 0: dimensions must be at least 1"),
      source_fails("input rejects rank 9", Op::input, {f32({1, 1, 1, 1, 1, 1, 1, 1, 1})}, {},
                   "input: rank 9 exceeds the maximum rank 8"),
      source_fails("input rejects an element count over int64", Op::input, {boolean({int64_t{1} << 32, int64_t{1} << 31})},
                   {}, "input: bool[4294967296,2147483648] has more elements than fit in 64 bits"),
      source_fails("input rejects a byte size over int64", Op::input, {f64({int64_t{1} << 61})}, {},
                   "input: f64[2305843009213693952] has 2305843009213693952 elements, too many bytes for a 64-bit size"),
      source_ok("parameter with kaiming init", Op::parameter, w, {{"init", S("kaiming_uniform")}, {"a", 2.0}}),
      source_ok("parameter of f64 zeros", Op::parameter, f64({3})),
      source_ok("parameter with uniform init", Op::parameter, f32({3}), {{"init", S("uniform")}, {"low", -1.0}, {"high", 1}}),
      source_fails("parameter must be float", Op::parameter, {i32({3})}, {}, "parameter: type must be f32 or f64, got i32[3]"),
      source_fails("parameter's uniform init needs low < high", Op::parameter, {w},
                   {{"init", S("uniform")}, {"low", 1.0}, {"high", 1.0}},
                   "parameter: uniform init needs low < high, got low=1.0 high=1.0"),
      source_fails("parameter's normal init needs std >= 0", Op::parameter, {w}, {{"init", S("normal")}, {"std", -1.0}},
                   "parameter: normal init needs std >= 0, got -1.0"),
      source_fails("parameter's xavier init needs rank 2", Op::parameter, {f32({3})}, {{"init", S("xavier_uniform")}},
                   "parameter: xavier_uniform init needs a parameter of rank 2 or more, got f32[3]"),
      source_fails("parameter rejects an unknown init", Op::parameter, {w}, {{"init", S("he")}},
                   "parameter: attribute 'init' is \"he\"; expected one of: zeros, ones, constant, uniform, normal, "
                   "xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal, orthogonal"),
      source_ok("constant with every value", Op::constant, f32({2, 2}), {{"value", Floats{1, 2, 3, 4}}}),
      source_ok("constant filled from one value", Op::constant, f64({3, 5}), {{"value", Floats{0.5}}}),
      source_ok("constant of integers", Op::constant, i64({2}), {{"value", Floats{-3, 9007199254740992.0}}}),
      source_ok("constant of bools", Op::constant, boolean({2}), {{"value", Floats{0, 1}}}),
      source_fails("constant needs a value", Op::constant, {f32({2})}, {}, "constant: missing attribute 'value' (floats)"),
      source_fails("constant needs the right count", Op::constant, {f32({2, 2})}, {{"value", Floats{1, 2, 3}}},
                   "constant: value has 3 elements but f32[2,2] needs 4 (or 1, to fill it)"),
      source_fails("constant rejects a fraction for an integer", Op::constant, {i32({1})}, {{"value", Floats{1.5}}},
                   "constant: value 1.5 is not a valid i32"),
      source_fails("constant rejects an i32 out of range", Op::constant, {i32({1})}, {{"value", Floats{3e9}}},
                   "constant: value 3000000000.0 is not a valid i32"),
      source_fails("constant rejects an i64 out of range", Op::constant, {i64({1})}, {{"value", Floats{1e30}}},
                   "constant: value 1e+30 is not a valid i64"),
      source_fails("constant rejects 2^63 for i64", Op::constant, {i64({1})}, {{"value", Floats{9223372036854775808.0}}},
                   "constant: value 9.223372036854776e+18 is not a valid i64"),
      source_fails("constant rejects nan for an integer", Op::constant, {i64({1})}, {{"value", Floats{NAN}}},
                   "constant: value nan is not a valid i64"),
      source_fails("constant rejects 2 for bool", Op::constant, {boolean({1})}, {{"value", Floats{2}}},
                   "constant: value 2.0 is not a valid bool"),
      source_ok("iota along an axis", Op::iota, i64({4, 5}), {{"axis", I(1)}}),
      source_ok("iota in f32 along -1", Op::iota, f32({6}), {{"axis", I(-1)}}),
      source_fails("iota rejects bool", Op::iota, {boolean({3})}, {}, "iota: type must be numeric, got bool[3]"),
      source_fails("iota rejects an axis past the rank", Op::iota, {i64({4, 5})}, {{"axis", I(2)}},
                   "iota: axis 2 is out of range for i64[4,5] (rank 2)"),
      source_ok("random_uniform", Op::random_uniform, f32({3}), {{"low", -1.0}, {"seed", I(7)}}),
      source_ok("random_uniform with a key", Op::random_uniform, f64({2, 2}), {}, {i64({})}),
      source_fails("random_uniform's key must be i64[]", Op::random_uniform, {f32({3})}, {},
                   "random_uniform: the generator key must be i64[], got i32[]", {i32({})}),
      source_fails("random_uniform needs low < high", Op::random_uniform, {f32({3})}, {{"low", 2.0}, {"high", 1.0}},
                   "random_uniform: needs low < high, got low=2.0 high=1.0"),
      source_ok("random_normal", Op::random_normal, f32({3}), {{"std", 0.02}}),
      source_fails("random_normal needs std >= 0", Op::random_normal, {f32({3})}, {{"std", -1.0}},
                   "random_normal: std must be >= 0, got -1.0"),
      source_fails("random_normal must be float", Op::random_normal, {i64({2})}, {},
                   "random_normal: type must be f32 or f64, got i64[2]"),
  };
}

std::vector<Case> attribute_cases() {
  return {
      ok("leaky_relu with alpha", Op::leaky_relu, {f32({2})}, {{"alpha", 0.2}}, {f32({2})}),
      ok("an int literal reads as a float attribute", Op::leaky_relu, {f32({2})}, {{"alpha", I(1)}}, {f32({2})}),
      fails("leaky_relu rejects alpha twice", Op::leaky_relu, {f32({2})}, {{"alpha", 0.2}, {"alpha", 0.3}},
            "leaky_relu: attribute 'alpha' given twice"),
      ok("gelu tanh approximation", Op::gelu, {f32({2})}, {{"approximate", S("tanh")}}, {f32({2})}),
      fails("gelu rejects an unknown approximation", Op::gelu, {f32({2})}, {{"approximate", S("fast")}},
            "gelu: attribute 'approximate' is \"fast\"; expected one of: none, tanh"),
      ok("cast changes the element type only", Op::cast, {f32({2, 3})}, {{"to", DType::i64}}, {i64({2, 3})}),
      ok("cast to bool", Op::cast, {i32({})}, {{"to", DType::b8}}, {boolean({})}),
      fails("cast needs a target", Op::cast, {f32({2})}, {}, "cast: missing attribute 'to' (dtype)"),
      fails("cast's target is a dtype, not a string", Op::cast, {f32({2})}, {{"to", S("f32")}},
            "cast: attribute 'to' must be dtype, got \"f32\""),
      fails("an unknown attribute gets a suggestion", Op::conv2d, {kImage, f32({16, 3, 3, 3})}, {{"stide", Ints{2, 2}}},
            "conv2d: unknown attribute 'stide'; did you mean 'stride'?"),
      fails("an op without attributes says so", Op::relu, {f32({2})}, {{"alpha", 0.1}}, "relu: takes no attributes, got 'alpha'"),
      fails("a float literal is not an int attribute", Op::softmax, {f32({2})}, {{"axis", 0.0}},
            "softmax: attribute 'axis' must be int, got 0.0"),
      fails("a string is not an int attribute", Op::softmax, {f32({2})}, {{"axis", S("0")}},
            "softmax: attribute 'axis' must be int, got \"0\""),
      fails("a float list is not an int list", Op::conv2d, {kImage, f32({16, 3, 3, 3})}, {{"stride", Floats{1.5, 1}}},
            "conv2d: attribute 'stride' must be ints, got [1.5, 1.0]"),
      fails("one operand is too few for add", Op::add, {f32({2})}, {}, "add: expects 2 operands, got 1"),
      fails("two operands are too many for relu", Op::relu, {f32({2}), f32({2})}, {}, "relu: expects 1 operand, got 2"),
      fails("conv2d takes two or three operands", Op::conv2d, {kImage, kImage, kImage, kImage}, {},
            "conv2d: expects 2 to 3 operands, got 4"),
      fails("input takes no operands", Op::input, {f32({2})}, {}, "input: expects 0 operands, got 1"),
  };
}

// h' = h + x, y = h' over a sequence of [2] vectors; the operand types vary per case.
std::shared_ptr<Graph> running_sum_body() {
  auto body = std::make_shared<Graph>("body");
  Builder b(*body);
  Value* h = b.input("h", f32({2}));
  Value* x = b.input("x", f32({2}));
  Value* h1 = b.add({h, x});
  b.output("h", h1);
  b.output("y", h1);
  return body;
}

std::vector<Case> scan_cases() {
  NamedAttrs a{{"num_carries", int64_t{1}}, {"num_xs", int64_t{1}}, {"length", int64_t{3}}};
  NamedAttrs on_axis1 = a;
  on_axis1.push_back({"axis", int64_t{1}});
  Case good = ok("scan over axis 0", Op::scan, {f32({2}), f32({3, 2})}, a, {f32({2}), f32({3, 2})});
  good.body = running_sum_body();
  Case axis1 = ok("scan over axis 1", Op::scan, {f32({2}), f32({2, 3})}, on_axis1, {f32({2}), f32({2, 3})});
  axis1.body = running_sum_body();
  Case no_body = fails("scan without a body", Op::scan, {f32({2}), f32({3, 2})}, a, "scan: needs a body in braces");
  Case length = fails("scan length differs from the scanned dimension", Op::scan, {f32({2}), f32({4, 2})}, a,
                    "scan: per-step input 0 is f32[4,2]: its dimension 0 is 4, not the length 3");
  length.body = running_sum_body();
  Case carry = fails("scan carry type differs from the body's", Op::scan, {f32({3}), f32({3, 2})}, a,
                   "scan: body input %h is f32[2], but carry 0 gives f32[3]");
  carry.body = running_sum_body();
  return {good, axis1, no_body, length, carry};
}

std::vector<Case> all_cases() {
  std::vector<Case> all;
  for (auto part : {unary_cases(), binary_cases(), reduction_cases(), matmul_cases(), conv_cases(), pool_cases(),
                    norm_cases(), neural_cases(), shape_cases(), loss_cases(), source_cases(), attribute_cases(), scan_cases()})
    all.insert(all.end(), part.begin(), part.end());
  return all;
}

Builder::Result run(const Case& c, Graph& g) {
  Builder b(g);
  std::vector<Value*> operands;
  for (size_t i = 0; i < c.operands.size(); ++i) operands.push_back(b.input(fmt::format("a{}", i), c.operands[i]));
  return b.try_create(c.op, operands, c.attrs, c.declared, {}, c.body);
}

}  // namespace

TEST_CASE("every shape rule gives PyTorch's result types and exact errors", "[shape]") {
  for (const Case& c : all_cases()) {
    Graph g("t");
    Builder::Result r = run(c, g);
    INFO(c.what);
    CHECK(r.error == c.error);
    if (!c.error.empty()) {
      CHECK(g.nodes.size() == c.operands.size());  // a rejected node is not appended
      continue;
    }
    std::vector<Type> got;
    for (Value* v : r.values) got.push_back(v->type);
    CHECK(got == c.results);
  }
}

TEST_CASE("every op has a good and a bad shape-rule case", "[shape][meta]") {
  std::map<Op, std::pair<int, int>> counts;
  for (const Case& c : all_cases()) (c.error.empty() ? counts[c.op].first : counts[c.op].second)++;
  for (const OpInfo& info : all_ops()) {
    INFO(info.name);
    CHECK(counts[info.op].first > 0);
    CHECK(counts[info.op].second > 0);
  }
}

TEST_CASE("a type mismatch with a declared result is an error", "[shape]") {
  Graph g("t");
  Builder b(g);
  Value* x = b.input("x", f32({2}));
  auto r = b.try_create(Op::relu, {x}, {}, {f32({3})});
  CHECK(r.error == "relu: declared result type f32[3] but the op gives f32[2]");
  CHECK(b.try_create(Op::relu, {x}, {}, {f32({2})}).error.empty());
}

TEST_CASE("the builder rejects names already used, in the graph or in one node", "[shape]") {
  Graph g("t");
  Builder b(g);
  Value* x = b.input("x", f32({4}));
  CHECK(b.try_create(Op::relu, {x}, {}, {}, {"x"}).error == "the name '%x' is already defined");
  NamedAttrs halves{{"axis", I(0)}, {"sizes", Ints{2, 2}}};
  CHECK(b.try_create(Op::split, {x}, halves, {}, {"a", "a"}).error == "the name '%a' is already defined");
  CHECK(b.try_create(Op::split, {x}, halves, {}, {"a"}).error == "split: gives 2 results, 1 names given");
  CHECK(b.try_create(Op::split, {x}, halves, {}, {"a", "b"}).error.empty());
  CHECK(g.nodes.size() == 2);
}

TEST_CASE("the builder's per-op methods throw BuildError with the message", "[shape]") {
  Graph g("t");
  Builder b(g);
  Value* x = b.input("x", f32({2, 3}));
  CHECK_THROWS_WITH(b.add({x, b.input("y", f32({2}))}), "add: cannot broadcast f32[2,3] with f32[2]");
  CHECK_THROWS_WITH(b.split({x}, {{"axis", I(1)}, {"sizes", Ints{1, 2}}}),
                    "split gives 2 results; call Builder::create");
  CHECK(b.split({x}, {{"axis", I(1)}, {"sizes", Ints{3}}})->type == f32({2, 3}));
  CHECK_THROWS_WITH(b.update(x, x), "update target %x is not a parameter");
  CHECK(g.nodes.size() == 3);  // x, y and the one-piece split: the failed calls added nothing
}
