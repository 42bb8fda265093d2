// Converters of the neural-network ops: convolutions, pools, normalizations, softmax, dropout.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "frontend/onnx/ctx.h"

namespace stag::onnx_import {

namespace {

using Vals = std::vector<Value*>;

/// A sliding window over the spatial axes, with ONNX's (begin, end) padding per axis.
struct Window {
  Ints kernel, stride, dilation, begin, end;
};

// SAME_UPPER / SAME_LOWER: the padding that makes the output ceil(input / stride).
void same_padding(Window& w, const Dims& spatial, bool upper) {
  for (size_t i = 0; i < spatial.size(); ++i) {
    int64_t out = (spatial[i] + w.stride[i] - 1) / w.stride[i];
    int64_t total = std::max<int64_t>(0, (out - 1) * w.stride[i] + (w.kernel[i] - 1) * w.dilation[i] + 1 - spatial[i]);
    w.begin[i] = upper ? total / 2 : total - total / 2;
    w.end[i] = total - w.begin[i];
  }
}

Window window(Ctx& c, const Dims& spatial, const Ints& kernel) {
  size_t n = kernel.size();
  Window w{kernel, c.aints("strides", Ints(n, 1)), c.aints("dilations", Ints(n, 1)), Ints(n, 0), Ints(n, 0)};
  Ints pads = c.aints("pads", Ints(2 * n, 0));
  if (w.stride.size() != n || w.dilation.size() != n || pads.size() != 2 * n) fail("strides, dilations or pads do not match the kernel's rank");
  std::string mode = c.as("auto_pad", "NOTSET");
  if (mode == "SAME_UPPER" || mode == "SAME_LOWER") {
    same_padding(w, spatial, mode == "SAME_UPPER");
  } else if (mode != "VALID") {
    w.begin.assign(pads.begin(), pads.begin() + static_cast<long>(n));
    w.end.assign(pads.begin() + static_cast<long>(n), pads.end());
  }
  return w;
}

// stag's windows are 2-D: a 1-D one gains a unit height.
Window to_2d(Window w) {
  if (w.kernel.size() != 1) return w;
  for (Ints* v : {&w.kernel, &w.stride, &w.dilation}) v->insert(v->begin(), 1);
  for (Ints* v : {&w.begin, &w.end}) v->insert(v->begin(), 0);
  return w;
}

Value* unit_height(Ctx& c, Value* x) {
  Dims d = x->type.dims;
  d.insert(d.begin() + 2, 1);
  return c.reshape(x, d);
}

Value* drop_height(Ctx& c, Value* y) {
  Dims d = y->type.dims;
  d.erase(d.begin() + 2);
  return c.reshape(y, d);
}

size_t spatial_rank(Value* x) {
  size_t r = x->type.rank();
  if (r != 3 && r != 4) fail(fmt::format("input {} must have 1 or 2 spatial axes (rank 3 or 4)", to_string(x->type)));
  return r - 2;
}

Dims spatial_of(Value* x) { return Dims(x->type.dims.begin() + 2, x->type.dims.end()); }

// Padding stag's ops take is symmetric; the rest is an explicit pad before the op.
Value* pad_asymmetric(Ctx& c, Value* x, Window& w, double value) {
  if (w.begin == w.end) return x;
  Ints pads(2 * x->type.rank(), 0);
  for (size_t i = 0; i < w.begin.size(); ++i) {
    pads[2 * (i + 2)] = w.begin[i];
    pads[2 * (i + 2) + 1] = w.end[i];
    w.begin[i] = w.end[i] = 0;
  }
  return c.op(Op::pad, {x}, {{"pads", pads}, {"value", value}});
}

Vals conv(Ctx& c) {
  Value *x = c.in(0), *w = c.in(1);
  size_t n = spatial_rank(x);
  Window win = window(c, spatial_of(x), c.aints("kernel_shape", Dims(w->type.dims.begin() + 2, w->type.dims.end())));
  if (n == 1) x = unit_height(c, x), w = unit_height(c, w);
  win = to_2d(win);
  x = pad_asymmetric(c, x, win, 0);
  Vals operands = {x, w};
  if (c.has(2)) operands.push_back(c.in(2));
  Value* y = c.op(Op::conv2d, operands, {{"stride", win.stride}, {"padding", win.begin}, {"dilation", win.dilation}, {"groups", c.ai("group", 1)}});
  return {n == 1 ? drop_height(c, y) : y};
}

// ONNX's (begin, end) padding as stag's symmetric padding and output_padding: the end's
// shortfall becomes output padding.
void transpose_padding(Ctx& c, Value* x, Window& w, Ints& output_padding) {
  Ints shape = c.aints("output_shape");
  size_t n = w.kernel.size();
  if (!shape.empty() && shape.size() < n) fail("output_shape gives fewer sizes than the kernel has spatial axes");
  for (size_t i = 0; i < n && !shape.empty(); ++i) {
    int64_t full = w.stride[i] * (x->type.dims[2 + i] - 1) + output_padding[i] + (w.kernel[i] - 1) * w.dilation[i] + 1;
    int64_t total = full - shape[shape.size() - n + i];
    bool upper = c.as("auto_pad", "NOTSET") == "SAME_UPPER";
    w.begin[i] = upper ? total / 2 : total - total / 2;
    w.end[i] = total - w.begin[i];
  }
  for (size_t i = 0; i < n; ++i) {
    output_padding[i] += w.begin[i] - w.end[i];
    if (output_padding[i] < 0) fail("padding with more at the end than at the beginning is not supported");
  }
}

Vals conv_transpose(Ctx& c) {
  Value *x = c.in(0), *w = c.in(1);
  size_t n = spatial_rank(x);
  Ints kernel = c.aints("kernel_shape", Dims(w->type.dims.begin() + 2, w->type.dims.end()));
  Window win{kernel, c.aints("strides", Ints(n, 1)), c.aints("dilations", Ints(n, 1)), Ints(n, 0), Ints(n, 0)};
  Ints pads = c.aints("pads", Ints(2 * n, 0));
  if (pads.size() != 2 * n) fail("pads do not match the kernel's rank");
  std::string mode = c.as("auto_pad", "NOTSET");
  if (mode != "NOTSET" && mode != "VALID" && c.aints("output_shape").empty()) fail(fmt::format("auto_pad {} without output_shape is not supported", mode));
  if (mode == "NOTSET") win.begin.assign(pads.begin(), pads.begin() + static_cast<long>(n)), win.end.assign(pads.begin() + static_cast<long>(n), pads.end());
  Ints output_padding = c.aints("output_padding", Ints(n, 0));
  if (kernel.size() != n || win.stride.size() != n || win.dilation.size() != n || output_padding.size() != n)
    fail("kernel_shape, strides, dilations or output_padding do not match the input's spatial rank");
  transpose_padding(c, x, win, output_padding);
  if (n == 1) x = unit_height(c, x), w = unit_height(c, w), output_padding.insert(output_padding.begin(), 0);
  win = to_2d(win);
  Vals operands = {x, w};
  if (c.has(2)) operands.push_back(c.in(2));
  Value* y = c.op(Op::conv_transpose2d, operands,
                  {{"stride", win.stride}, {"padding", win.begin}, {"output_padding", output_padding}, {"dilation", win.dilation}, {"groups", c.ai("group", 1)}});
  return {n == 1 ? drop_height(c, y) : y};
}

template <bool Max>
Vals pool(Ctx& c) {
  Value* x = c.in(0);
  size_t n = spatial_rank(x);
  Window win = window(c, spatial_of(x), c.aints("kernel_shape"));
  if (win.kernel.size() != n) fail("kernel_shape must give one size per spatial axis");
  if (c.outputs() > 1 && !c.node->output(1).empty()) fail("the Indices output is not supported");
  if (n == 1) x = unit_height(c, x);
  win = to_2d(win);
  bool include_pad = c.ai("count_include_pad", 0) != 0;
  if (!Max && !include_pad && win.begin != win.end) fail("asymmetric padding without count_include_pad is not supported");
  x = pad_asymmetric(c, x, win, Max ? -std::numeric_limits<double>::infinity() : 0.0);
  NamedAttrs attrs = {{"kernel", win.kernel}, {"stride", win.stride}, {"padding", win.begin}, {"ceil_mode", c.ai("ceil_mode", 0) != 0}};
  if (Max) attrs.push_back({"dilation", win.dilation});
  else attrs.push_back({"count_include_pad", include_pad});
  if (!Max && win.dilation != Ints(2, 1)) fail("dilated average pooling is not supported");
  Value* y = c.op(Max ? Op::max_pool2d : Op::avg_pool2d, {x}, attrs);
  return {n == 1 ? drop_height(c, y) : y};
}

Ints spatial_axes(Value* x) {
  Ints axes;
  for (size_t i = 2; i < x->type.rank(); ++i) axes.push_back(static_cast<int64_t>(i));
  return axes;
}

template <bool Max>
Vals global_pool(Ctx& c) {
  Value* x = c.in(0);
  if (x->type.rank() < 3) fail(fmt::format("input {} has no spatial axes", to_string(x->type)));
  if (!Max && x->type.rank() == 4) return {c.op(Op::global_avg_pool, {x})};
  return {c.op(Max ? Op::max : Op::mean, {x}, {{"axes", spatial_axes(x)}, {"keepdims", true}})};
}

Value* per_channel(Ctx& c, Value* v, size_t rank) {
  Dims d(rank - 1, 1);
  d[0] = v->type.dims.at(0);
  return c.reshape(v, d);
}

// Running statistics are state, not weights: gradient descent must not move them.
void freeze(Value* v) {
  if (v->def->op != Op::parameter) return;
  v->def->attrs[static_cast<size_t>(v->def->info().attr_index("trainable"))] = false;
}

Vals batch_norm(Ctx& c) {
  if (c.ai("training_mode", 0) != 0) fail("training_mode=1 is not supported (import the inference graph; stag train makes its own)");
  for (size_t i = 1; i < c.outputs(); ++i)
    if (!c.node->output(static_cast<int>(i)).empty()) fail("the training outputs (running mean and variance) are not supported");
  freeze(c.in(3));
  freeze(c.in(4));
  // Inference normalization is an affine map per channel; as elementwise ops it fuses with its
  // neighbours and differentiates as PyTorch's eval-mode BatchNorm does.
  Value* x = c.in(0);
  size_t rank = x->type.rank();
  if (rank < 2) fail(fmt::format("input {} has no channel axis", to_string(x->type)));
  Value* inv = c.op(Op::rsqrt, {c.op(Op::add, {c.in(4), c.scalar(c.af("epsilon", 1e-5), x)})});
  Value* scale = per_channel(c, c.op(Op::mul, {c.in(1), inv}), rank);
  Value* y = c.op(Op::mul, {c.op(Op::sub, {x, per_channel(c, c.in(3), rank)}), scale});
  return {c.op(Op::add, {y, per_channel(c, c.in(2), rank)})};
}

Value* broadcast_to(Ctx& c, Value* v, const Dims& dims) {
  return v->type.dims == dims ? v : c.op(Op::broadcast_to, {v}, {{"shape", Ints(dims)}});
}

// LayerNormalization's optional outputs: the mean and 1 / sqrt(variance + eps) over the
// normalized axes, kept as axes of 1. Only what is read is computed (dce drops the rest).
Vals normalization_statistics(Ctx& c, Value* x, int64_t axis, double eps) {
  Ints axes;
  for (auto a = static_cast<size_t>(axis); a < x->type.rank(); ++a) axes.push_back(static_cast<int64_t>(a));
  NamedAttrs over = {{"axes", axes}, {"keepdims", true}};
  Value* mean = c.op(Op::mean, {x}, over);
  Value* var = c.op(Op::mean, {c.op(Op::square, {c.op(Op::sub, {x, mean})})}, over);
  return {mean, c.op(Op::rsqrt, {c.op(Op::add, {var, c.scalar(eps, x)})})};
}

void append(Vals& to, const Vals& more) { to.insert(to.end(), more.begin(), more.end()); }

Vals layer_norm(Ctx& c) {
  Value* x = c.in(0);
  int64_t axis = norm_axis(c.ai("axis", -1), x->type.rank());
  Dims norm(x->type.dims.begin() + axis, x->type.dims.end());
  Value* scale = broadcast_to(c, c.in(1), norm);
  Value* bias = c.has(2) ? broadcast_to(c, c.in(2), norm) : broadcast_to(c, c.scalar(0, x), norm);
  auto k = static_cast<int64_t>(x->type.rank()) - axis;
  double eps = c.af("epsilon", 1e-5);
  Vals out = {c.op(Op::layer_norm, {x, scale, bias}, {{"normalized_dims", k}, {"eps", eps}})};
  if (c.outputs() > 1) append(out, normalization_statistics(c, x, axis, eps));
  return out;
}


Vals instance_norm(Ctx& c) {
  Value* x = c.in(0);
  if (x->type.rank() < 3) fail(fmt::format("input {} has no spatial axes", to_string(x->type)));
  NamedAttrs over = {{"axes", spatial_axes(x)}, {"keepdims", true}};
  Value* d = c.op(Op::sub, {x, c.op(Op::mean, {x}, over)});
  Value* var = c.op(Op::mean, {c.op(Op::square, {d})}, over);
  Value* y = c.op(Op::mul, {d, c.op(Op::rsqrt, {c.op(Op::add, {var, c.scalar(c.af("epsilon", 1e-5), x)})})});
  y = c.op(Op::mul, {y, per_channel(c, c.in(1), x->type.rank())});
  return {c.op(Op::add, {y, per_channel(c, c.in(2), x->type.rank())})};
}

// Before opset 13 softmax works on the input flattened to 2-D at `axis` (default 1).
template <Op O>
Vals softmax(Ctx& c) {
  Value* x = c.in(0);
  if (c.opset >= 13) return {c.op(O, {x}, {{"axis", norm_axis(c.ai("axis", -1), x->type.rank())}})};
  auto axis = norm_axis(c.ai("axis", 1), x->type.rank());
  int64_t outer = *checked_numel(Dims(x->type.dims.begin(), x->type.dims.begin() + axis));
  Value* flat = c.reshape(x, {outer, *checked_numel(x->type.dims) / outer});
  return {c.reshape(c.op(O, {flat}, {{"axis", int64_t{1}}}), x->type.dims)};
}

Vals dropout(Ctx& c) {
  Value* x = c.in(0);
  bool training = c.opset >= 12 && c.has(2) && c.known_ints(c.in(2), "training_mode").at(0) != 0;
  if (training) fail("training_mode=1 is not supported: its mask is random");
  Value* mask = nullptr;
  if (c.outputs() > 1) mask = broadcast_to(c, c.constant({DType::b8, {}}, {1}), x->type.dims);
  return {x, mask};
}

}  // namespace

const std::vector<OpEntry>& nn_ops() {
  static const std::vector<OpEntry> table = {
      {"Conv", conv}, {"ConvTranspose", conv_transpose}, {"MaxPool", pool<true>}, {"AveragePool", pool<false>},
      {"GlobalAveragePool", global_pool<false>}, {"GlobalMaxPool", global_pool<true>},
      {"BatchNormalization", batch_norm}, {"LayerNormalization", layer_norm}, {"InstanceNormalization", instance_norm},
      {"Softmax", softmax<Op::softmax>}, {"LogSoftmax", softmax<Op::log_softmax>}, {"Dropout", dropout},
  };
  return table;
}

}  // namespace stag::onnx_import
