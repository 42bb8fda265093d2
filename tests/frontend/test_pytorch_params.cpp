// Parameter names, shapes and order of catalog models equal PyTorch's state_dict (the lists in
// tests/frontend/pytorch/ come from gen_params.py, which needs PyTorch; this test does not).

#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <sstream>

#include "helpers.h"

using namespace stag;
using namespace stag::test;

namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

// The graph's parameters in PyTorch's print form: `name [d0, d1]`.
std::vector<std::string> stag_params(const Graph& g) {
  std::vector<std::string> out;
  for (const auto& n : g.nodes)
    if (n->op == Op::parameter)
      out.push_back(fmt::format("{} [{}]", n->result()->name, fmt::join(n->result()->type.dims, ", ")));
  return out;
}

}  // namespace

TEST_CASE("parameter names and shapes equal PyTorch's", "[pytorch]") {
  std::filesystem::path root(STAG_SOURCE_DIR);
  for (const char* name : {"mlp", "lenet5", "resnet", "gpt"}) {
    INFO(name);
    auto expected = lines(read_file(root / "tests/frontend/pytorch" / (std::string(name) + ".params")));
    REQUIRE(expected.size() > 3);
    for (bool training : {false, true}) {
      LoadOptions opts;
      opts.training = training;
      auto c = compile(read_file(root / "models" / (std::string(name) + ".stag")), opts);
      INFO(c.errors);
      REQUIRE(c.graph);
      CHECK(stag_params(*c.graph) == expected);
    }
  }
}

TEST_CASE("PyTorch's default initialisation is kept on each parameter", "[pytorch]") {
  auto c = compile(read_file(std::filesystem::path(STAG_SOURCE_DIR) / "models/lenet5.stag"));
  REQUIRE(c.graph);
  const Node* w = c.graph->find("fc1.weight")->def;
  CHECK(w->s("init") == "kaiming_uniform");
  CHECK(w->f("a") == Approx(std::sqrt(5.0)));
  const Node* b = c.graph->find("fc1.bias")->def;
  CHECK(b->s("init") == "uniform");
  CHECK(b->f("high") == Approx(1.0 / std::sqrt(400.0)));
  CHECK(b->f("low") == Approx(-1.0 / std::sqrt(400.0)));
  // Conv bias bound: 1/sqrt(in_channels * kh * kw).
  CHECK(c.graph->find("conv2.bias")->def->f("high") == Approx(1.0 / std::sqrt(6.0 * 25)));
  auto gpt = compile(read_file(std::filesystem::path(STAG_SOURCE_DIR) / "models/gpt.stag"));
  REQUIRE(gpt.graph);
  CHECK(gpt.graph->find("h.0.attn.in_proj_weight")->def->s("init") == "xavier_uniform");
  CHECK(gpt.graph->find("h.0.attn.in_proj_bias")->def->s("init") == "zeros");
  CHECK(gpt.graph->find("h.0.ln_1.weight")->def->s("init") == "ones");
  // The file's `init wte.weight = normal(std=0.02)` replaces Embedding's normal(0, 1).
  CHECK(gpt.graph->find("wte.weight")->def->f("std") == Approx(0.02));
  CHECK(gpt.graph->find("wte.weight")->def->s("init") == "normal");
}
