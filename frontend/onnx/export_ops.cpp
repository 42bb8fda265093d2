// The exporter's table: each stag op, the ONNX op (opset 17) it becomes, and a writer where the
// operands or attributes take another form (a shape attribute as a Constant input, symmetric
// padding as ONNX's begin/end pads).
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <tuple>

#include "frontend/onnx/export.h"
#include "frontend/onnx/export_ops.h"
#include "frontend/onnx/tensor.h"

namespace stag::onnx_export {

namespace {

Ints twice(const Ints& v) {
  Ints out = v;
  out.insert(out.end(), v.begin(), v.end());
  return out;
}

// ---- writers

// A 2-D product with transposes is Gemm (the importer's matmul with the same flags); a batched
// one swaps the last two axes of a transposed operand first.
void matmul(Emit& e) {
  const Node& n = e.node;
  Value *a = n.operands[0], *b = n.operands[1];
  if (a->type.rank() == 2 && b->type.rank() == 2) {
    auto& g = e.add("Gemm", {e.in[0], e.in[1]}, {e.out[0]});
    if (n.b("transpose_a")) set_attr(g, "transA", int64_t{1});
    if (n.b("transpose_b")) set_attr(g, "transB", int64_t{1});
    return;
  }
  std::vector<std::string> ins = e.in;
  for (size_t i = 0; i < 2; ++i) {
    if (!n.b(i == 0 ? "transpose_a" : "transpose_b")) continue;
    Ints perm;
    for (size_t d = 0; d < n.operands[i]->type.rank(); ++d) perm.push_back(static_cast<int64_t>(d));
    std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
    std::string t = e.temp(i == 0 ? "a_t" : "b_t");
    set_attr(e.add("Transpose", {ins[i]}, {t}), "perm", perm);
    ins[i] = t;
  }
  e.add("MatMul", ins, {e.out[0]});
}

void conv_window(onnx::NodeProto& c, const Node& n) {
  Value* w = n.operands[1];
  set_attr(c, "kernel_shape", Ints(w->type.dims.begin() + 2, w->type.dims.end()));
  set_attr(c, "strides", n.ints("stride"));
  set_attr(c, "pads", twice(n.ints("padding")));
  set_attr(c, "dilations", n.ints("dilation"));
  set_attr(c, "group", n.i("groups"));
}

void conv2d(Emit& e) { conv_window(e.add("Conv", e.in, e.out), e.node); }

void conv_transpose2d(Emit& e) {
  auto& c = e.add("ConvTranspose", e.in, e.out);
  conv_window(c, e.node);
  set_attr(c, "output_padding", e.node.ints("output_padding"));
}

// stag's empty stride means the kernel's, as PyTorch's.
template <bool Max>
void pool2d(Emit& e) {
  const Node& n = e.node;
  auto& p = e.add(Max ? "MaxPool" : "AveragePool", e.in, e.out);
  set_attr(p, "kernel_shape", n.ints("kernel"));
  set_attr(p, "strides", n.ints("stride").empty() ? n.ints("kernel") : n.ints("stride"));
  set_attr(p, "pads", twice(n.ints("padding")));
  set_attr(p, "ceil_mode", n.b("ceil_mode"));
  if (Max) set_attr(p, "dilations", n.ints("dilation"));
  else set_attr(p, "count_include_pad", n.b("count_include_pad"));
}

void batch_norm(Emit& e) { set_attr(e.add("BatchNormalization", e.in, {e.out[0]}), "epsilon", e.node.f("eps")); }

// ONNX wants the scale; a layer norm without one scales by ones (and shifts by zeros).
void layer_norm(Emit& e) {
  const Node& n = e.node;
  Value* x = n.operands[0];
  int64_t k = n.i("normalized_dims");
  std::vector<std::string> ins = e.in;
  if (ins.size() == 1) {
    Type norm{x->type.dtype, Dims(x->type.dims.end() - k, x->type.dims.end())};
    ins.push_back(e.constant(norm, {1.0}, "scale"));
    ins.push_back(e.constant(norm, {0.0}, "bias"));
  }
  auto& ln = e.add("LayerNormalization", ins, {e.out[0]});
  set_attr(ln, "axis", -k);
  set_attr(ln, "epsilon", n.f("eps"));
}

// Shapes are static: a reshape or flatten is a Reshape to the result's dims.
void reshape(Emit& e) { e.add("Reshape", {e.in[0], e.ints(e.node.result()->type.dims, "shape")}, e.out); }

void broadcast_to(Emit& e) { e.add("Expand", {e.in[0], e.ints(e.node.ints("shape"), "shape")}, e.out); }

void slice(Emit& e) {
  const Node& n = e.node;
  Ints steps = n.ints("steps");
  if (steps.empty()) steps.assign(n.ints("axes").size(), 1);
  e.add("Slice", {e.in[0], e.ints(n.ints("starts"), "starts"), e.ints(n.ints("ends"), "ends"), e.ints(n.ints("axes"), "axes"), e.ints(steps, "steps")}, e.out);
}

// stag's pads are (before, after) per axis; ONNX's every begin, then every end.
void pad(Emit& e) {
  const Node& n = e.node;
  const Ints& pairs = n.ints("pads");
  Ints pads(pairs.size());
  size_t r = pairs.size() / 2;
  for (size_t i = 0; i < r; ++i) pads[i] = pairs[2 * i], pads[r + i] = pairs[2 * i + 1];
  std::string value = e.constant({n.operands[0]->type.dtype, {}}, {n.f("value")}, "value");
  e.add("Pad", {e.in[0], e.ints(pads, "pads"), value}, e.out);
}

void split(Emit& e) { set_attr(e.add("Split", {e.in[0], e.ints(e.node.ints("sizes"), "sizes")}, e.out), "axis", e.node.i("axis")); }

// stag sums integers as i64 (ONNX keeps the type): the cast comes first. Opset 13 takes the
// axes as an input; none means every axis.
void sum(Emit& e) {
  const Node& n = e.node;
  std::string x = e.in[0];
  if (n.operands[0]->type.dtype != n.result()->type.dtype) {
    x = e.temp("wide");
    set_attr(e.add("Cast", {e.in[0]}, {x}), "to", n.result()->type.dtype);
  }
  std::vector<std::string> ins = {x};
  if (!n.ints("axes").empty()) ins.push_back(e.ints(n.ints("axes"), "axes"));
  set_attr(e.add("ReduceSum", ins, e.out), "keepdims", n.b("keepdims"));
}

void rsqrt(Emit& e) {
  std::string root = e.temp("sqrt");
  e.add("Sqrt", e.in, {root});
  e.add("Reciprocal", {root}, e.out);
}

void square(Emit& e) { e.add("Mul", {e.in[0], e.in[0]}, e.out); }

void gelu(Emit& e) {
  std::string name = e.node.s("approximate") == "tanh" ? "GeluTanh" : "Gelu";
  e.functions.insert(name);
  e.add(name, e.in, e.out, kStagDomain);
}

// ONNX 17 has no attention op: MatMul(q, k^T), Mul by the scale, Where a causal mask keeps
// the scores (-inf elsewhere), Softmax, MatMul with v.
void attention(Emit& e) {
  const Node& n = e.node;
  const Type& q = n.operands[0]->type;
  size_t r = q.rank();
  int64_t t = q.dims[r - 2], s = n.operands[1]->type.dims[r - 2];
  Ints perm;
  for (size_t d = 0; d < r; ++d) perm.push_back(static_cast<int64_t>(d));
  std::swap(perm[r - 1], perm[r - 2]);
  std::string kt = e.temp("k_t"), scores = e.temp("scores"), scaled = e.temp("scaled"), probs = e.temp("probs");
  set_attr(e.add("Transpose", {e.in[1]}, {kt}), "perm", perm);
  e.add("MatMul", {e.in[0], kt}, {scores});
  e.add("Mul", {scores, e.constant({q.dtype, {}}, {n.f("scale")}, "scale")}, {scaled});
  if (n.b("causal")) {
    std::vector<double> keep(static_cast<size_t>(t * s));
    for (int64_t i = 0; i < t * s; ++i) keep[i] = i % s <= i / s;
    std::string masked = e.temp("masked");
    e.add("Where", {e.constant({DType::b8, {t, s}}, keep, "causal"), scaled, e.constant({q.dtype, {}}, {-INFINITY}, "neg_inf")}, {masked});
    scaled = masked;
  }
  set_attr(e.add("Softmax", {scaled}, {probs}), "axis", int64_t{-1});
  e.add("MatMul", {probs, e.in[2]}, {e.out[0]});
}

void identity(Emit& e) { e.add("Identity", {e.in[0]}, e.out); }

void cast(Emit& e) { set_attr(e.add("Cast", e.in, e.out), "to", e.node.dtype("to")); }

void constant_node(Emit& e, const std::string& name, const Type& type, std::vector<double> data) {
  if (data.size() == 1) data.assign(static_cast<size_t>(*checked_numel(type.dims)), data[0]);
  auto* a = e.add("Constant", {}, {name}).add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  fill_tensor(*a->mutable_t(), type, data);
}

// Sources are tensors: iota's values are its coordinates along `axis`.
void iota(Emit& e) {
  const Type& t = e.node.result()->type;
  int64_t axis = e.node.i("axis") < 0 ? e.node.i("axis") + static_cast<int64_t>(t.rank()) : e.node.i("axis");
  int64_t inner = *checked_numel(Dims(t.dims.begin() + axis + 1, t.dims.end()));
  std::vector<double> data(static_cast<size_t>(*checked_numel(t.dims)));
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<double>((static_cast<int64_t>(i) / inner) % t.dims[static_cast<size_t>(axis)]);
  constant_node(e, e.out[0], t, data);
}

void constant(Emit& e) { constant_node(e, e.out[0], e.node.result()->type, e.node.floats("value")); }

// ---- refusals

const char* training_mode(const Node& n, const std::set<const Value*>&) {
  return n.b("training") ? "in training mode" : nullptr;
}

const char* batch_norm_refusal(const Node& n, const std::set<const Value*>& used) {
  if (n.b("training")) return "in training mode";
  return used.count(n.result(1)) || used.count(n.result(2)) ? "with its statistics read" : nullptr;
}

const char* bf16(const Node& n, const std::set<const Value*>&) { return n.in_bf16() ? "in bf16 precision" : nullptr; }

const char* attention_refusal(const Node& n, const std::set<const Value*>& used) {
  if (n.f("dropout") > 0) return "with dropout, in training mode";
  return used.count(n.result(1)) ? "with its logsumexp read" : bf16(n, used);
}

const std::vector<OpMapping>& table() {
  using A = std::vector<std::pair<std::string_view, std::string_view>>;
  static const std::vector<OpMapping> rows = {
      {Op::neg, "Neg"}, {Op::abs, "Abs"}, {Op::exp, "Exp"}, {Op::log, "Log"}, {Op::sqrt, "Sqrt"},
      {Op::rsqrt, "Reciprocal", rsqrt}, {Op::square, "Mul", square}, {Op::tanh, "Tanh"}, {Op::sigmoid, "Sigmoid"},
      {Op::relu, "Relu"}, {Op::leaky_relu, "LeakyRelu", nullptr, A{{"alpha", "alpha"}}},
      {Op::gelu, "ai.stag.Gelu", gelu}, {Op::erf, "Erf"}, {Op::sign, "Sign"}, {Op::cast, "Cast", cast},
      {Op::add, "Add"}, {Op::sub, "Sub"}, {Op::mul, "Mul"}, {Op::div, "Div"}, {Op::pow, "Pow"},
      {Op::maximum, "Max"}, {Op::minimum, "Min"}, {Op::gt, "Greater"}, {Op::ge, "GreaterOrEqual"},
      {Op::lt, "Less"}, {Op::le, "LessOrEqual"}, {Op::eq, "Equal"}, {Op::select, "Where"},
      {Op::sum, "ReduceSum", sum}, {Op::mean, "ReduceMean", nullptr, A{{"axes", "axes"}, {"keepdims", "keepdims"}}},
      {Op::max, "ReduceMax", nullptr, A{{"axes", "axes"}, {"keepdims", "keepdims"}}},
      {Op::argmax, "ArgMax", nullptr, A{{"axis", "axis"}, {"keepdims", "keepdims"}}},
      {Op::matmul, "MatMul", matmul, {}, bf16}, {Op::conv2d, "Conv", conv2d, {}, bf16},
      {Op::conv_transpose2d, "ConvTranspose", conv_transpose2d, {}, bf16},
      {Op::max_pool2d, "MaxPool", pool2d<true>}, {Op::avg_pool2d, "AveragePool", pool2d<false>},
      {Op::global_avg_pool, "GlobalAveragePool"}, {Op::batch_norm, "BatchNormalization", batch_norm, {}, batch_norm_refusal},
      {Op::layer_norm, "LayerNormalization", layer_norm}, {Op::dropout, "Identity", identity, {}, training_mode},
      {Op::softmax, "Softmax", nullptr, A{{"axis", "axis"}}}, {Op::log_softmax, "LogSoftmax", nullptr, A{{"axis", "axis"}}},
      {Op::attention, "MatMul", attention, {}, attention_refusal},
      {Op::embedding, "Gather"},
      {Op::reshape, "Reshape", reshape}, {Op::flatten, "Reshape", reshape}, {Op::transpose, "Transpose", nullptr, A{{"perm", "perm"}}},
      {Op::broadcast_to, "Expand", broadcast_to}, {Op::concat, "Concat", nullptr, A{{"axis", "axis"}}},
      {Op::slice, "Slice", slice}, {Op::pad, "Pad", pad}, {Op::split, "Split", split},
      {Op::iota, "Constant", iota}, {Op::constant, "Constant", constant},
  };
  return rows;
}

}  // namespace

void set_attr(onnx::NodeProto& n, std::string_view name, const Attr& a) {
  auto* p = n.add_attribute();
  p->set_name(std::string(name));
  switch (kind_of(a)) {
    case AttrKind::Int: p->set_type(onnx::AttributeProto::INT), p->set_i(std::get<int64_t>(a)); break;
    case AttrKind::Bool: p->set_type(onnx::AttributeProto::INT), p->set_i(std::get<bool>(a)); break;
    case AttrKind::Float: p->set_type(onnx::AttributeProto::FLOAT), p->set_f(static_cast<float>(std::get<double>(a))); break;
    case AttrKind::Str: p->set_type(onnx::AttributeProto::STRING), p->set_s(std::get<std::string>(a)); break;
    case AttrKind::DTypeK: p->set_type(onnx::AttributeProto::INT), p->set_i(onnx_import::to_elem_type(std::get<DType>(a))); break;
    case AttrKind::Ints:
      p->set_type(onnx::AttributeProto::INTS);
      for (int64_t v : std::get<Ints>(a)) p->add_ints(v);
      break;
    case AttrKind::Floats:
      p->set_type(onnx::AttributeProto::FLOATS);
      for (double v : std::get<Floats>(a)) p->add_floats(static_cast<float>(v));
      break;
  }
}

const OpMapping* find_mapping(Op op) {
  for (const OpMapping& m : table())
    if (m.op == op) return &m;
  return nullptr;
}

onnx::NodeProto& Emit::add(const std::string& op_type, const std::vector<std::string>& inputs, const std::vector<std::string>& outputs,
                           const std::string& domain) {
  onnx::NodeProto& n = *graph.add_node();
  n.set_op_type(op_type);
  n.set_name(outputs.empty() ? out.at(0) : outputs[0]);
  if (!domain.empty()) n.set_domain(domain);
  for (const auto& i : inputs) n.add_input(i);
  for (const auto& o : outputs) n.add_output(o);
  return n;
}

std::string Emit::constant(const Type& type, const std::vector<double>& data, std::string_view what) {
  std::string name = temp(what);
  constant_node(*this, name, type, data);
  return name;
}

std::string Emit::ints(const Ints& v, std::string_view what) {
  return constant({DType::i64, {static_cast<int64_t>(v.size())}}, std::vector<double>(v.begin(), v.end()), what);
}

namespace {

template <typename T>
std::string to_bytes(const std::vector<double>& data) {
  std::string raw(data.size() * sizeof(T), '\0');
  for (size_t i = 0; i < data.size(); ++i) {
    auto v = static_cast<T>(data[i]);
    std::memcpy(raw.data() + i * sizeof(T), &v, sizeof(T));
  }
  return raw;
}

}  // namespace

void fill_tensor(onnx::TensorProto& t, const Type& type, const std::vector<double>& data) {
  t.set_data_type(onnx_import::to_elem_type(type.dtype));
  for (int64_t d : type.dims) t.add_dims(d);
  switch (type.dtype) {
    case DType::f32: t.set_raw_data(to_bytes<float>(data)); break;
    case DType::f64: t.set_raw_data(to_bytes<double>(data)); break;
    case DType::i32: t.set_raw_data(to_bytes<int32_t>(data)); break;
    case DType::i64: t.set_raw_data(to_bytes<int64_t>(data)); break;
    case DType::b8: t.set_raw_data(to_bytes<uint8_t>(data)); break;
  }
}


namespace {

/// A function body as data: its constants (name, value), then its nodes (op, inputs, output).
struct FunctionBody {
  std::vector<std::pair<std::string, double>> constants;
  std::vector<std::tuple<std::string, std::vector<std::string>, std::string>> nodes;
};

// GELU's two forms as ir/reference.cpp computes them: exact 0.5 x (1 + erf(x / sqrt 2)) and
// tanh's 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).
const FunctionBody& body_of(const std::string& name) {
  static const FunctionBody exact = {
      {{"half", 0.5}, {"one", 1.0}, {"rsqrt2", M_SQRT1_2}},
      {{"Mul", {"X", "rsqrt2"}, "scaled"}, {"Erf", {"scaled"}, "erf"}, {"Add", {"erf", "one"}, "p"},
       {"Mul", {"X", "p"}, "xp"}, {"Mul", {"xp", "half"}, "Y"}}};
  static const FunctionBody tanh = {
      {{"half", 0.5}, {"one", 1.0}, {"k", std::sqrt(2 / M_PI)}, {"c", 0.044715}},
      {{"Mul", {"X", "X"}, "x2"}, {"Mul", {"x2", "X"}, "x3"}, {"Mul", {"x3", "c"}, "cx3"}, {"Add", {"X", "cx3"}, "inner"},
       {"Mul", {"inner", "k"}, "s"}, {"Tanh", {"s"}, "t"}, {"Add", {"t", "one"}, "p"}, {"Mul", {"X", "p"}, "xp"},
       {"Mul", {"xp", "half"}, "Y"}}};
  return name == "GeluTanh" ? tanh : exact;
}

void add_function_node(onnx::FunctionProto& f, const std::string& op, const std::vector<std::string>& ins, const std::string& out) {
  auto* n = f.add_node();
  n->set_op_type(op);
  for (const auto& i : ins) n->add_input(i);
  n->add_output(out);
}

}  // namespace

// Constants are f32 and CastLike'd to X's type, so the body serves f32 and f64 alike.
onnx::FunctionProto stag_function(const std::string& name) {
  onnx::FunctionProto f;
  f.set_name(name);
  f.set_domain(kStagDomain);
  f.set_doc_string(fmt::format("stag's {}: GELU{} (ONNX 1.12 has no Gelu op)", name, name == "GeluTanh" ? " with the tanh approximation" : ""));
  f.add_input("X");
  f.add_output("Y");
  auto* opset = f.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  const FunctionBody& body = body_of(name);
  for (const auto& [c, v] : body.constants) {
    auto* n = f.add_node();
    n->set_op_type("Constant");
    n->add_output(c + "_f32");
    auto* a = n->add_attribute();
    a->set_name("value_float");
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(static_cast<float>(v));
    add_function_node(f, "CastLike", {c + "_f32", "X"}, c);
  }
  for (const auto& [op, ins, out] : body.nodes) add_function_node(f, op, ins, out);
  return f;
}

}  // namespace stag::onnx_export
