// stag export: catalog models written as ONNX pass ONNX's checker and its shape inference (which
// must agree with stag's type of every value it infers), import back, and compute the outputs
// of the original within 1e-5 relative. Ops ONNX cannot express are listed in one error.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>

#include "compiler/jit/jit_model.h"
#include "frontend/load.h"
#include "frontend/onnx/export.h"
#include "frontend/onnx/onnx.h"
#include "frontend/onnx/proto.h"
#include "ir/analysis.h"
#include "ir/random.h"
#include "tests/util.h"

using namespace stag;
namespace fs = std::filesystem;

namespace {

const fs::path kModels = fs::path(STAG_TESTS_DIR) / "../models";

std::unique_ptr<Graph> load(const std::string& path, const std::string& text, const LoadOptions& options) {
  Diagnostics diags;
  auto g = load_model(path, text, options, diags);
  INFO(diags.render());
  REQUIRE(g);
  return g;
}

std::unique_ptr<Graph> load_file(const fs::path& path, const LoadOptions& options) {
  std::string error;
  auto text = read_source(path.string(), error);
  INFO(error);
  REQUIRE(text);
  return load(path.string(), *text, options);
}

// Standard normal floats; integers below the bound the graph gives them (embedding rows).
rt::Tensor input_for(const Graph& g, const rt::BufferSpec& spec, int64_t stream) {
  rt::Tensor t(spec.dtype, spec.shape);
  int64_t bound = index_bound(g, g.find(spec.name), 10);
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (spec.dtype == rt::DType::f32) t.values<float>()[i] = static_cast<float>(random_standard_normal(5, stream, i));
    else if (spec.dtype == rt::DType::i64) t.values<int64_t>()[i] = static_cast<int64_t>(random_uniform01(5, stream, i) * static_cast<double>(bound));
    else if (spec.dtype == rt::DType::i32) t.values<int32_t>()[i] = static_cast<int32_t>(random_uniform01(5, stream, i) * static_cast<double>(bound));
    else FAIL("an input of a type the test does not fill: " << spec.name);
  }
  return t;
}

using Tensors = std::map<std::string, rt::Tensor>;

Tensors run(rt::Model& m, const Tensors& inputs) {
  const auto& spec = m.manifest().function("forward");
  std::vector<const rt::Tensor*> ins;
  for (const auto& in : spec.inputs) ins.push_back(&inputs.at(in.name));
  auto outs = m.run("forward", ins);
  Tensors by_name;
  for (size_t i = 0; i < outs.size(); ++i) by_name.emplace(spec.outputs[i].name, std::move(outs[i]));
  return by_name;
}

onnx_export::Weights weights_of(rt::Model& m) {
  onnx_export::Weights w;
  for (const auto& p : m.manifest().params) {
    const rt::Tensor& t = m.param(p.name);
    w[p.name].assign(static_cast<const char*>(t.data()), static_cast<size_t>(t.nbytes()));
  }
  return w;
}

// ONNX's checker, then its shape inference in strict mode: every value it types must have the
// type stag gives the value of that name.
void check_with_onnx(const std::string& bytes, const Graph& g) {
  onnx::ModelProto model;
  REQUIRE(model.ParseFromString(bytes));
  onnx::checker::check_model(model);
  onnx::ShapeInferenceOptions strict{true, 1, false};
  onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(), strict);
  size_t compared = 0;
  for (const auto& vi : model.graph().value_info()) {
    const Value* v = g.find(vi.name());
    if (!v) continue;
    Dims dims;
    for (const auto& d : vi.type().tensor_type().shape().dim()) dims.push_back(d.dim_value());
    INFO(vi.name());
    CHECK(dims == v->type.dims);
    ++compared;
  }
  CHECK(compared > g.nodes.size() / 4);  // inference reached through the graph, functions included
}

void check_close(const std::string& what, const rt::Tensor& got, const rt::Tensor& want, size_t& identical) {
  REQUIRE(got.shape() == want.shape());
  auto a = test::to_doubles(got), b = test::to_doubles(want);
  size_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(fmt::format("{} element {}: exported {} original {}", what, i, a[i], b[i]));
    bool both_nan = std::isnan(a[i]) && std::isnan(b[i]);
    REQUIRE((both_nan || std::fabs(a[i] - b[i]) <= 1e-5 * std::fabs(b[i]) + 1e-7));
    same += a[i] == b[i] || both_nan;
  }
  identical += same;
}

