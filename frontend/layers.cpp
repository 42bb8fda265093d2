// Built-in layers with PyTorch's constructor arguments, parameter names, shapes and default
// initialisation: Linear, convolutions, normalisation, embedding, dropout, pools, activations.

#include <fmt/format.h>

#include <cmath>

#include "frontend/lowering.h"

namespace stag::fe {

namespace {

using A = ArgKind;

Val I(int64_t v) { return Val::integer(v); }
Val F(double v) { return Val::real(v); }
Val B(bool v) { return Val::boolean(v); }
Val S(const char* v) { return Val::str(v); }
Val P(int64_t a, int64_t b) {
  Val l;
  l.kind = Val::List;
  l.items = {I(a), I(b)};
  return l;
}

Ints pair(const Instance& in, const char* name) {
  const Val& v = in.arg(name);
  return {v.items[0].i, v.items[1].i};
}

Value* input_tensor(const std::vector<Val>& in) { return in[0].t; }

// ---- Linear
bool make_linear(Ctx& c, Instance& in) {
  int64_t fi = in.i("in_features"), fo = in.i("out_features");
  c.parameter(in, "weight", {DType::f32, {fo, fi}}, kaiming_default());
  if (in.b("bias")) c.parameter(in, "bias", {DType::f32, {fo}}, bias_default(fi));
  return true;
}
std::vector<Val> fwd_linear(Ctx& c, Instance& in, const std::vector<Val>& args, const Loc& loc) {
  Value* x = input_tensor(args);
  int64_t fi = in.i("in_features");
  if (x->type.rank() < 2 || x->type.dims.back() != fi) {
    c.error(loc, fmt::format("{}: Linear({}, {}) expects an input of rank 2 or more with {} features in the last "
                             "dimension, got {}", in.path, fi, in.i("out_features"), fi, to_string(x->type)));
    return {};
  }
  auto b = in.params.count("bias") ? in.params["bias"] : nullptr;
  if (!in.params.count("weight")) return {};
  return {Val::tensor(linear(c, x, in.params["weight"], b, loc, in.label()))};
}

// ---- Conv2d / ConvTranspose2d
bool check_groups(Ctx& c, Instance& in, int64_t cin, int64_t cout) {
  int64_t g = in.i("groups");
  if (g < 1 || cin % g || cout % g) {
    c.error(in.loc, fmt::format("{}: in_channels {} and out_channels {} must be divisible by groups {}", in.path,
                                cin, cout, g));
    return false;
  }
  return true;
}
bool make_conv(Ctx& c, Instance& in) {
  int64_t cin = in.i("in_channels"), cout = in.i("out_channels"), g = in.i("groups");
  Ints k = pair(in, "kernel_size");
  if (!check_groups(c, in, cin, cout)) return false;
  c.parameter(in, "weight", {DType::f32, {cout, cin / g, k[0], k[1]}}, kaiming_default());
  if (in.b("bias")) c.parameter(in, "bias", {DType::f32, {cout}}, bias_default(cin / g * k[0] * k[1]));
  return true;
}
bool make_conv_t(Ctx& c, Instance& in) {
  int64_t cin = in.i("in_channels"), cout = in.i("out_channels"), g = in.i("groups");
  Ints k = pair(in, "kernel_size");
  if (!check_groups(c, in, cin, cout)) return false;
  c.parameter(in, "weight", {DType::f32, {cin, cout / g, k[0], k[1]}}, kaiming_default());
  // PyTorch takes fan_in from the weight's dimension 1: out_channels / groups * kh * kw.
  if (in.b("bias")) c.parameter(in, "bias", {DType::f32, {cout}}, bias_default(cout / g * k[0] * k[1]));
  return true;
}
std::vector<Val> fwd_conv(Ctx& c, Instance& in, const std::vector<Val>& args, const Loc& loc) {
  if (!in.params.count("weight")) return {};
  std::vector<Value*> ops{input_tensor(args), in.params["weight"]};
  if (in.params.count("bias")) ops.push_back(in.params["bias"]);
  bool t = in.kind == "ConvTranspose2d";
  NamedAttrs attrs{{"stride", pair(in, "stride")}, {"padding", pair(in, "padding")},
                   {"dilation", pair(in, "dilation")}, {"groups", in.i("groups")}};
  if (t) attrs.emplace_back("output_padding", pair(in, "output_padding"));
  return {Val::tensor(c.op(t ? Op::conv_transpose2d : Op::conv2d, ops, attrs, loc, in.label()))};
}

// ---- BatchNorm1d / BatchNorm2d
bool make_bn(Ctx& c, Instance& in) {
  int64_t n = in.i("num_features");
  Type t{DType::f32, {n}};
  double m = in.f("momentum");
  if (!(m >= 0 && m <= 1)) {
    c.error(in.loc, fmt::format("{}: momentum must be in [0, 1], got {}", in.path, format_float(m)));
    return false;
  }
  if (!(in.f("eps") > 0)) {
    c.error(in.loc, fmt::format("{}: eps must be positive, got {}", in.path, format_float(in.f("eps"))));
    return false;
  }
  if (in.b("affine")) {
    c.parameter(in, "weight", t, {{"init", std::string("ones")}});
    c.parameter(in, "bias", t, {{"init", std::string("zeros")}});
  }
  // PyTorch's num_batches_tracked is not kept: it only matters for momentum=None.
  c.parameter(in, "running_mean", t, {{"init", std::string("zeros")}}, false);
  c.parameter(in, "running_var", t, {{"init", std::string("ones")}}, false);
  return true;
}
std::vector<Val> fwd_bn(Ctx& c, Instance& in, const std::vector<Val>& args, const Loc& loc) {
  Value* x = input_tensor(args);
  size_t want = in.kind == "BatchNorm2d" ? 4 : 0;
  if ((want && x->type.rank() != want) || (!want && x->type.rank() != 2 && x->type.rank() != 3)) {
    c.error(loc, fmt::format("{}: expects a {} input, got {}", in.label(),
                             want ? "rank-4 [N, C, H, W]" : "rank-2 [N, C] or rank-3 [N, C, L]", to_string(x->type)));
    return {};
  }
  Value *rm = in.params["running_mean"], *rv = in.params["running_var"];
  if (!rm || !rv) return {};
  Type ct{DType::f32, {in.i("num_features")}};
  Value* w = in.params.count("weight") ? in.params["weight"] : c.fill(1, ct, loc);
  Value* b = in.params.count("bias") ? in.params["bias"] : c.fill(0, ct, loc);
  NamedAttrs attrs{{"eps", in.f("eps")}, {"training", c.training()}};
  auto r = c.ops(Op::batch_norm, {x, w, b, rm, rv}, attrs, loc, in.label());
  if (r.empty()) return {};
  if (!c.training()) return {Val::tensor(r[0])};
  if (in.calls > 1) {
    c.error(loc, fmt::format("{} is applied more than once; in training mode its running statistics can be "
                             "updated only once a step (declare one layer per use)", in.path));
    return {};
  }
  // PyTorch: running = (1 - momentum) * running + momentum * batch, with the unbiased variance.
  int64_t n = *checked_numel(x->type.dims) / x->type.dims[1];
  if (n < 2) {
    c.error(loc, fmt::format("{}: training needs more than 1 value per channel, got input {}", in.label(),
                             to_string(x->type)));
    return {};
  }
  double m = in.f("momentum");
  auto blend = [&](Value* run, Value* batch, double scale) {
    Value* keep = c.op(Op::mul, {run, c.scalar(1 - m, DType::f32, loc)}, {}, loc, in.label());
    Value* add = c.op(Op::mul, {batch, c.scalar(m * scale, DType::f32, loc)}, {}, loc, in.label());
    return c.op(Op::add, {keep, add}, {}, loc, in.label());
  };
  Value* new_mean = blend(rm, r[1], 1.0);
  Value* new_var = blend(rv, r[2], static_cast<double>(n) / static_cast<double>(n - 1));
  if (!new_mean || !new_var) return {};
  c.b.set_loc(c.scoped(loc));
  c.b.update(rm, new_mean);
  c.b.update(rv, new_var);
  return {Val::tensor(r[0])};
}

// ---- LayerNorm
bool make_ln(Ctx& c, Instance& in) {
  const Val& shape = in.arg("normalized_shape");
  Dims dims;
  for (const Val& d : shape.items) dims.push_back(d.i);
  if (!(in.f("eps") > 0)) {
    c.error(in.loc, fmt::format("{}: eps must be positive, got {}", in.path, format_float(in.f("eps"))));
    return false;
  }
  if (in.b("elementwise_affine")) {
    c.parameter(in, "weight", {DType::f32, dims}, {{"init", std::string("ones")}});
    if (in.b("bias")) c.parameter(in, "bias", {DType::f32, dims}, {{"init", std::string("zeros")}});
  }
  return true;
}
std::vector<Val> fwd_ln(Ctx& c, Instance& in, const std::vector<Val>& args, const Loc& loc) {
  Value* x = input_tensor(args);
  const Val& shape = in.arg("normalized_shape");
  Dims dims;
  for (const Val& d : shape.items) dims.push_back(d.i);
  if (x->type.rank() < dims.size() || !std::equal(dims.begin(), dims.end(), x->type.dims.end() - dims.size())) {
    c.error(loc, fmt::format("{}: normalized_shape {} does not match the trailing dimensions of {}", in.label(),
                             dims_to_string(dims), to_string(x->type)));
    return {};
  }
  std::vector<Value*> ops{x};
  if (in.params.count("weight")) {
    ops.push_back(in.params["weight"]);
    ops.push_back(in.params.count("bias") ? in.params["bias"] : c.fill(0, {DType::f32, dims}, loc));
  }
  NamedAttrs attrs{{"normalized_dims", static_cast<int64_t>(dims.size())}, {"eps", in.f("eps")}};
  return {Val::tensor(c.op(Op::layer_norm, ops, attrs, loc, in.label()))};
}

// ---- Embedding
bool make_embedding(Ctx& c, Instance& in) {
  c.parameter(in, "weight", {DType::f32, {in.i("num_embeddings"), in.i("embedding_dim")}},
              {{"init", std::string("normal")}});
  return true;
}
std::vector<Val> fwd_embedding(Ctx& c, Instance& in, const std::vector<Val>& args, const Loc& loc) {
  if (!in.params.count("weight")) return {};
  return {Val::tensor(c.op(Op::embedding, {in.params["weight"], input_tensor(args)}, {}, loc, in.label()))};
}

// ---- layers without parameters
bool make_none(Ctx&, Instance&) { return true; }

std::vector<Val> fwd_dropout(Ctx& c, Instance& in, const std::vector<Val>& args, const Loc& loc) {
  double p = in.arg("p").kind == Val::None ? c.default_dropout.value_or(0.5) : in.f("p");
  if (!(p >= 0 && p < 1)) {
    c.error(loc, fmt::format("{}: p must be in [0, 1), got {}", in.label(), format_float(p)));
    return {};
  }
  Value* x = input_tensor(args);
  if (!c.training()) return {Val::tensor(c.op(Op::dropout, {x}, {{"p", p}, {"training", false}}, loc, in.label()))};
  Value* key = c.step_key(loc);
  NamedAttrs attrs{{"p", p}, {"training", true}, {"seed", c.next_seed++}};
  return {Val::tensor(c.op(Op::dropout, {x, key}, attrs, loc, in.label()))};
}

std::vector<Val> fwd_pool(Ctx& c, Instance& in, const std::vector<Val>& args, const Loc& loc) {
  Ints k = pair(in, "kernel_size");
  Ints s = in.arg("stride").kind == Val::None ? k : pair(in, "stride");
  NamedAttrs attrs{{"kernel", k}, {"stride", s}, {"padding", pair(in, "padding")}, {"ceil_mode", in.b("ceil_mode")}};
  bool max = in.kind == "MaxPool2d";
  if (max) attrs.emplace_back("dilation", pair(in, "dilation"));
  else attrs.emplace_back("count_include_pad", in.b("count_include_pad"));
  return {Val::tensor(c.op(max ? Op::max_pool2d : Op::avg_pool2d, {input_tensor(args)}, attrs, loc, in.label()))};
}

std::vector<Val> fwd_activation(Ctx& c, Instance& in, const std::vector<Val>& args, const Loc& loc) {
  Value* x = input_tensor(args);
  const std::string& k = in.kind;
  Value* y = nullptr;
  if (k == "ReLU") y = c.op(Op::relu, {x}, {}, loc, in.label());
  else if (k == "GELU") y = c.op(Op::gelu, {x}, {{"approximate", in.arg("approximate").s}}, loc, in.label());
  else if (k == "Tanh") y = c.op(Op::tanh, {x}, {}, loc, in.label());
  else if (k == "Sigmoid") y = c.op(Op::sigmoid, {x}, {}, loc, in.label());
  else if (k == "LeakyReLU") y = c.op(Op::leaky_relu, {x}, {{"alpha", in.f("negative_slope")}}, loc, in.label());
  else if (k == "Softmax") y = c.op(Op::softmax, {x}, {{"axis", in.i("dim")}}, loc, in.label());
  else if (k == "LogSoftmax") y = c.op(Op::log_softmax, {x}, {{"axis", in.i("dim")}}, loc, in.label());
  else if (k == "Flatten")
    y = c.op(Op::flatten, {x}, {{"start_dim", in.i("start_dim")}, {"end_dim", in.i("end_dim")}}, loc, in.label());
  else if (k == "Identity") y = x;
  else if (k == "SiLU") y = c.op(Op::mul, {x, c.op(Op::sigmoid, {x}, {}, loc, in.label())}, {}, loc, in.label());
  else if (k == "AdaptiveAvgPool2d") {
    // Only the global case exists as an op; other output sizes would need a pooling window
    // per output cell.
    Ints out = pair(in, "output_size");
    if (out != Ints{1, 1}) {
      c.error(loc, fmt::format("{}: only output_size 1 (global average pooling) is supported, got [{}, {}]",
                               in.label(), out[0], out[1]));
      return {};
    }
    y = c.op(Op::global_avg_pool, {x}, {}, loc, in.label());
  }
  return {Val::tensor(y)};
}

std::vector<LayerKind> build() {
  std::vector<LayerKind> t = {
      {"Linear", {{"in_features", A::Size}, {"out_features", A::Size}, {"bias", A::Bool, B(true)}},
       make_linear, fwd_linear},
      {"Conv2d",
       {{"in_channels", A::Size}, {"out_channels", A::Size}, {"kernel_size", A::Pair}, {"stride", A::Pair, P(1, 1)},
        {"padding", A::Pair, P(0, 0)}, {"dilation", A::Pair, P(1, 1)}, {"groups", A::Size, I(1)},
        {"bias", A::Bool, B(true)}},
       make_conv, fwd_conv},
      {"ConvTranspose2d",
       {{"in_channels", A::Size}, {"out_channels", A::Size}, {"kernel_size", A::Pair}, {"stride", A::Pair, P(1, 1)},
        {"padding", A::Pair, P(0, 0)}, {"output_padding", A::Pair, P(0, 0)}, {"groups", A::Size, I(1)},
        {"bias", A::Bool, B(true)}, {"dilation", A::Pair, P(1, 1)}},
       make_conv_t, fwd_conv},
      {"BatchNorm1d",
       {{"num_features", A::Size}, {"eps", A::Float, F(1e-5)}, {"momentum", A::Float, F(0.1)},
        {"affine", A::Bool, B(true)}},
       make_bn, fwd_bn},
      {"BatchNorm2d",
       {{"num_features", A::Size}, {"eps", A::Float, F(1e-5)}, {"momentum", A::Float, F(0.1)},
        {"affine", A::Bool, B(true)}},
       make_bn, fwd_bn},
      {"LayerNorm",
       {{"normalized_shape", A::Shape}, {"eps", A::Float, F(1e-5)}, {"elementwise_affine", A::Bool, B(true)},
        {"bias", A::Bool, B(true)}},
       make_ln, fwd_ln},
      {"Embedding", {{"num_embeddings", A::Size}, {"embedding_dim", A::Size}}, make_embedding, fwd_embedding},
      {"Dropout", {{"p", A::Prob, Val::none()}}, make_none, fwd_dropout},
      {"MaxPool2d",
       {{"kernel_size", A::Pair}, {"stride", A::OptPair, Val::none()}, {"padding", A::Pair, P(0, 0)},
        {"dilation", A::Pair, P(1, 1)}, {"ceil_mode", A::Bool, B(false)}},
       make_none, fwd_pool},
      {"AvgPool2d",
       {{"kernel_size", A::Pair}, {"stride", A::OptPair, Val::none()}, {"padding", A::Pair, P(0, 0)},
        {"ceil_mode", A::Bool, B(false)}, {"count_include_pad", A::Bool, B(true)}},
       make_none, fwd_pool},
      {"ReLU", {}, make_none, fwd_activation},
      {"GELU", {{"approximate", A::Str, S("none")}}, make_none, fwd_activation},
      {"Tanh", {}, make_none, fwd_activation},
      {"Sigmoid", {}, make_none, fwd_activation},
      {"LeakyReLU", {{"negative_slope", A::Float, F(0.01)}}, make_none, fwd_activation},
      {"Softmax", {{"dim", A::Int}}, make_none, fwd_activation},
      {"LogSoftmax", {{"dim", A::Int}}, make_none, fwd_activation},
      {"Flatten", {{"start_dim", A::Int, I(1)}, {"end_dim", A::Int, I(-1)}}, make_none, fwd_activation},
      {"Identity", {}, make_none, fwd_activation},
      {"SiLU", {}, make_none, fwd_activation},
      {"AdaptiveAvgPool2d", {{"output_size", A::Pair}}, make_none, fwd_activation},
  };
  add_recurrent_layers(t);
  add_attention_layers(t);
  return t;
}

}  // namespace

const std::vector<LayerKind>& layer_kinds() {
  static const std::vector<LayerKind> table = build();
  return table;
}

const LayerKind* find_layer_kind(const std::string& name) {
  for (const auto& k : layer_kinds())
    if (name == k.name) return &k;
  return nullptr;
}

}  // namespace stag::fe
