// Gradients and train steps of catalog models: the loss gradient of every parameter equals
// PyTorch's for the same weights and batch (pytorch/gen_grad_parity.py), and the compiled
// train step (forward, backward, optimizer update in one function) learns.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "compiler/autodiff/autodiff.h"
#include "compiler/jit/jit_model.h"
#include "compiler/train/train_step.h"
#include "frontend/load.h"
#include "ir/analysis.h"
#include "ir/random.h"

using namespace stag;

namespace {

std::unique_ptr<Graph> load_catalog(const std::string& name, int64_t batch, bool training) {
  std::string path = fmt::format("{}/../models/{}.stag", STAG_TESTS_DIR, name), error;
  auto text = read_source(path, error);
  REQUIRE(text);
  Diagnostics diags;
  LoadOptions options;
  options.batch = batch;
  options.training = training;
  auto g = load_model(path, *text, options, diags);
  INFO(diags.render());
  REQUIRE(g);
  return g;
}

// gen_forward_parity.py's formulas.
void formula_params(rt::Model& m) {
  const auto& params = m.manifest().params;
  for (size_t k = 0; k < params.size(); ++k) {
    const auto& spec = params[k];
    if (!spec.trainable && spec.name.starts_with("optim.")) continue;
    double a = 0.1, d = 0;
    if (spec.shape.size() == 1) d = spec.name.ends_with(".weight") ? 1.0 : 0.0;
    else a = 1 / std::sqrt(static_cast<double>(m.params()[k].numel() / spec.shape[0]));
    auto v = m.params()[k].values<float>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(a * std::sin(0.7 * static_cast<double>(i) + 1.3 * static_cast<double>(k)) + d);
  }
}

std::vector<rt::Tensor> formula_inputs(const Graph& g, const rt::FunctionSpec& spec) {
  std::vector<rt::Tensor> inputs;
  for (const auto& in : spec.inputs) {
    rt::Tensor t(in.dtype, in.shape);
    if (in.dtype == rt::DType::f32) {
      for (int64_t i = 0; i < t.numel(); ++i) t.values<float>()[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
    } else {
      int64_t bound = index_bound(g, g.find(in.name), 10);
      for (int64_t i = 0; i < t.numel(); ++i) t.values<int64_t>()[i] = (7 * i + 3) % bound;
    }
    inputs.push_back(std::move(t));
  }
  return inputs;
}

void check_gradients_against_pytorch(const std::string& name, int64_t batch) {
  auto g = load_catalog(name, batch, false);
  Diagnostics diags;
  auto dg = differentiate(*g, "loss", diags);
  INFO(diags.render());
  REQUIRE(dg);
  CompiledModel c = compile_jit(*dg);
  formula_params(*c.model);
  const auto& spec = c.model->manifest().function("forward");
  auto inputs = formula_inputs(*dg, spec);
  std::vector<const rt::Tensor*> ptrs;
  for (const auto& t : inputs) ptrs.push_back(&t);
  auto outputs = c.model->run("forward", ptrs);
  std::map<std::string, const rt::Tensor*> out;
  for (size_t i = 0; i < outputs.size(); ++i) out[spec.outputs[i].name] = &outputs[i];

  std::ifstream in(fmt::format("{}/compiler/pytorch/{}.grads.txt", STAG_TESTS_DIR, name));
  std::string line;
  std::getline(in, line);
  double want_loss = std::stod(line.substr(5));
  CHECK(std::fabs(out.at("loss")->values<float>()[0] - want_loss) <= 1e-5 * std::fabs(want_loss));
  int params = 0;
  double worst = 0;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string pname;
    double norm, p1, p2;
    ss >> pname >> norm >> p1 >> p2;
    INFO(name << " " << pname);
    REQUIRE(out.count(grad_output_name(pname)));
    auto g_values = out.at(grad_output_name(pname))->values<float>();
    double n = 0, q1 = 0, q2 = 0;
    for (size_t i = 0; i < g_values.size(); ++i) {
      double v = g_values[i], x = static_cast<double>(i);
      n += v * v, q1 += v * std::sin(0.31 * x + 0.5), q2 += v * std::cos(0.17 * x);
    }
    n = std::sqrt(n);
    // f32 against f32 in another order: relative 1e-3 of the gradient's own size.
    for (auto [got, want] : {std::pair{n, norm}, std::pair{q1, p1}, std::pair{q2, p2}}) {
      INFO(fmt::format("stag {} PyTorch {} (|grad| {})", got, want, norm));
      CHECK(std::fabs(got - want) <= 1e-3 * norm + 1e-9);
      worst = std::max(worst, std::fabs(got - want) / std::max(norm, 1e-30));
    }
    ++params;
  }
  CHECK(params >= 6);
  WARN(fmt::format("{}: {} parameters, largest difference from PyTorch {:.2e} of the gradient's norm", name, params, worst));
}

}  // namespace

TEST_CASE("the MLP's gradients equal PyTorch's", "[grad][pytorch]") { check_gradients_against_pytorch("mlp", 4); }
TEST_CASE("LeNet-5's gradients equal PyTorch's", "[grad][pytorch]") { check_gradients_against_pytorch("lenet5", 4); }
TEST_CASE("the GPT model's gradients equal PyTorch's", "[grad][pytorch]") { check_gradients_against_pytorch("gpt", 2); }