// Exports the model, checks the file with ONNX, imports it and compares the outputs. Returns
// how many output elements are bit-identical, of how many.
std::pair<size_t, size_t> round_trip(const fs::path& path, LoadOptions options) {
  std::string name = path.stem().string();
  auto g = load_file(path, options);
  CompiledModel original = compile_jit(*g);
  original.model->init(7);
  std::string bytes = onnx_export::export_model(*g, weights_of(*original.model)).bytes;
  check_with_onnx(bytes, *g);

  fs::path file = fs::temp_directory_path() / fmt::format("stag_export_{}_{}.onnx", name, ::getpid());
  std::ofstream(file, std::ios::binary) << bytes;
  auto back = load(file.string(), bytes, {});
  fs::remove(file);
  CompiledModel exported = compile_jit(*back);
  for (const auto& [pname, t] : onnx_import::initializers(file.string())) {
    REQUIRE(t.type.dtype == DType::f32);
    auto dst = exported.model->param(pname).values<float>();
    for (size_t i = 0; i < t.data.size(); ++i) dst[i] = static_cast<float>(t.data[i]);
  }
  Tensors inputs;
  const auto& spec = original.model->manifest().function("forward");
  for (size_t i = 0; i < spec.inputs.size(); ++i) inputs.emplace(spec.inputs[i].name, input_for(*g, spec.inputs[i], static_cast<int64_t>(i)));
  Tensors want = run(*original.model, inputs), got = run(*exported.model, inputs);
  size_t identical = 0, total = 0;
  for (const auto& [out, t] : got) {
    check_close(name + " " + out, t, want.at(out), identical);
    total += static_cast<size_t>(t.numel());
  }
  CHECK(!got.empty());
  for (const auto& [out, t] : want)  // only the loss and the metrics are left out
    CHECK((got.count(out) || out == "loss" || out.starts_with("metric.")));
  return {identical, total};
}

// A catalog model at batch 2.
std::pair<size_t, size_t> round_trip_model(const std::string& model) {
  LoadOptions options;
  options.batch = 2;
  return round_trip(kModels / (model + ".stag"), options);
}

}  // namespace

// Products and elementwise ops map one to one: the outputs are stag's own, bit for bit.
TEST_CASE("export round trip: MLP") {
  auto [same, total] = round_trip_model("mlp");
  CHECK(same == total);
}

TEST_CASE("export round trip: LeNet-5") {
  auto [same, total] = round_trip_model("lenet5");
  CHECK(same == total);
}

// The importer reads BatchNormalization as elementwise math (an affine map per channel), so
// ResNet's outputs round differently, within 1e-5.
TEST_CASE("export round trip: ResNet") { round_trip_model("resnet"); }

// GELU goes through the ai.stag function and back to stag's gelu.
TEST_CASE("export round trip: GPT") {
  auto [same, total] = round_trip_model("gpt");
  CHECK(same == total);
}

// ConvTranspose and BatchNormalization: the first model of the file, the generator.
TEST_CASE("export round trip: DCGAN's generator") { round_trip_model("dcgan"); }

// The ops the catalog does not use: pools with padding, padded and sliced tensors, tanh GELU,
// reductions (an i32 sum widened to i64), iota, constants, casts, selects, splits.
TEST_CASE("export round trip: the rest of the op table") {
  auto [same, total] = round_trip(fs::path(STAG_TESTS_DIR) / "onnx/export_ops.ir", {});
  CHECK(same == total);
}

TEST_CASE("export: every op without an ONNX mapping is named with its nodes") {
  const char* text = R"(graph bad {
  %x: i64[4] = input()
  %h: f32[4,3] = one_hot(%x, num_classes=3)
  %h2: f32[4,3] = one_hot(%x, num_classes=3)
  %r: f32[4] = random_uniform()
  %d: f32[4] = dropout(%r, p=0.5, training=true)
  %n: f32[4] = neg(%d)
  output a = %h
  output b = %h2
  output c = %n
})";
  auto g = load("bad.ir", text, {});
  CHECK_THROWS_WITH(onnx_export::check_exportable(*g),
                    "graph bad cannot be exported to ONNX: no ONNX mapping for dropout in training mode (node %d); "
                    "one_hot (nodes %h, %h2); random_uniform (node %r)");
  LoadOptions scan;
  scan.batch = 2;
  CHECK_THROWS_WITH(onnx_export::check_exportable(*load_file(kModels / "lstm_lm.stag", scan)),
                    Catch::Contains("no ONNX mapping for scan (node %"));
}

// The importer reads stag's own domain by op, and names an op of it that it does not know with
// its domain, as any other domain's.
TEST_CASE("import: an unknown op of stag's domain is named with the domain") {
  LoadOptions options;
  options.batch = 2;
  auto g = load_file(kModels / "gpt.stag", options);
  CompiledModel c = compile_jit(*g);
  onnx::ModelProto model;
  REQUIRE(model.ParseFromString(onnx_export::export_model(*g, weights_of(*c.model)).bytes));
  int renamed = 0;
  for (auto& n : *model.mutable_graph()->mutable_node())
    if (n.domain() == onnx_import::kStagDomain) n.set_op_type("Gelu2"), ++renamed;
  REQUIRE(renamed == 4);
  Diagnostics diags;
  CHECK(!load_model("gpt.onnx", model.SerializeAsString(), {}, diags));
  CHECK_THAT(diags.render(), Catch::Contains("unsupported ONNX op (opset 17): ai.stag.Gelu2 (nodes '"));
}

TEST_CASE("export: a graph whose only outputs are loss and metrics has nothing to export") {
  const char* text = R"(graph lossy {
  %x: f32[4] = input()
  %s: f32[] = sum(%x)
  output loss = %s
})";
  CHECK_THROWS_WITH(onnx_export::check_exportable(*load("lossy.ir", text, {})),
                    "graph lossy has no output to export (loss and metrics are left out)");
}
