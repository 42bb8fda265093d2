// The importer on models built here with the protobuf classes: every kind of bad input ends in
// one clear diagnostic, and a small valid model imports with its initializers as parameters.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <iterator>
#include <fstream>

#include "compiler/jit/jit_model.h"
#include "frontend/onnx/onnx.h"
#include "frontend/onnx/proto.h"
#include "ir/reference.h"

using namespace stag;
namespace fs = std::filesystem;

namespace {

void add_value(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims,
               int32_t elem = onnx::TensorProto::FLOAT) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(elem);
  for (int64_t d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
}

onnx::NodeProto* add_node(onnx::GraphProto* g, const std::string& op, const std::vector<std::string>& in,
                          const std::vector<std::string>& out, const std::string& name = "") {
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (const auto& s : in) n->add_input(s);
  for (const auto& s : out) n->add_output(s);
  return n;
}

onnx::ModelProto base_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto* o = m.add_opset_import();
  o->set_domain("");
  o->set_version(13);
  m.mutable_graph()->set_name("g");
  return m;
}

struct Imported {
  std::unique_ptr<Graph> graph;
  std::string errors;
};

Imported import_model(const onnx::ModelProto& m, const onnx_import::Options& options = {}, const std::string& path = "t.onnx") {
  Diagnostics diags;
  auto g = onnx_import::import(path, m.SerializeAsString(), options, diags);
  return {std::move(g), diags.render()};
}

Imported import_bytes(const std::string& bytes) {
  Diagnostics diags;
  auto g = onnx_import::import("t.onnx", bytes, {}, diags);
  return {std::move(g), diags.render()};
}

// x [2, 3] -> Relu -> y
onnx::ModelProto relu_model() {
  auto m = base_model();
  auto* g = m.mutable_graph();
  add_value(g->add_input(), "x", {2, 3});
  add_node(g, "Relu", {"x"}, {"y"}, "relu");
  add_value(g->add_output(), "y", {2, 3});
  return m;
}

void set_floats(onnx::TensorProto* t, const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& v) {
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  for (float f : v) t->add_float_data(f);
}

}  // namespace

TEST_CASE("garbage and truncated protobuf are clear errors") {
  auto garbage = import_bytes(std::string("\xff\xff\xff\xff not a model", 17));
  CHECK(!garbage.graph);
  CHECK_THAT(garbage.errors, Catch::Contains("t.onnx: error: not an ONNX model"));
  std::string bytes = relu_model().SerializeAsString();
  for (size_t cut : {bytes.size() / 2, bytes.size() - 1}) {
    auto r = import_bytes(bytes.substr(0, cut));
    INFO(r.errors);
    CHECK(!r.graph);
    CHECK_THAT(r.errors, Catch::Contains("t.onnx: error:"));
  }
  CHECK_THAT(import_bytes("").errors, Catch::Contains("error"));
}

// x [1, 2] -> Gemm with broadcast=1 at opset 6 (the attribute opset 7 dropped) -> y [1, 3]
onnx::ModelProto opset6_gemm_model() {
  auto m = base_model();
  m.mutable_opset_import(0)->set_version(6);
  auto* g = m.mutable_graph();
  add_value(g->add_input(), "x", {1, 2});
  set_floats(g->add_initializer(), "w", {2, 3}, {1, 2, 3, 4, 5, 6});
  set_floats(g->add_initializer(), "b", {3}, {0.5f, 0, -1});
  auto* broadcast = add_node(g, "Gemm", {"x", "w", "b"}, {"y"}, "fc")->add_attribute();
  broadcast->set_name("broadcast");
  broadcast->set_type(onnx::AttributeProto::INT);
  broadcast->set_i(1);
  add_value(g->add_output(), "y", {1, 3});
  return m;
}

TEST_CASE("an opset 6 model goes through libonnx's version converter and runs") {
  auto r = import_model(opset6_gemm_model());
  INFO(r.errors);
  REQUIRE(r.graph);
  auto feeds = onnx_import::initializers("t.onnx");
  feeds["x"] = RefTensor({DType::f32, {1, 2}}, {1, -1});
  CHECK(interpret(*r.graph, feeds).outputs.at("y").data == std::vector<double>{-2.5, -3, -4});
}

