// Every optimizer, as graph ops compiled to native code, takes the same ten steps as
// torch.optim (pytorch/gen_optimizer_steps.py) on a linear model with an MSE loss whose
// gradients are written out by hand here, so that this test checks the optimizers alone.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "compiler/autodiff/autodiff.h"
#include "compiler/jit/jit_model.h"
#include "compiler/lower/lower.h"
#include "compiler/train/optimizer.h"
#include "ir/builder.h"
#include "ir/reference.h"

using namespace stag;

namespace {

struct Case {
  std::string name;
  OptimizerConfig config;
  double lr = 0;
  std::vector<double> expected;  // W [3,2] then b [2] after ten steps
};

std::vector<Case> read_cases() {
  std::ifstream in(std::string(STAG_TESTS_DIR) + "/compiler/pytorch/optimizer_steps.txt");
  std::vector<Case> cases;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ss(line);
    Case c;
    OptimizerConfig& o = c.config;
    double nesterov, centered;
    ss >> c.name >> o.kind >> c.lr >> o.momentum >> o.dampening >> nesterov >> o.weight_decay >> o.beta1 >> o.beta2 >>
        o.eps >> o.alpha >> centered >> o.lr_decay >> o.initial_accumulator >> o.clip_norm >> o.clip_value;
    o.nesterov = nesterov != 0;
    o.centered = centered != 0;
    std::string bar;
    ss >> bar;
    REQUIRE(bar == "|");
    for (double v; ss >> v;) c.expected.push_back(v);
    cases.push_back(std::move(c));
  }
  return cases;
}

Floats formula(int64_t n, int k) {
  Floats v;
  for (int64_t i = 0; i < n; ++i) v.push_back(static_cast<float>(0.5 * std::sin(0.7 * static_cast<double>(i) + 1.3 * k)));
  return v;
}

}  // namespace

TEST_CASE("every optimizer takes torch.optim's ten steps", "[optimizer]") {
  auto cases = read_cases();
  REQUIRE(cases.size() == 12);
  for (const auto& c : cases) {
    INFO(c.name);
    Graph g("linear");
    Builder b(g);
    DType f = DType::f32;
    Value* x = b.constant({f, {5, 3}}, formula(15, 10));
    Value* t = b.constant({f, {5, 2}}, formula(10, 11));
    Value* w = b.parameter("w", {f, {3, 2}});
    Value* bias = b.parameter("b", {f, {2}});
    Value* y = b.add({b.matmul({x, w}), bias});
    b.output("loss", b.mse({y, t}));
    // d mse / dy = 2 (y - t) / 10; dW = x^T dy; db = sum over rows of dy
    Value* dy = b.mul({b.sub({y, t}), b.scalar(0.2)});
    Value* dw = b.matmul({x, dy}, {{"transpose_a", true}});
    Value* db = b.sum({dy}, {{"axes", Ints{0}}});
    REQUIRE(append_optimizer(g, {{w, dw}, {bias, db}}, c.config).empty());
    CompiledModel compiled = compile_jit(g);
    rt::Model& m = *compiled.model;
    m.init(0);
    auto set = [&](const std::string& name, const Floats& v) {
      auto dst = m.param(name).values<float>();
      for (size_t i = 0; i < v.size(); ++i) dst[i] = static_cast<float>(v[i]);
    };
    set("w", formula(6, 0));
    set("b", formula(2, 1));
    rt::Tensor lr = rt::Tensor::from<float>({}, {static_cast<float>(c.lr)});
    for (int step = 0; step < 10; ++step) m.run("forward", {&lr});
    std::vector<double> got;
    for (float v : m.param("w").values<float>()) got.push_back(v);
    for (float v : m.param("b").values<float>()) got.push_back(v);
    REQUIRE(got.size() == c.expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      INFO(fmt::format("element {}: stag {} PyTorch {}", i, got[i], c.expected[i]));
      CHECK(std::fabs(got[i] - c.expected[i]) <= 1e-4 * std::fabs(c.expected[i]) + 1e-6);
    }
  }
}

TEST_CASE("bad optimizer settings are errors, not crashes", "[optimizer]") {
  Graph g("bad");
  Builder b(g);
  Value* w = b.parameter("w", {DType::f32, {2}});
  OptimizerConfig c;
  c.kind = "adamx";
  CHECK(append_optimizer(g, {{w, w}}, c) == "unknown optimizer 'adamx'; expected sgd, adam, adamw, adamax, adagrad or rmsprop");
  c.kind = "sgd";
  c.nesterov = true;
  CHECK(append_optimizer(g, {{w, w}}, c) == "nesterov needs momentum > 0 and dampening 0");
  c = OptimizerConfig{};
  c.beta1 = 1.0;
  CHECK(append_optimizer(g, {{w, w}}, c) == "betas must be in [0, 1), got [1, 0.999]");
  CHECK(append_optimizer(g, {}, OptimizerConfig{}) == "there are no trainable parameters to optimize");
}

