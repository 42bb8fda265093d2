// Every optimizer, as graph ops compiled to native code, takes the same ten steps as
// torch.optim (pytorch/gen_optimizer_steps.py) on a linear model with an MSE loss whose
// gradients are written out by hand here, so that this test checks the optimizers alone.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "compiler/autodiff/autodiff.h"
#include "compiler/jit/jit_model.h"
#include "compiler/lower/lower.h"
#include "compiler/train/optimizer.h"
#include "compiler/train/train_step.h"
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

namespace {

// The train step of two tanh layers, w1 and w2 of one shape, trained by AdamW. With `expose`, the step
// also outputs w1's new value, which then is a buffer the update kernel reads, as the GAN pair
// step's discriminator weights are (its generator half reads them).
std::unique_ptr<Graph> two_layer_step(bool expose) {
  Graph g("two_layers");
  Builder b(g);
  DType f = DType::f32;
  Value* x = b.constant({f, {5, 4}}, formula(20, 10));
  Value* t = b.constant({f, {5, 4}}, formula(20, 11));
  Value* w1 = b.parameter("w1", {f, {4, 4}}, {{"init", std::string("normal")}});
  Value* w2 = b.parameter("w2", {f, {4, 4}}, {{"init", std::string("normal")}});
  Value* bias = b.parameter("b", {f, {4}}, {{"init", std::string("normal")}});
  b.output("loss", b.mse({b.add({b.matmul({b.tanh({b.matmul({x, w1})}), w2}), bias}), t}));
  OptimizerConfig adamw;
  adamw.kind = "adamw";
  adamw.weight_decay = 0.1;
  Diagnostics diags;
  auto step = build_train_step(g, adamw, diags);  // as `stag train` steps: each update guarded
  REQUIRE(step);
  if (expose)
    for (const auto& u : step->updates)
      if (u.target->name == "w1") Builder(*step).output("new_w1", u.value);
  return step;
}

// Every parameter and optimizer state of `m`, by name.
std::map<std::string, std::vector<float>> state_of(rt::Model& m) {
  std::map<std::string, std::vector<float>> state;
  for (size_t i = 0; i < m.params().size(); ++i) {
    auto v = m.params()[i].values<float>();
    state[m.manifest().params[i].name].assign(v.begin(), v.end());
  }
  return state;
}

// The state after `steps` compiled steps from the initialisation of seed 3.
std::map<std::string, std::vector<float>> after_steps(const Graph& step, int steps) {
  CompiledModel compiled = compile_jit(step);
  rt::Model& m = *compiled.model;
  m.init(3);
  rt::Tensor lr = rt::Tensor::from<float>({}, {0.05f});
  for (int i = 0; i < steps; ++i) m.run("forward", {&lr});
  return state_of(m);
}

}  // namespace

// The updates of one size are one kernel (lower.cpp): two weights of one shape and their Adam
// moments in one, the bias and its moments in another, the step counter in a third. Each new
// value reads the old state of its own group, so three compiled steps must be the reference
// interpreter's, every parameter and moment of them.
TEST_CASE("the updates of one size are one kernel and take the reference's steps", "[optimizer]") {
  auto step = two_layer_step(false);
  int updates = 0;
  for (const auto& fn : lower(*step).functions)
    for (const auto& k : fn.kernels) updates += k.name.ends_with("_update");
  CHECK(updates == 3);  // [4, 4] weights, [4] bias, the step counter

  CompiledModel compiled = compile_jit(*step);
  rt::Model& m = *compiled.model;
  m.init(3);
  DType f = DType::f32;
  std::map<std::string, RefTensor> feeds{{"lr", RefTensor({f, {}}, {0.05})}};
  for (const auto& n : step->nodes)
    if (n->op == Op::parameter) {
      std::vector<double> v;
      for (float e : m.param(n->result()->name).values<float>()) v.push_back(e);
      feeds[n->result()->name] = RefTensor(n->result()->type, v);
    }
  rt::Tensor lr = rt::Tensor::from<float>({}, {0.05f});
  for (int i = 0; i < 3; ++i) {
    m.run("forward", {&lr});
    for (const auto& [name, value] : interpret(*step, feeds).updates) feeds[name] = value;
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

// An update kernel computes each value as a kernel of its own would, alone in its loop: a loop of
// several values let LLVM share and reassociate their terms, and the GAN pair step, which reads
// the discriminator's new weights from buffers, stored other moments than the discriminator step
// (test_gan.cpp). A parameter's loop runs before its moments' loops overwrite what it reads; and
// whether other kernels read w1's new value or not, every parameter and moment ends on the same bits.
TEST_CASE("an update kernel runs each update alone in a loop and its bits do not depend on other readers", "[optimizer]") {
  for (bool expose : {false, true}) {
    auto step = two_layer_step(expose);
    LowerOptions fused;
    fused.fuse = true;
    kir::Program p = lower({{"forward", step.get()}}, fused);
    std::vector<std::string> stored;  // each loop's targets, the loops in order
    for (const auto& fn : p.functions)
      for (const auto& k : fn.kernels) {
        if (!k.name.ends_with("_update")) continue;
        std::istringstream text(kir::print(p, k));
        for (std::string line; std::getline(text, line);) {
          if (line.find("for e in") != std::string::npos) stored.emplace_back();
          else if (line.find("] = new") != std::string::npos && line.find('%') != std::string::npos)
            stored.back() += line.substr(line.find('%') + 1, line.find('[') - line.find('%') - 1) + " ";
        }
      }
    INFO("expose " << expose);
    CHECK(stored.size() == 10);  // 3 parameters, 2 moments each, the step
    for (const auto& loop : stored) CHECK(std::count(loop.begin(), loop.end(), ' ') == 1);
    auto at = [&](const std::string& target) { return std::find(stored.begin(), stored.end(), target + " ") - stored.begin(); };
    for (const std::string w : {"w1", "w2", "b"}) {
      if (expose && w == "w1") continue;  // its loop copies the buffer: it reads no moment
      CHECK(at(w) < at("optim.exp_avg." + w));
      CHECK(at(w) < at("optim.exp_avg_sq." + w));
    }
  }
  auto alone = two_layer_step(false), exposed = two_layer_step(true);
  auto want = after_steps(*alone, 5), got = after_steps(*exposed, 5);
  REQUIRE(want.size() == 10);
  CHECK(want.at("w1") != after_steps(*alone, 0).at("w1"));  // trained, not initial
  for (const auto& [name, values] : want) {
    INFO(name);
    CHECK(std::memcmp(values.data(), got.at(name).data(), values.size() * sizeof(float)) == 0);
  }
}