// The converter's Gemm 6 -> 7 adapter reads its operands' sizes unchecked; the fuzzer's model
// (a Gemm whose operands have no shape) crashes it, in a child process that stag survives.
TEST_CASE("a model that crashes libonnx's version converter is an error") {
  std::ifstream in(fs::path(STAG_TESTS_DIR) / "fuzz/onnx/crash-b2a812db0924a6e7a40f508642a90feca06c3274", std::ios::binary);
  REQUIRE(in);
  auto r = import_bytes(std::string(std::istreambuf_iterator<char>(in), {}));
  CHECK(!r.graph);
  CHECK_THAT(r.errors, Catch::Contains("t.onnx: error: opset 5 cannot be converted to opset 7: libonnx's version converter failed on it (") && Catch::Contains("): the model is malformed"));
}

TEST_CASE("a valid model imports, runs and keeps the ONNX names") {
  auto m = base_model();
  auto* g = m.mutable_graph();
  add_value(g->add_input(), "x", {1, 2});
  set_floats(g->add_initializer(), "fc.weight", {3, 2}, {1, 2, 3, 4, 5, 6});
  set_floats(g->add_initializer(), "fc.bias", {3}, {-100, 0, 1});
  auto* gemm = add_node(g, "Gemm", {"x", "fc.weight", "fc.bias"}, {"h"}, "fc");
  auto* a = gemm->add_attribute();
  a->set_name("transB");
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(1);
  add_node(g, "Relu", {"h"}, {"y"});
  add_value(g->add_output(), "y", {1, 3});
  auto r = import_model(m);
  INFO(r.errors);
  REQUIRE(r.graph);
  REQUIRE(r.graph->find("fc.weight"));
  CHECK(r.graph->find("fc.weight")->def->op == Op::parameter);
  auto feeds = onnx_import::initializers("t.onnx");
  feeds["x"] = RefTensor({DType::f32, {1, 2}}, {1, -1});
  auto out = interpret(*r.graph, feeds).outputs.at("y");
  CHECK(out.data == std::vector<double>{0, 0, 0});  // x.W^T + b = [-1-100, -1+0, -1+1]
  feeds["x"] = RefTensor({DType::f32, {1, 2}}, {2, 1});
  CHECK(interpret(*r.graph, feeds).outputs.at("y").data == std::vector<double>{0, 10, 17});
}

// A language model's logits [B, T, V]: the classes are the last axis, one label a position.
TEST_CASE("cross_entropy --loss on scores of rank 3 takes the last axis as the classes") {
  auto m = base_model();
  auto* g = m.mutable_graph();
  add_value(g->add_input(), "x", {2, 3, 4});
  add_node(g, "Identity", {"x"}, {"scores"});
  add_value(g->add_output(), "scores", {2, 3, 4});
  onnx_import::Options options;
  options.loss = "cross_entropy:scores:next";
  auto r = import_model(m, options);
  INFO(r.errors);
  REQUIRE(r.graph);
  REQUIRE(r.graph->find("next"));
  CHECK(r.graph->find("next")->type == Type{DType::i64, {2, 3}});
  std::vector<double> x(24), labels = {0, 1, 2, 3, 2, 1};
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<double>(i));
  double want = 0;
  for (size_t row = 0; row < 6; ++row) {
    double sum = 0;
    for (size_t k = 0; k < 4; ++k) sum += std::exp(x[row * 4 + k]);
    want += (std::log(sum) - x[row * 4 + static_cast<size_t>(labels[row])]) / 6;
  }
  auto out = interpret(*r.graph, {{"x", RefTensor({DType::f32, {2, 3, 4}}, x)}, {"next", RefTensor({DType::i64, {2, 3}}, labels)}});
  CHECK(out.outputs.at("loss").data[0] == Approx(want).epsilon(1e-12));

  auto flat = relu_model();
  flat.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim()->RemoveLast();
  flat.mutable_graph()->mutable_output(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim()->RemoveLast();
  options.loss = "cross_entropy:y:label";
  auto bad = import_model(flat, options);
  CHECK_FALSE(bad.graph);
  CHECK_THAT(bad.errors, Catch::Contains("cross_entropy needs scores of rank 2 or more, got f32[2]"));
}

