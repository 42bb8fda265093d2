// The catalog's recurrent models (char_rnn, lstm_lm, gru_lm) lowered with a scan per layer
// against their unrolled form (--unroll): compiled, the loss, the outputs and every parameter's
// gradient agree within f32 tolerance in training mode (dropout active, the same masks); the
// scanned form's kernel count does not grow with the sequence length.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <regex>

#include "compiler/autodiff/autodiff.h"
#include "compiler/jit/jit_model.h"
#include "tests/compiler/catalog.h"
#include "tests/util.h"

using namespace stag;

namespace {

std::unique_ptr<Graph> load(const std::string& name, bool unroll, std::optional<std::string> text = std::nullopt) {
  LoadOptions options;
  options.batch = 2;
  options.training = true;
  options.unroll = unroll;
  auto g = test::load_model_file(test::catalog_path(name), options, std::move(text));
  Diagnostics diags;
  auto ad = differentiate(*g, "loss", diags);
  INFO(diags.render());
  REQUIRE(ad);
  return ad;
}

int scans(const Graph& g) {
  int n = 0;
  for (const auto& node : g.nodes) n += node->op == Op::scan;
  return n;
}

// Every output of the gradient graph (loss, logits, grad.*) by name, from parameters initialised
// with one seed and the same inputs.
std::map<std::string, std::vector<double>> run(const Graph& g) {
  CompiledModel c = compile_jit(g);
  c.model->init(7);
  const auto& fn = c.model->manifest().function("forward");
  std::vector<rt::Tensor> inputs;
  std::vector<const rt::Tensor*> ptrs;
  for (size_t i = 0; i < fn.inputs.size(); ++i) inputs.push_back(test::random_input(g, fn.inputs[i], 5, static_cast<int64_t>(i)));
  for (const auto& t : inputs) ptrs.push_back(&t);
  auto outs = c.model->run("forward", ptrs);
  std::map<std::string, std::vector<double>> by_name;
  for (size_t o = 0; o < outs.size(); ++o) by_name[fn.outputs[o].name] = test::to_doubles(outs[o]);
  return by_name;
}

}  // namespace

TEST_CASE("RNN catalog models: scanned and unrolled train the same (outputs and gradients)", "[scan][models]") {
  for (const char* name : {"char_rnn", "lstm_lm", "gru_lm"}) {
    INFO(name);
    auto scanned = load(name, false), unrolled = load(name, true);
    CHECK(scans(*scanned) > 0);
    CHECK(scans(*unrolled) == 0);
    auto a = run(*scanned), b = run(*unrolled);
    REQUIRE(a.size() == b.size());
    for (const auto& [out, want] : b) {
      REQUIRE(a.count(out));
      const auto& got = a.at(out);
      REQUIRE(got.size() == want.size());
      double scale = 0;
      for (double v : want) scale = std::max(scale, std::fabs(v));
      size_t bad = 0;
      std::string first;
      for (size_t i = 0; i < got.size(); ++i)
        if (!(std::fabs(got[i] - want[i]) <= 1e-4 * scale + 1e-4 * std::fabs(want[i])) && bad++ == 0)
          first = fmt::format("element {}: scanned {} unrolled {}", i, got[i], want[i]);
      INFO(fmt::format("{} output {}: {} of {} differ (scale {}); first {}", name, out, bad, got.size(), scale, first));
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("a scanned GRU language model's kernel count does not grow with the sequence length", "[scan][models]") {
  std::string text = test::slurp(test::catalog_path("gru_lm"));
  auto kernels = [&](int64_t T) {
    std::string t = std::regex_replace(text, std::regex(R"(const T = \d+)"), fmt::format("const T = {}", T));
    CompiledModel c = compile_jit(*load("gru_lm", false, t), {.opt_level = 1, .profile = false, .passes = {}});
    return c.program.functions.back().kernels.size();
  };
  size_t short_ = kernels(8), long_ = kernels(96);
  CHECK(short_ == long_);
  CHECK(long_ < 300);
}