TEST_CASE("the compiled MLP train step learns a batch", "[train]") {
  auto g = load_catalog("mlp", 16, true);
  Diagnostics diags;
  auto step = build_train_step(*g, optimizer_from_attrs(*g), diags);
  INFO(diags.render());
  REQUIRE(step);
  CompiledModel c = compile_jit(std::vector<std::pair<std::string, const Graph*>>{{"train_step", step.get()}});
  c.model->init(1);
  const auto& spec = c.model->manifest().function("train_step");
  // A batch of random images with random labels: memorising it takes a working train step.
  std::vector<rt::Tensor> inputs;
  for (const auto& in : spec.inputs) {
    rt::Tensor t(in.dtype, in.shape);
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (in.dtype == rt::DType::f32) t.values<float>()[i] = static_cast<float>(random_standard_normal(5, 0, i));
      else t.values<int64_t>()[i] = static_cast<int64_t>(random_uniform01(5, 1, i) * 10);
    }
    inputs.push_back(std::move(t));
  }
  std::vector<const rt::Tensor*> ptrs;
  std::vector<float> losses;
  int loss_index = -1;
  for (size_t i = 0; i < spec.outputs.size(); ++i)
    if (spec.outputs[i].name == "loss") loss_index = static_cast<int>(i);
  REQUIRE(loss_index >= 0);
  for (int s = 0; s < 30; ++s) {
    ptrs.clear();
    for (size_t i = 0; i < spec.inputs.size(); ++i) {
      if (spec.inputs[i].name == "lr") inputs[i].values<float>()[0] = 1e-3f;
      if (spec.inputs[i].name == "step") inputs[i].values<int64_t>()[0] = s;
      ptrs.push_back(&inputs[i]);
    }
    losses.push_back(c.model->run("train_step", ptrs)[loss_index].values<float>()[0]);
  }
  // Dropout stays on, so single steps jump about: judge the last five.
  float tail = 0;
  for (size_t i = losses.size() - 5; i < losses.size(); ++i) tail += losses[i] / 5;
  INFO(fmt::format("losses: {}", fmt::join(losses, " ")));
  CHECK(tail < 0.1f * losses.front());
  CHECK(c.model->param("optim.step").values<float>()[0] == 30.0f);
}

TEST_CASE("every catalog model with a loss compiles a train step that runs", "[train][models]") {
  namespace fs = std::filesystem;
  int models = 0;
  for (const auto& e : fs::directory_iterator(fs::path(STAG_TESTS_DIR) / "../models")) {
    if (e.path().extension() != ".stag") continue;
    std::string name = e.path().stem().string();
    INFO(name);
    auto g = load_catalog(name, 2, true);
    bool has_loss = std::any_of(g->outputs.begin(), g->outputs.end(), [](const Output& o) { return o.name == "loss"; });
    if (!has_loss) {
      // The DCGAN file's first model, the generator, has no loss of its own: a GAN trains it
      // through the discriminator, which the training loop does not do yet.
      CHECK(name == "dcgan");
      continue;
    }
    Diagnostics diags;
    auto step = build_train_step(*g, optimizer_from_attrs(*g), diags);
    INFO(diags.render());
    REQUIRE(step);
    CompiledModel c = compile_jit(std::vector<std::pair<std::string, const Graph*>>{{"train_step", step.get()}});
    c.model->init(2);
    const auto& spec = c.model->manifest().function("train_step");
    std::vector<rt::Tensor> inputs;
    for (const auto& in : spec.inputs) {
      rt::Tensor t(in.dtype, in.shape);
      int64_t bound = index_bound(*step, step->find(in.name), 2);
      for (int64_t i = 0; i < t.numel(); ++i) {
        if (in.dtype == rt::DType::f32) t.values<float>()[i] = in.name == "lr" ? 1e-3f : static_cast<float>(random_standard_normal(7, 0, i));
        else t.values<int64_t>()[i] = in.name == "step" ? 0 : static_cast<int64_t>(random_uniform01(7, 1, i) * static_cast<double>(bound));
      }
      inputs.push_back(std::move(t));
    }
    std::vector<const rt::Tensor*> ptrs;
    for (const auto& t : inputs) ptrs.push_back(&t);
    std::vector<float> before(c.model->params()[0].numel());
    int trainable = -1;
    for (size_t k = 0; k < c.model->params().size() && trainable < 0; ++k)
      if (c.model->manifest().params[k].trainable) trainable = static_cast<int>(k);
    REQUIRE(trainable >= 0);
    auto p0 = c.model->params()[trainable].clone();
    auto out = c.model->run("train_step", ptrs);
    float loss = 0;
    for (size_t i = 0; i < spec.outputs.size(); ++i)
      if (spec.outputs[i].name == "loss") loss = out[i].values<float>()[0];
    CHECK(std::isfinite(loss));
    CHECK_FALSE(rt::identical(p0, c.model->params()[trainable]));
    CHECK(c.model->param("optim.step").values<float>()[0] == 1.0f);
    ++models;
  }
  CHECK(models >= 12);
}