TEST_CASE("every unsupported op is listed in one error with its nodes and the opset") {
  auto m = relu_model();
  auto* g = m.mutable_graph();
  add_node(g, "FancyOp", {"x"}, {"a"}, "fancy1");
  add_node(g, "FancyOp", {"x"}, {"b"}, "fancy2");
  auto* ms = add_node(g, "Attention", {"x"}, {"c"}, "attn");
  ms->set_domain("com.microsoft");
  auto* o = m.add_opset_import();
  o->set_domain("com.microsoft");
  o->set_version(1);
  auto r = import_model(m);
  CHECK(!r.graph);
  // The checker knows neither op; either way one error names them.
  CHECK_THAT(r.errors, Catch::Contains("t.onnx: error:"));
  CHECK_THAT(r.errors, Catch::Contains("FancyOp"));
}

TEST_CASE("unsupported ops the checker accepts are listed together") {
  auto m = relu_model();
  auto* g = m.mutable_graph();
  add_node(g, "Round", {"x"}, {"a"}, "round1");
  add_node(g, "Round", {"x"}, {"b"}, "round2");
  add_node(g, "Floor", {"x"}, {"c"}, "floor");
  auto r = import_model(m);
  CHECK(!r.graph);
  CHECK_THAT(r.errors, Catch::Contains("unsupported ONNX ops (opset 13): Floor (node 'floor'); Round (nodes 'round1', 'round2')"));
  CHECK(std::count(r.errors.begin(), r.errors.end(), '\n') == 1);
}

TEST_CASE("a cycle is an error, not a hang") {
  auto m = base_model();
  auto* g = m.mutable_graph();
  add_value(g->add_input(), "x", {2});
  add_node(g, "Add", {"x", "b"}, {"a"}, "first");
  add_node(g, "Relu", {"a"}, {"b"}, "second");
  add_value(g->add_output(), "b", {2});
  auto r = import_model(m);
  CHECK(!r.graph);
  CHECK_THAT(r.errors, Catch::Contains("error"));
}

TEST_CASE("dimensions that overflow or are empty are errors") {
  auto m = relu_model();
  auto* dims = m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
  dims->mutable_dim(0)->set_dim_value(int64_t{1} << 40);
  dims->mutable_dim(1)->set_dim_value(int64_t{1} << 40);
  auto r = import_model(m);
  CHECK(!r.graph);
  CHECK_THAT(r.errors, Catch::Contains("input 'x'"));
  dims->mutable_dim(0)->set_dim_value(0);
  CHECK_THAT(import_model(m).errors, Catch::Contains("size 0"));
}

TEST_CASE("symbolic dimensions are bound by --dim or --batch") {
  auto m = relu_model();
  auto* d = m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0);
  d->set_dim_param("N");
  m.mutable_graph()->mutable_output(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0)->set_dim_param("N");
  CHECK_THAT(import_model(m).errors, Catch::Contains("--dim N=N"));
  onnx_import::Options o;
  o.dims["N"] = 5;
  auto r = import_model(m, o);
  REQUIRE(r.graph);
  CHECK(r.graph->find("x")->type.dims == Dims{5, 3});
  onnx_import::Options b;
  b.batch = 7;
  CHECK(import_model(m, b).graph->find("x")->type.dims == Dims{7, 3});
}

void set_ints(onnx::TensorProto* t, const std::string& name, const std::vector<int64_t>& v) {
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(static_cast<int64_t>(v.size()));
  for (int64_t i : v) t->add_int64_data(i);
}

// x [2, 3, 4] -> Reshape(x, Concat(Shape(x)[0:0], [-1])), as PyTorch exports x.flatten();
// `reader` then reads the empty slice alone.
onnx::ModelProto flatten_model(const std::string& reader) {
  auto m = base_model();
  auto* g = m.mutable_graph();
  add_value(g->add_input(), "x", {2, 3, 4});
  set_ints(g->add_initializer(), "zero", {0});
  set_ints(g->add_initializer(), "minus_one", {-1});
  add_node(g, "Shape", {"x"}, {"shape"});
  add_node(g, "Slice", {"shape", "zero", "zero"}, {"none"}, "leading");
  auto* axis = add_node(g, "Concat", {"none", "minus_one"}, {"flat_shape"})->add_attribute();
  axis->set_name("axis");
  axis->set_type(onnx::AttributeProto::INT);
  axis->set_i(0);
  add_node(g, "Reshape", {"x", reader == "Reshape" ? "flat_shape" : "none"}, {"y"}, "flatten");
  add_value(g->add_output(), "y", {24});
  return m;
}

