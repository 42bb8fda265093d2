// Catalog models compiled to native code give PyTorch's outputs for the same weights and
// inputs (pytorch/gen_forward_parity.py: both sides compute them from one formula), loaded
// the way users load them: weights from a safetensors file, inputs from .npy files.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>

#include "compiler/jit/jit_model.h"
#include "frontend/load.h"
#include "ir/analysis.h"
#include "runtime/npy.h"
#include "runtime/safetensors.h"

using namespace stag;
namespace fs = std::filesystem;

namespace {

const fs::path kDir = fs::path(STAG_TESTS_DIR) / "compiler/pytorch";

std::unique_ptr<Graph> load_catalog(const std::string& name, int64_t batch) {
  std::string path = fmt::format("{}/../models/{}.stag", STAG_TESTS_DIR, name), error;
  auto text = read_source(path, error);
  REQUIRE(text);
  Diagnostics diags;
  LoadOptions options;
  options.batch = batch;
  auto g = load_model(path, *text, options, diags);
  INFO(diags.render());
  REQUIRE(g);
  return g;
}

// The formula of gen_forward_parity.py, in the same float64-then-float32 steps.
rt::Tensor formula_param(const rt::BufferSpec& spec, int k) {
  rt::Tensor t(spec.dtype, spec.shape);
  double a = 0.1, d = 0;
  if (spec.shape.size() == 1) d = spec.name.ends_with(".weight") ? 1.0 : 0.0;
  else a = 1 / std::sqrt(static_cast<double>(t.numel() / spec.shape[0]));
  auto v = t.values<float>();
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = static_cast<float>(a * std::sin(0.7 * static_cast<double>(i) + 1.3 * k) + d);
  return t;
}

rt::Tensor formula_input(const Graph& g, const rt::BufferSpec& spec) {
  rt::Tensor t(spec.dtype, spec.shape);
  if (spec.dtype == rt::DType::f32) {
    auto v = t.values<float>();
    for (int64_t i = 0; i < t.numel(); ++i) v[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
  } else {
    int64_t bound = index_bound(g, g.find(spec.name), 10);
    auto v = t.values<int64_t>();
    for (int64_t i = 0; i < t.numel(); ++i) v[i] = (7 * i + 3) % bound;
  }
  return t;
}

void check_against_pytorch(const std::string& name, int64_t batch) {
  auto g = load_catalog(name, batch);
  CompiledModel c = compile_jit(*g);
  rt::Model& model = *c.model;
  fs::path tmp = fs::temp_directory_path() / fmt::format("stag_parity_{}_{}", name, ::getpid());
  fs::create_directories(tmp);
  // Weights through a safetensors file, inputs through .npy files.
  std::map<std::string, rt::Tensor> weights;
  const auto& params = model.manifest().params;
  for (size_t k = 0; k < params.size(); ++k) weights.emplace(params[k].name, formula_param(params[k], static_cast<int>(k)));
  rt::write_safetensors(tmp / "weights.safetensors", weights);
  auto file = rt::read_safetensors(tmp / "weights.safetensors");
  model.load_params(file.tensors, "weights.safetensors");
  std::vector<rt::Tensor> inputs;
  for (const auto& spec : model.manifest().function("forward").inputs) {
    rt::write_npy(tmp / (spec.name + ".npy"), formula_input(*g, spec));
    inputs.push_back(rt::read_npy(tmp / (spec.name + ".npy")));
  }
  std::vector<const rt::Tensor*> ptrs;
  for (const auto& t : inputs) ptrs.push_back(&t);
  auto outputs = model.run("forward", ptrs);
  fs::remove_all(tmp);
  const auto& specs = model.manifest().function("forward").outputs;
  for (size_t o = 0; o < outputs.size(); ++o) {
    if (specs[o].name != "logits" && specs[o].name != "loss") continue;
    rt::Tensor want = rt::read_npy(kDir / fmt::format("{}.{}.npy", name, specs[o].name));
    REQUIRE(want.shape() == outputs[o].shape());
    auto got = outputs[o].values<float>();
    auto ref = want.values<float>();
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      double err = std::fabs(got[i] - ref[i]) / (1e-3 + std::fabs(ref[i]));
      worst = std::max(worst, err);
      INFO(fmt::format("{} {}[{}]: stag {} PyTorch {}", name, specs[o].name, i, got[i], ref[i]));
      REQUIRE(std::fabs(got[i] - ref[i]) <= 1e-5 + 1e-4 * std::fabs(ref[i]));
    }
    WARN(fmt::format("{} {}: largest relative difference from PyTorch {:.2e}", name, specs[o].name, worst));
  }
}

}  // namespace

TEST_CASE("the MLP gives PyTorch's logits and loss", "[pytorch]") { check_against_pytorch("mlp", 4); }
TEST_CASE("LeNet-5 gives PyTorch's logits and loss", "[pytorch]") { check_against_pytorch("lenet5", 4); }
TEST_CASE("the GPT model gives PyTorch's logits and loss", "[pytorch]") { check_against_pytorch("gpt", 2); }
