// PyTorch parity: models exported by torch.onnx.export (pytorch/make_fixtures.py) import, and
// their compiled outputs, cross-entropy loss and gradients match PyTorch's for the same input.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>

#include "compiler/autodiff/autodiff.h"
#include "compiler/jit/jit_model.h"
#include "frontend/load.h"
#include "frontend/onnx/onnx.h"
#include "frontend/onnx/proto.h"
#include "runtime/safetensors.h"
#include "tests/util.h"

using namespace stag;
namespace fs = std::filesystem;

namespace {

const fs::path kDir = fs::path(STAG_TESTS_DIR) / "onnx/pytorch";

// f32 sums of products, each side in its own order: within 1e-4 relative, 1e-5 absolute.
void check_close(const std::string& what, const rt::Tensor& got, const rt::Tensor& want) {
  REQUIRE(got.shape() == want.shape());
  auto g = test::to_doubles(got), w = test::to_doubles(want);
  double scale = 0;
  for (double v : w) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < g.size(); ++i) {
    INFO(fmt::format("{} element {}: stag {} PyTorch {}", what, i, g[i], w[i]));
    REQUIRE(std::fabs(g[i] - w[i]) <= 1e-4 * std::fabs(w[i]) + 1e-5 * std::max(scale, 1.0));
  }
}

std::unique_ptr<Graph> import_fixture(const std::string& name) {
  std::string path = (kDir / (name + ".onnx")).string(), error;
  auto bytes = read_source(path, error);
  REQUIRE(bytes);
  Diagnostics diags;
  LoadOptions options;
  options.loss = "cross_entropy:logits:y";
  auto g = load_model(path, *bytes, options, diags);
  INFO(diags.render());
  REQUIRE(g);
  return g;
}

// Runs the differentiated graph compiled; returns its outputs by name.
std::map<std::string, rt::Tensor> run_grads(const Graph& g, std::map<std::string, rt::Tensor>& expected) {
  Diagnostics diags;
  auto grads = differentiate(g, "loss", diags);
  INFO(diags.render());
  REQUIRE(grads);
  CompiledModel c = compile_jit(*grads);
  rt::Model& m = *c.model;
  auto init = onnx_import::initializers(g.attr(onnx_import::kSourceAttr) ? std::get<std::string>(*g.attr(onnx_import::kSourceAttr)) : "");
  for (const auto& p : m.manifest().params) {
    const RefTensor& t = init.at(p.name);
    auto dst = m.param(p.name).values<float>();
    for (size_t i = 0; i < t.data.size(); ++i) dst[i] = static_cast<float>(t.data[i]);
  }
  std::vector<const rt::Tensor*> inputs;
  const auto& spec = m.manifest().function("forward");
  for (const auto& in : spec.inputs) inputs.push_back(&expected.at(in.name));
  auto outs = m.run("forward", inputs);
  std::map<std::string, rt::Tensor> by_name;
  for (size_t i = 0; i < outs.size(); ++i) by_name.emplace(spec.outputs[i].name, std::move(outs[i]));
  return by_name;
}

struct Run {
  std::map<std::string, rt::Tensor> got, expected;
};

Run check_fixture(const std::string& name, size_t min_grads, bool grads = true) {
  auto g = import_fixture(name);
  auto expected = rt::read_safetensors(kDir / (name + ".expected.safetensors")).tensors;
  auto got = run_grads(*g, expected);
  check_close(name + " logits", got.at("logits"), expected.at("logits"));
  check_close(name + " loss", got.at("loss"), expected.at("loss"));
  size_t compared = 0;
  if (!grads) return {std::move(got), std::move(expected)};
  for (const auto& [key, t] : got) {
    if (!key.starts_with("grad.") || !expected.count(key)) continue;
    check_close(name + " " + key, t, expected.at(key));
    ++compared;
  }
  // PyTorch names most initializers after their parameters; the few it renames (a weight it
  // transposed for MatMul) are compared through the outputs only.
  CHECK(compared >= min_grads);
  return {std::move(got), std::move(expected)};
}

// The exporter stores the recurrent weights reordered (ONNX's gate order) under names of its own;
// the fixture holds their expected gradients as onnx.W.LAYER, onnx.R.LAYER and onnx.B.LAYER, one
// layer per recurrent node in the graph's order. Returns how many were compared.
size_t check_recurrent_grads(const std::string& name, const Run& run) {
  std::string error;
  auto bytes = read_source((kDir / (name + ".onnx")).string(), error);
  onnx::ModelProto model;
  REQUIRE((bytes && model.ParseFromString(*bytes)));
  size_t compared = 0, layer = 0;
  for (const auto& n : model.graph().node()) {
    if (n.op_type() != "LSTM" && n.op_type() != "GRU") continue;
    for (auto [input, what] : {std::pair{1, "W"}, {2, "R"}, {3, "B"}}) {
      std::string key = fmt::format("onnx.{}.{}", what, layer);
      check_close(fmt::format("{} grad of {} ({})", name, key, n.input(input)), run.got.at("grad." + onnx_import::ir_name(n.input(input))), run.expected.at(key));
      ++compared;
    }
    ++layer;
  }
  return compared;
}

}  // namespace

TEST_CASE("PyTorch-exported MLP: outputs and gradients") { check_fixture("mlp", 4); }
TEST_CASE("PyTorch-exported LeNet-5: outputs and gradients") { check_fixture("lenet5", 10); }
// Each norm layer has its own affine values (make_fixtures.py: the exporter merges equal constants
// into one initializer, whose gradient would be the sum of the layers').
TEST_CASE("PyTorch-exported ResNet basic block with BatchNorm: outputs and gradients") { check_fixture("resblock", 9); }
TEST_CASE("PyTorch-exported GPT block (opset 17 LayerNormalization): outputs and gradients") { check_fixture("gpt_block", 10); }

// Two layers, both directions: Y, Y_h and Y_c all feed the classifier.
TEST_CASE("PyTorch-exported bidirectional two-layer LSTM: outputs and gradients") {
  Run run = check_fixture("lstm", 2);
  CHECK(check_recurrent_grads("lstm", run) == 6);
}
// PyTorch's GRU is ONNX's linear_before_reset=1; its learned initial state is initial_h.
TEST_CASE("PyTorch-exported GRU from a learned initial state: outputs and gradients") {
  Run run = check_fixture("gru", 3);
  CHECK(run.got.count("grad.h0"));
  CHECK(check_recurrent_grads("gru", run) == 3);
}

TEST_CASE("BatchNorm's running statistics are imported frozen") {
  auto g = import_fixture("resblock");
  for (const auto& n : g->nodes)
    if (n->op == Op::parameter && n->result()->name.find("running") != std::string::npos) CHECK(!n->b("trainable"));
}