TEST_CASE("an empty slice of a shape is left out of the Concat that reads it and an error anywhere else") {
  auto r = import_model(flatten_model("Reshape"));
  INFO(r.errors);
  REQUIRE(r.graph);
  std::vector<double> x(24);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>(i);
  auto out = interpret(*r.graph, {{"x", RefTensor({DType::f32, {2, 3, 4}}, x)}}).outputs.at("y");
  CHECK(out.type == Type{DType::f32, {24}});
  CHECK(out.data == x);
  auto bad = import_model(flatten_model("alone"));
  CHECK_FALSE(bad.graph);
  CHECK_THAT(bad.errors, Catch::Contains("node 'flatten' (Reshape, opset 13): input 'none' is an empty tensor; stag's tensors are never empty"));
}

TEST_CASE("external data never leaves the model's directory") {
  fs::path dir = fs::temp_directory_path() / fmt::format("stag_onnx_ext_{}", ::getpid());
  fs::create_directories(dir / "model");
  std::ofstream(dir / "secret.bin", std::ios::binary) << std::string(24, '\x01');
  std::ofstream(dir / "model" / "w.bin", std::ios::binary) << std::string(24, '\0');
  for (const auto& [location, want] : std::vector<std::pair<std::string, std::string>>{
           {"../secret.bin", "leaves the model's directory"}, {(dir / "secret.bin").string(), "must be a relative path"},
           {"w.bin", ""}}) {
    auto m = relu_model();
    auto* t = m.mutable_graph()->add_initializer();
    t->set_name("w");
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_dims(2), t->add_dims(3);
    t->set_data_location(onnx::TensorProto::EXTERNAL);
    auto* kv = t->add_external_data();
    kv->set_key("location");
    kv->set_value(location);
    add_node(m.mutable_graph(), "Add", {"y", "w"}, {"z"});
    add_value(m.mutable_graph()->add_output(), "z", {2, 3});
    std::ofstream(dir / "model" / "m.onnx", std::ios::binary) << m.SerializeAsString();
    Diagnostics diags;
    auto g = onnx_import::import((dir / "model" / "m.onnx").string(), m.SerializeAsString(), {}, diags);
    INFO(location << ": " << diags.render());
    if (want.empty()) {
      CHECK(g);
    } else {
      CHECK(!g);
      CHECK_THAT(diags.render(), Catch::Contains(want));
    }
  }
  fs::remove_all(dir);
}

TEST_CASE("a shape computed at run time, an unsupported element type, a wrong declared output") {
  auto m = base_model();
  auto* g = m.mutable_graph();
  add_value(g->add_input(), "x", {2, 3});
  add_value(g->add_input(), "shape", {2}, onnx::TensorProto::INT64);
  add_node(g, "Reshape", {"x", "shape"}, {"y"}, "reshape");
  add_value(g->add_output(), "y", {3, 2});
  std::vector<std::string> wanted;
  onnx_import::Options o;
  o.wanted_constants = &wanted;
  auto r = import_model(m, o);
  CHECK_THAT(r.errors, Catch::Contains("node 'reshape' (Reshape, opset 13): the shape must be known at compile time"));
  CHECK(wanted == std::vector<std::string>{"shape"});
  o.constant_inputs["shape"] = RefTensor({DType::i64, {2}}, {3, 2});
  CHECK(import_model(m, o).graph);
  o.constant_inputs["shape"] = RefTensor({DType::i64, {2}}, {1, 6});
  CHECK_THAT(import_model(m, o).errors, Catch::Contains("output 'y' is declared [3,2] but computes f32[1,6]"));

  auto u = relu_model();
  u.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::UINT8);
  u.mutable_graph()->mutable_output(0)->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::UINT8);
  CHECK_THAT(import_model(u).errors, Catch::Contains("element type UINT8 is not supported"));
}

