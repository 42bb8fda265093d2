// The optimizer changes no result: every catalog model's forward and train step give the same
// numbers with the default pipeline as with no pass at all, on random weights and inputs; and
// fusion and memory planning do what they claim (fewer kernels, a smaller workspace).

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <optional>
#include <regex>

#include "compiler/jit/jit_model.h"
#include "compiler/train/gan.h"
#include "compiler/train/train_step.h"
#include "frontend/load.h"
#include "ir/analysis.h"
#include "ir/random.h"
#include "tests/util.h"

using namespace stag;
namespace fs = std::filesystem;

namespace {

struct CatalogModel {
  std::string path, name;
};

std::vector<CatalogModel> catalog() {
  std::vector<CatalogModel> out;
  std::regex model_line(R"(model (\w+) \{)");
  for (const auto& e : fs::directory_iterator(fs::path(STAG_TESTS_DIR) / "../models")) {
    if (e.path().extension() != ".stag") continue;
    std::string text = test::slurp(e.path());
    for (std::sregex_iterator it(text.begin(), text.end(), model_line, std::regex_constants::match_not_null), end; it != end; ++it)
      if (it->position() == 0 || text[static_cast<size_t>(it->position()) - 1] == '\n') out.push_back({e.path().string(), (*it)[1]});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.path + a.name < b.path + b.name; });
  return out;
}

std::unique_ptr<Graph> load(const CatalogModel& m, bool training) {
  std::string error;
  auto text = read_source(m.path, error);
  REQUIRE(text);
  Diagnostics diags;
  LoadOptions options;
  options.batch = 2;
  options.training = training;
  options.model = m.name;
  auto g = load_model(m.path, *text, options, diags);
  INFO(diags.render());
  REQUIRE(g);
  return g;
}

std::vector<rt::Tensor> random_inputs(const Graph& g, const rt::FunctionSpec& spec) {
  std::vector<rt::Tensor> inputs;
  for (size_t k = 0; k < spec.inputs.size(); ++k) {
    const auto& in = spec.inputs[k];
    rt::Tensor t(in.dtype, in.shape);
    int64_t bound = index_bound(g, g.find(in.name), 2);
    for (int64_t i = 0; i < t.numel(); ++i) {
      auto stream = static_cast<int64_t>(k);
      if (in.dtype == rt::DType::f32) t.values<float>()[i] = in.name == "lr" ? 1e-3f : static_cast<float>(random_standard_normal(9, stream, i));
      else t.values<int64_t>()[i] = in.name == "step" ? 0 : static_cast<int64_t>(random_uniform01(9, stream, i) * static_cast<double>(bound));
    }
    inputs.push_back(std::move(t));
  }
  return inputs;
}

// f32 through a whole network in another order (fused chains, folded constants rounded once):
// 1e-4 relative to the tensor's scale.
void require_close(const rt::Tensor& got, const rt::Tensor& want, const std::string& what, double slack = 0) {
  auto g = test::to_doubles(got), w = test::to_doubles(want);
  REQUIRE(g.size() == w.size());
  double scale = 0;
  for (double v : w) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < g.size(); ++i) {
    INFO(fmt::format("{}[{}]: optimized {} unoptimized {}", what, i, g[i], w[i]));
    REQUIRE(std::fabs(g[i] - w[i]) <= 1e-4 * (1 + scale) + slack);
  }
}

int64_t kernels(const kir::Program& p, const std::string& function) {
  for (const auto& f : p.functions)
    if (f.name == function) return static_cast<int64_t>(f.kernels.size());
  return -1;
}

