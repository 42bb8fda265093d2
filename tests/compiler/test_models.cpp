// Every catalog model's forward, compiled to native code, matches the reference interpreter
// on the same parameters (the compiled init) and random inputs, in inference and training mode.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <regex>

#include "compiler/jit/jit_model.h"
#include "tests/compiler/catalog.h"
#include "ir/reference.h"
#include "tests/util.h"

using namespace stag;
namespace fs = std::filesystem;

namespace {

RefTensor to_ref(const rt::Tensor& t, const Type& type) { return RefTensor(type, test::to_doubles(t)); }

void check_model(const std::string& path, const std::string& name, bool training) {
  LoadOptions options;
  options.batch = 2;
  options.training = training;
  options.model = name;
  auto g = test::load_model_file(path, options);
  CompiledModel c = compile_jit(*g);
  rt::Model& model = *c.model;
  model.init(11);
  std::map<std::string, RefTensor> feeds;
  for (size_t k = 0; k < model.params().size(); ++k) {
    const auto& spec = model.manifest().params[k];
    feeds[spec.name] = to_ref(model.params()[k], g->find(spec.name)->type);
  }
  std::vector<rt::Tensor> inputs;
  std::vector<const rt::Tensor*> ptrs;
  const auto& fspec = model.manifest().function("forward");
  for (size_t i = 0; i < fspec.inputs.size(); ++i) {
    inputs.push_back(test::random_input(*g, fspec.inputs[i], 3, static_cast<int64_t>(i)));
    feeds[fspec.inputs[i].name] = to_ref(inputs.back(), g->find(fspec.inputs[i].name)->type);
  }
  for (const auto& t : inputs) ptrs.push_back(&t);
  auto outputs = model.run("forward", ptrs);
  RefResult want = interpret(*g, feeds);
  for (size_t o = 0; o < outputs.size(); ++o) {
    const auto& ref = want.outputs.at(fspec.outputs[o].name);
    RefTensor got = to_ref(outputs[o], ref.type);
    // f32 through a whole network against double: 1e-3 relative to the output's scale.
    double scale = 0;
    for (double v : ref.data) scale = std::max(scale, std::fabs(v));
    for (int64_t i = 0; i < ref.numel(); ++i) {
      INFO(fmt::format("{} ({}) output {}[{}]: compiled {} reference {}", name, training ? "train" : "eval",
                       fspec.outputs[o].name, i, got.data[i], ref.data[i]));
      REQUIRE(std::fabs(got.data[i] - ref.data[i]) <= 1e-3 * (1 + scale));
    }
  }
  // Updates (running statistics) land in the parameters.
  for (const auto& [param, ref] : want.updates) {
    RefTensor got = to_ref(model.param(param), ref.type);
    for (int64_t i = 0; i < ref.numel(); ++i) REQUIRE(std::fabs(got.data[i] - ref.data[i]) <= 1e-3 * (1 + std::fabs(ref.data[i])));
  }
}

}  // namespace

TEST_CASE("every catalog model's compiled forward matches the reference interpreter", "[models]") {
  fs::path dir = fs::path(STAG_TESTS_DIR) / "../models";
  int models = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".stag") continue;
    std::string text = test::slurp(e.path());
    // A file may hold several models (a GAN's generator and discriminator).
    std::regex model_line(R"(^model\s+([A-Za-z_][A-Za-z0-9_]*))");
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      std::smatch m;
      if (!std::regex_search(line, m, model_line)) continue;
      for (bool training : {false, true}) {
        INFO(fmt::format("{} model {} ({})", e.path().filename().string(), m[1].str(), training ? "train" : "eval"));
        check_model(e.path().string(), m[1].str(), training);
      }
      ++models;
    }
  }
  CHECK(models >= 14);
}