namespace {

// X [2, 1, 3] -> LSTM (hidden 2) -> Y [2, 1, 1, 2]; `edit` adds what a case is about.
Imported import_lstm(const std::function<void(onnx::GraphProto*, onnx::NodeProto*)>& edit) {
  auto m = base_model();
  auto* g = m.mutable_graph();
  add_value(g->add_input(), "x", {2, 1, 3});
  set_floats(g->add_initializer(), "w", {1, 8, 3}, std::vector<float>(24, 0.1f));
  set_floats(g->add_initializer(), "r", {1, 8, 2}, std::vector<float>(16, -0.2f));
  auto* n = add_node(g, "LSTM", {"x", "w", "r"}, {"y"}, "lstm1");
  auto* a = n->add_attribute();
  a->set_name("hidden_size");
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(2);
  edit(g, n);
  add_value(g->add_output(), "y", {2, 1, 1, 2});
  return import_model(m);
}

onnx::AttributeProto* attribute(onnx::NodeProto* n, const std::string& name, onnx::AttributeProto::AttributeType type) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(type);
  return a;
}

// sequence_lens [1] as an initializer: known at import time.
void lengths(onnx::GraphProto* g, onnx::NodeProto* n, int32_t len) {
  auto* t = g->add_initializer();
  t->set_name("lens");
  t->set_data_type(onnx::TensorProto::INT32);
  t->add_dims(1);
  t->add_int32_data(len);
  n->add_input("");
  n->add_input("lens");
}

}  // namespace

TEST_CASE("recurrent nodes: what stag cannot honour is an error naming the node and the reason") {
  using A = onnx::AttributeProto;
  auto ok = import_lstm([](onnx::GraphProto* g, onnx::NodeProto* n) { lengths(g, n, 2); });
  INFO(ok.errors);
  CHECK(ok.graph);
  struct Case {
    const char* what;
    std::function<void(onnx::GraphProto*, onnx::NodeProto*)> edit;
    const char* error;
  };
  std::vector<Case> cases = {
      {"clip", [](auto*, auto* n) { attribute(n, "clip", A::FLOAT)->set_f(3); }, "the clip attribute is not supported"},
      {"activations",
       [](auto*, auto* n) {
         auto* a = attribute(n, "activations", A::STRINGS);
         for (const char* s : {"Relu", "Tanh", "Tanh"}) a->add_strings(s);
       },
       "activations [Relu, Tanh, Tanh] are not supported (only the defaults [sigmoid, tanh, tanh])"},
      {"input_forget", [](auto*, auto* n) { attribute(n, "input_forget", A::INT)->set_i(1); }, "input_forget=1 is not supported"},
      {"peepholes",
       [](onnx::GraphProto* g, onnx::NodeProto* n) {
         set_floats(g->add_initializer(), "p", {1, 6}, std::vector<float>(6, 0.5f));
         for (const char* s : {"", "", "", "", "p"}) n->add_input(s);
       },
       "peephole weights (input P) are not supported"},
      {"direction", [](auto*, auto* n) { attribute(n, "direction", A::STRING)->set_s("sideways"); }, "unknown direction 'sideways'"},
  };
  for (const Case& c : cases) {
    auto r = import_lstm(c.edit);
    INFO(c.what << ": " << r.errors);
    CHECK(!r.graph);
    CHECK_THAT(r.errors, Catch::Contains("'lstm1'") && Catch::Contains("(LSTM, opset 13)") && Catch::Contains(c.error));
  }
}