// Runs `function` of both programs on the same inputs `steps` times, comparing the outputs
// every time and the parameters at the end.
// Returns the kernel counts (unoptimized, optimized).
std::pair<int64_t, int64_t> compare(const std::vector<std::pair<std::string, const Graph*>>& functions, const std::string& function,
                                    int steps, const std::string& what, std::optional<std::vector<std::string>> pipeline = {}) {
  PassOptions none;
  none.passes = std::vector<std::string>{};
  none.verify_each = true;
  PassOptions full;
  full.passes = std::move(pipeline);
  full.verify_each = true;
  CompiledModel plain = compile_jit(functions, {.opt_level = 1, .passes = none});
  CompiledModel opt = compile_jit(functions, {.opt_level = 1, .passes = full});
  plain.model->init(5);
  opt.model->init(5);
  const auto& spec = plain.model->manifest().function(function);
  auto inputs = random_inputs(*functions.front().second, spec);
  std::vector<const rt::Tensor*> ptrs;
  for (const auto& t : inputs) ptrs.push_back(&t);
  for (int s = 0; s < steps; ++s) {
    auto want = plain.model->run(function, ptrs);
    auto got = opt.model->run(function, ptrs);
    for (size_t o = 0; o < want.size(); ++o) require_close(got[o], want[o], fmt::format("{} step {} output {}", what, s, spec.outputs[o].name));
  }
  // Adam and its kin divide by the root of each gradient's second moment, so an element whose
  // gradient is rounding noise (attention's key bias, whose exact gradient is zero) moves by up
  // to lr a step either way. The optimizer state, linear in the gradients, is held tight.
  for (size_t k = 0; k < plain.model->params().size(); ++k) {
    const auto& spec = plain.model->manifest().params[k];
    double slack = spec.trainable ? 1e-3 * steps : 0;
    require_close(opt.model->params()[k], plain.model->params()[k], fmt::format("{} parameter {}", what, spec.name), slack);
  }
  // The optimizer earns its place: no more kernels and no more workspace.
  CHECK(kernels(opt.program, function) <= kernels(plain.program, function));
  CHECK(opt.program.workspace_bytes <= plain.program.workspace_bytes);
  WARN(fmt::format("{}: {} kernels -> {}, workspace {} -> {} bytes", what, kernels(plain.program, function),
                   kernels(opt.program, function), plain.program.workspace_bytes, opt.program.workspace_bytes));
  return {kernels(plain.program, function), kernels(opt.program, function)};
}

}  // namespace

TEST_CASE("every catalog model's forward is the same with and without the optimizer", "[passes][models]") {
  auto models = catalog();
  REQUIRE(models.size() >= 14);
  int64_t before = 0, after = 0;
  for (const auto& m : models) {
    INFO(m.name);
    auto g = load(m, false);
    auto [b, a] = compare({{"forward", g.get()}}, "forward", 1, m.name + " forward");
    before += b, after += a;
  }
  // Some models have nothing to fuse in inference (the DCGAN generator); the catalog has plenty.
  CHECK(after < before * 2 / 3);
}

TEST_CASE("every catalog model's train step is the same with and without the optimizer", "[passes][models][train]") {
  int trained = 0;
  for (const auto& m : catalog()) {
    INFO(m.name);
    auto g = load(m, true);
    bool has_loss = std::any_of(g->outputs.begin(), g->outputs.end(), [](const Output& o) { return o.name == "loss"; });
    if (!has_loss) continue;  // the GAN's two models train as a pair (below)
    Diagnostics diags;
    auto step = build_train_step(*g, optimizer_from_attrs(*g), diags);
    INFO(diags.render());
    REQUIRE(step);
    // Two steps: the second runs on parameters and optimizer state the first updated.
    auto [b, a] = compare({{"train_step", step.get()}}, "train_step", 2, m.name + " train step");
    CHECK(a < b);
    ++trained;
  }
  CHECK(trained >= 12);
}

TEST_CASE("the DCGAN's discriminator and generator steps are the same with and without the optimizer", "[passes][models][train][gan]") {
  std::string path = (fs::path(STAG_TESTS_DIR) / "../models/dcgan.stag").string();
  auto gen = load({path, "generator"}, true), disc = load({path, "discriminator"}, true);
  Diagnostics diags;
  auto gan = build_gan(*gen, *disc, {}, {}, diags);
  INFO(diags.render());
  REQUIRE(gan);
  for (auto [name, graph] : {std::pair{"d_step", gan->d_step.get()}, std::pair{"g_step", gan->g_step.get()}}) {
    auto [b, a] = compare({{name, graph}}, name, 2, std::string("dcgan ") + name);
    CHECK(a < b);
  }
}

// A pass that is not in the default pipeline (merge-matmuls) must change no result either: the
// train steps where it fires (the RNNs' summed products, the transformers' batch-summed weight
// gradients), with it added after concat-pads.
TEST_CASE("train steps with merge-matmuls added are the same with and without the optimizer", "[passes][models][train]") {
  std::vector<std::string> pipeline;
  for (const auto& p : default_pipeline()) {
    pipeline.push_back(p);
    if (p == "concat-pads") pipeline.push_back("merge-matmuls");
  }
  REQUIRE(pipeline.size() == default_pipeline().size() + 1);
  int trained = 0;
  for (const auto& m : catalog()) {
    if (m.name != "char_rnn" && m.name != "lstm_lm" && m.name != "gpt") continue;
    INFO(m.name);
    auto g = load(m, true);
    Diagnostics diags;
    auto step = build_train_step(*g, optimizer_from_attrs(*g), diags);
    INFO(diags.render());
    REQUIRE(step);
    compare({{"train_step", step.get()}}, "train_step", 2, m.name + " train step with merge-matmuls", pipeline);
    ++trained;
  }
  CHECK(trained == 3);
}