TEST_CASE("l1 adds l1 * sign(p) to each gradient, the gradient of l1 * sum(|p|) in the loss", "[optimizer]") {
  // One SGD step with and without l1 from the same weights: they differ by lr * l1 * sign(p).
  auto step = [](double l1) {
    Graph g("linear");
    Builder b(g);
    Value* x = b.constant({DType::f32, {5, 3}}, formula(15, 10));
    Value* w = b.parameter("w", {DType::f32, {3, 2}});
    Value* y = b.matmul({x, w});
    b.output("loss", b.mse({y, b.constant({DType::f32, {5, 2}}, formula(10, 11))}));
    Value* dw = b.matmul({x, b.mul({y, b.scalar(0.2)})}, {{"transpose_a", true}});
    OptimizerConfig c;
    c.kind = "sgd";
    c.l1 = l1;
    REQUIRE(append_optimizer(g, {{w, dw}}, c).empty());
    CompiledModel compiled = compile_jit(g);
    compiled.model->init(0);
    auto dst = compiled.model->param("w").values<float>();
    Floats w0 = formula(6, 0);
    for (size_t i = 0; i < w0.size(); ++i) dst[i] = static_cast<float>(w0[i]);
    rt::Tensor lr = rt::Tensor::from<float>({}, {0.5f});
    compiled.model->run("forward", {&lr});
    auto after = compiled.model->param("w").values<float>();
    return std::vector<float>(after.begin(), after.end());
  };
  auto plain = step(0), l1 = step(0.1);
  Floats w0 = formula(6, 0);
  for (size_t i = 0; i < w0.size(); ++i) {
    INFO("element " << i);
    double sign = w0[i] > 0 ? 1 : w0[i] < 0 ? -1 : 0;  // sign(0) = 0, as torch.sign
    CHECK(l1[i] - plain[i] == Approx(-0.5 * 0.1 * sign).margin(1e-6));
  }
  Graph g("bad");
  Builder b(g);
  Value* w = b.parameter("w", {DType::f32, {2}});
  OptimizerConfig c;
  c.l1 = -1;
  CHECK(append_optimizer(g, {{w, w}}, c) == "l1 must be >= 0, got -1");
}

// The updates of one size are one kernel (lower.cpp): two weights of one shape and their Adam
// moments in one, the bias and its moments in another, the step counter in a third. Each new
// value reads the old state of its own group, so three compiled steps must be the reference
// interpreter's, every parameter and moment of them.
TEST_CASE("the updates of one size are one kernel and take the reference's steps", "[optimizer]") {
  Graph g("two_layers");
  Builder b(g);
  DType f = DType::f32;
  Value* x = b.constant({f, {5, 4}}, formula(20, 10));
  Value* t = b.constant({f, {5, 4}}, formula(20, 11));
  Value* w1 = b.parameter("w1", {f, {4, 4}}, {{"init", std::string("normal")}});
  Value* w2 = b.parameter("w2", {f, {4, 4}}, {{"init", std::string("normal")}});
  Value* bias = b.parameter("b", {f, {4}}, {{"init", std::string("normal")}});
  b.output("loss", b.mse({b.add({b.matmul({b.tanh({b.matmul({x, w1})}), w2}), bias}), t}));
  Diagnostics diags;
  auto grads_graph = differentiate(g, "loss", diags);
  REQUIRE(grads_graph);
  std::vector<std::pair<Value*, Value*>> grads;
  for (const auto& o : grads_graph->outputs)
    if (o.name.starts_with("grad.")) grads.emplace_back(grads_graph->find(o.name.substr(5)), o.value);
  OptimizerConfig adamw;
  adamw.kind = "adamw";
  adamw.weight_decay = 0.1;
  REQUIRE(append_optimizer(*grads_graph, grads, adamw).empty());
  int updates = 0;
  for (const auto& fn : lower(*grads_graph).functions)
    for (const auto& k : fn.kernels) updates += k.name.ends_with("_update");
  CHECK(updates == 3);  // [4, 4] weights, [4] bias, the step counter

  CompiledModel compiled = compile_jit(*grads_graph);
  rt::Model& m = *compiled.model;
  m.init(3);
  std::map<std::string, RefTensor> feeds{{"lr", RefTensor({f, {}}, {0.05})}};
  for (const auto& n : grads_graph->nodes)
    if (n->op == Op::parameter) {
      std::vector<double> v;
      for (float e : m.param(n->result()->name).values<float>()) v.push_back(e);
      feeds[n->result()->name] = RefTensor(n->result()->type, v);
    }
  rt::Tensor lr = rt::Tensor::from<float>({}, {0.05f});
  for (int step = 0; step < 3; ++step) {
    m.run("forward", {&lr});
    for (const auto& [name, value] : interpret(*grads_graph, feeds).updates) feeds[name] = value;
  }
  CHECK(feeds.size() > 7);  // lr, 3 parameters, 2 moments each, the step
  for (const auto& [name, want] : feeds) {
    if (name == "lr") continue;
    auto got = m.param(name).values<float>();
    REQUIRE(got.size() == want.data.size());
    for (size_t i = 0; i < got.size(); ++i) {
      INFO(name << " element " << i);
      CHECK(std::fabs(got[i] - want.data[i]) <= 1e-5 * (1 + std::fabs(want.data[i])));
    }
  }
}