namespace {

std::vector<float> wave(size_t n, double phase) {
  std::vector<float> v;
  for (size_t i = 0; i < n; ++i) v.push_back(static_cast<float>(0.6 * std::sin(1.7 * static_cast<double>(i) + phase)));
  return v;
}

// X [seq, batch, 2] -> bidirectional OP (LSTM or GRU, hidden 3) -> Y, Y_h; with sequence_lens
// when `lens` is not empty. The weights are the same for every seq and batch.
onnx::ModelProto bidirectional(const std::string& op, int64_t seq, int64_t batch, const std::vector<int32_t>& lens) {
  auto m = base_model();
  auto* g = m.mutable_graph();
  int64_t gates = (op == "LSTM" ? 4 : 3) * 3;
  add_value(g->add_input(), "x", {seq, batch, 2});
  set_floats(g->add_initializer(), "w", {2, gates, 2}, wave(static_cast<size_t>(4 * gates), 0.3));
  set_floats(g->add_initializer(), "r", {2, gates, 3}, wave(static_cast<size_t>(6 * gates), 1.1));
  set_floats(g->add_initializer(), "b", {2, 2 * gates}, wave(static_cast<size_t>(4 * gates), 2.3));
  std::vector<std::string> in{"x", "w", "r", "b"};
  if (!lens.empty()) {
    auto* t = g->add_initializer();
    t->set_name("lens");
    t->set_data_type(onnx::TensorProto::INT32);
    t->add_dims(batch);
    for (int32_t l : lens) t->add_int32_data(l);
    in.push_back("lens");
  }
  auto* n = add_node(g, op, in, {"y", "y_h"}, "rnn");
  attribute(n, "hidden_size", onnx::AttributeProto::INT)->set_i(3);
  attribute(n, "direction", onnx::AttributeProto::STRING)->set_s("bidirectional");
  add_value(g->add_output(), "y", {seq, 2, batch, 3});
  add_value(g->add_output(), "y_h", {2, batch, 3});
  return m;
}

std::vector<float> f32s(const std::vector<double>& v) { return {v.begin(), v.end()}; }

// The graph compiled, from the initializers' values; each output against the reference's.
void check_compiled(const Graph& g, const std::map<std::string, RefTensor>& feeds, const std::map<std::string, RefTensor>& want) {
  CompiledModel c = compile_jit(g);
  rt::Model& m = *c.model;
  for (const auto& p : m.manifest().params) {
    auto v = f32s(feeds.at(p.name).data);
    std::copy(v.begin(), v.end(), m.param(p.name).values<float>().begin());
  }
  const RefTensor& x = feeds.at("x");
  rt::Tensor xt(rt::DType::f32, rt::Shape(x.type.dims.begin(), x.type.dims.end()));
  auto xv = f32s(x.data);
  std::copy(xv.begin(), xv.end(), xt.values<float>().begin());
  auto outs = m.run("forward", {&xt});
  const auto& spec = m.manifest().function("forward");
  for (size_t i = 0; i < outs.size(); ++i) {
    auto got = outs[i].values<float>();
    const auto& ref = want.at(spec.outputs[i].name).data;
    REQUIRE(got.size() == ref.size());
    for (size_t k = 0; k < ref.size(); ++k) CHECK(got[k] == Approx(ref[k]).margin(1e-5));
  }
}

std::map<std::string, RefTensor> run_reference(const onnx::ModelProto& m, const RefTensor& x, const std::string& path, bool compiled = false) {
  auto r = import_model(m, {}, path);
  INFO(r.errors);
  REQUIRE(r.graph);
  auto feeds = onnx_import::initializers(path);
  feeds["x"] = x;
  auto outputs = interpret(*r.graph, feeds).outputs;
  if (compiled) check_compiled(*r.graph, feeds, outputs);
  return outputs;
}


}  // namespace

// The oracle of sequence_lens: each sequence alone, cut to its length, without sequence_lens.
TEST_CASE("recurrent nodes with sequence_lens: each sequence as if alone and cut to its length (Y is 0 past it), compiled as the reference") {
  const int64_t seq = 4, batch = 3;
  const std::vector<int32_t> lens{4, 1, 2};
  RefTensor x({DType::f32, {seq, batch, 2}}, {});
  for (double v : wave(static_cast<size_t>(seq * batch * 2), 0.7)) x.data.push_back(v);
  for (const char* op : {"LSTM", "GRU"}) {
    INFO(op);
    auto got = run_reference(bidirectional(op, seq, batch, lens), x, fmt::format("lens_{}.onnx", op), true);
    for (int64_t b = 0; b < batch; ++b) {
      int64_t len = lens[static_cast<size_t>(b)];
      RefTensor xb({DType::f32, {len, 1, 2}}, {});
      for (int64_t t = 0; t < len; ++t)
        for (int64_t f = 0; f < 2; ++f) xb.data.push_back(x.at({t, b, f}));
      auto want = run_reference(bidirectional(op, len, 1, {}), xb, fmt::format("alone_{}_{}.onnx", op, b));
      for (int64_t d = 0; d < 2; ++d)
        for (int64_t h = 0; h < 3; ++h) {
          CHECK(got.at("y_h").at({d, b, h}) == Approx(want.at("y_h").at({d, 0, h})).margin(1e-12));
          for (int64_t t = 0; t < seq; ++t)
            CHECK(got.at("y").at({t, d, b, h}) == Approx(t < len ? want.at("y").at({t, d, 0, h}) : 0.0).margin(1e-12));
        }
    }
  }
}

namespace {

// Loop(M=4, cond=true, acc=x) whose body adds x and the iteration number: acc_i = acc_{i-1} + x
// + i; outputs the last acc and every step's. `cond_op` computes the body's condition.
onnx::ModelProto loop_model(const std::string& cond_op) {
  auto m = base_model();
  auto* g = m.mutable_graph();
  add_value(g->add_input(), "x", {3});
  auto* trips = g->add_initializer();
  trips->set_name("M"), trips->set_data_type(onnx::TensorProto::INT64), trips->add_int64_data(4);
  auto* cond = g->add_initializer();
  cond->set_name("cond"), cond->set_data_type(onnx::TensorProto::BOOL), cond->add_int32_data(1);
  auto* loop = add_node(g, "Loop", {"M", "cond", "x"}, {"acc_final", "accs"}, "loop");
  auto* a = loop->add_attribute();
  a->set_name("body"), a->set_type(onnx::AttributeProto::GRAPH);
  auto* body = a->mutable_g();
  body->set_name("body");
  add_value(body->add_input(), "i", {}, onnx::TensorProto::INT64);
  add_value(body->add_input(), "cond_in", {}, onnx::TensorProto::BOOL);
  add_value(body->add_input(), "acc", {3});
  if (cond_op == "Identity") add_node(body, "Identity", {"cond_in"}, {"cond_out"});
  else add_node(body, cond_op, {"i", "M"}, {"cond_out"});  // true in every step, but known only at run time
  auto* cast = add_node(body, "Cast", {"i"}, {"i_f"});
  auto* to = cast->add_attribute();
  to->set_name("to"), to->set_type(onnx::AttributeProto::INT), to->set_i(onnx::TensorProto::FLOAT);
  add_node(body, "Add", {"acc", "x"}, {"acc_x"});
  add_node(body, "Add", {"acc_x", "i_f"}, {"acc_out"});
  add_node(body, "Identity", {"acc_out"}, {"acc_step"});
  add_value(body->add_output(), "cond_out", {}, onnx::TensorProto::BOOL);
  add_value(body->add_output(), "acc_out", {3});
  add_value(body->add_output(), "acc_step", {3});
  add_value(g->add_output(), "acc_final", {3});
  add_value(g->add_output(), "accs", {4, 3});
  return m;
}

}  // namespace

TEST_CASE("Loop with a static trip count is one scan whose invariants are the outer values its body reads") {
  RefTensor x({DType::f32, {3}}, {1, -2, 0.5});
  auto r = import_model(loop_model("Identity"));
  INFO(r.errors);
  REQUIRE(r.graph);
  size_t scans = 0;
  for (const auto& n : r.graph->nodes) scans += n->op == Op::scan;
  CHECK(scans == 1);
  auto out = run_reference(loop_model("Identity"), x, "loop.onnx", true);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t k = 0; k < 3; ++k)  // acc_i = x + (i + 1) x + (0 + 1 + ... + i)
      CHECK(out.at("accs").data[static_cast<size_t>(i * 3 + k)] == Approx((i + 2) * x.data[static_cast<size_t>(k)] + i * (i + 1) / 2.0));
  CHECK(out.at("acc_final").data[1] == Approx(5 * -2.0 + 6));
}

TEST_CASE("Loop whose body may turn its condition false is a clear error") {
  auto r = import_model(loop_model("Less"));
  INFO(r.errors);
  CHECK_FALSE(r.graph);
  CHECK(r.errors.find("node 'loop' (Loop, opset 13)") != std::string::npos);
  CHECK(r.errors.find("the body's condition must stay true") != std::string::npos);
}
