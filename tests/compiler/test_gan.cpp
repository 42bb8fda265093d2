// The GAN program of models/dcgan.stag: its compiled discriminator and generator steps equal the
// reference interpreter's, each step changes only what it owns, a step repeats bit for bit, and
// the pair step is the two steps one after the other, bit for bit.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "compiler/jit/jit_model.h"
#include "compiler/train/gan.h"
#include "compiler/train/train_step.h"
#include "frontend/load.h"
#include "ir/reference.h"
#include "tests/compiler/catalog.h"

using namespace stag;

namespace {

std::unique_ptr<Graph> load_member(const std::string& name, int64_t batch) {
  LoadOptions options;
  options.batch = batch;
  options.training = true;
  options.model = name;
  return test::load_model_file(test::catalog_path("dcgan"), options);
}

struct Gan {
  GanGraphs graphs;
  CompiledModel compiled;
};

Gan compile_dcgan(int64_t batch, const std::string& loss) {
  auto gen = load_member("generator", batch), disc = load_member("discriminator", batch);
  GanOptions o;
  o.loss = loss;
  o.generator_optimizer.kind = o.discriminator_optimizer.kind = "sgd";
  o.generator_optimizer.momentum = o.discriminator_optimizer.momentum = 0.5;
  Diagnostics diags;
  auto graphs = build_gan(*gen, *disc, o, {}, diags);
  INFO(diags.render());
  REQUIRE(graphs);
  auto c = compile_jit({{"forward", graphs->sample.get()}, {"d_step", graphs->d_step.get()}, {"g_step", graphs->g_step.get()}});
  return {std::move(*graphs), std::move(c)};
}

/// The program with the pair step too, both models with Adam as in the model file.
Gan compile_dcgan_pair(int64_t batch) {
  auto gen = load_member("generator", batch), disc = load_member("discriminator", batch);
  GanOptions o;
  o.generator_optimizer = optimizer_from_attrs(*gen);
  o.discriminator_optimizer = optimizer_from_attrs(*disc);
  REQUIRE(o.generator_optimizer.kind == "adam");
  Diagnostics diags;
  auto graphs = build_gan(*gen, *disc, o, {}, diags);
  INFO(diags.render());
  REQUIRE(graphs);
  graphs->pair_step = build_pair_step(*graphs->d_step, *graphs->g_step);
  auto c = compile_jit({{"forward", graphs->sample.get()}, {"d_step", graphs->d_step.get()}, {"g_step", graphs->g_step.get()},
                        {"pair_step", graphs->pair_step.get()}});
  return {std::move(*graphs), std::move(c)};
}

RefTensor to_ref(const rt::Tensor& t, const Type& type) {
  RefTensor r(type, {});
  if (t.dtype() == rt::DType::f32)
    for (float v : t.values<float>()) r.data.push_back(v);
  else
    for (int64_t v : t.values<int64_t>()) r.data.push_back(static_cast<double>(v));
  return r;
}

/// Every parameter and input of `g` from the compiled model's state and `inputs`.
std::map<std::string, RefTensor> feeds(rt::Model& m, const Graph& g, const std::map<std::string, const rt::Tensor*>& inputs) {
  std::map<std::string, RefTensor> f;
  for (const auto& n : g.nodes) {
    const std::string& name = n->result()->name;
    if (n->op == Op::parameter) f[name] = to_ref(m.param(name), n->result()->type);
    if (n->op == Op::input) f[name] = to_ref(*inputs.at(name), n->result()->type);
  }
  return f;
}

void check_close(const rt::Tensor& got, const RefTensor& want, const std::string& what) {
  auto v = got.values<float>();
  REQUIRE(static_cast<int64_t>(v.size()) == want.numel());
  // f32 against f64: each element within 1e-3 of the tensor's scale (its largest magnitude).
  double worst = 0, scale = 1e-6;
  for (double w : want.data) scale = std::max(scale, std::abs(w));
  for (size_t i = 0; i < v.size(); ++i) worst = std::max(worst, std::abs(v[i] - want.data[i]));
  INFO(what << ": largest error " << worst << " at scale " << scale);
  CHECK(worst < 1e-3 * scale);
}

std::vector<rt::Tensor> run(rt::Model& m, const std::string& function, const std::map<std::string, const rt::Tensor*>& inputs) {
  std::vector<const rt::Tensor*> args;
  for (const auto& in : m.manifest().function(function).inputs) args.push_back(inputs.at(in.name));
  return m.run(function, args);
}

/// Runs `function` compiled and in the reference; checks outputs and every update.
void check_step(Gan& gan, const Graph& g, const std::string& function, const std::map<std::string, const rt::Tensor*>& inputs) {
  rt::Model& m = *gan.compiled.model;
  auto ref = interpret(g, feeds(m, g, inputs));
  const auto& spec = m.manifest().function(function);
  auto out = run(m, function, inputs);
  for (size_t i = 0; i < spec.outputs.size(); ++i) check_close(out[i], ref.outputs.at(spec.outputs[i].name), spec.outputs[i].name);
  for (const auto& [name, value] : ref.updates) check_close(m.param(name), value, "update of " + name);
}

/// The bytes of every parameter and optimizer state whose name starts with `prefix`.
std::vector<std::byte> state_bytes(rt::Model& m, const std::string& prefix) {
  std::vector<std::byte> all;
  for (size_t i = 0; i < m.params().size(); ++i)
    if (m.manifest().params[i].name.starts_with(prefix)) {
      auto b = m.params()[i].bytes();
      all.insert(all.end(), b.begin(), b.end());
    }
  return all;
}

std::vector<float> snapshot(rt::Model& m, const std::string& prefix) {
  std::vector<float> all;
  for (size_t i = 0; i < m.params().size(); ++i)
    if (m.manifest().params[i].name.starts_with(prefix))
      for (float v : m.params()[i].values<float>()) all.push_back(v);
  return all;
}

rt::Tensor images(int64_t batch) {
  rt::Tensor x(rt::DType::f32, {batch, 1, 28, 28});
  auto v = x.values<float>();
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(0.5 + 0.5 * std::sin(0.37 * static_cast<double>(i)));
  return x;
}

}  // namespace

TEST_CASE("gan: the compiled discriminator and generator steps equal the reference", "[gan]") {
  for (const char* loss : {"non_saturating", "least_squares", "hinge", "minimax"}) {
    INFO(loss);
    Gan gan = compile_dcgan(4, loss);
    gan.compiled.model->init(3);
    rt::Tensor x = images(4), key = rt::Tensor::from<int64_t>({}, {17}), lr = rt::Tensor::from<float>({}, {0.01f});
    check_step(gan, *gan.graphs.d_step, "d_step", {{"x", &x}, {"key", &key}, {"lr", &lr}});
    check_step(gan, *gan.graphs.g_step, "g_step", {{"key", &key}, {"lr", &lr}});
  }
}

TEST_CASE("gan: each step updates its own model, the generator's step moves D's running statistics only", "[gan]") {
  Gan gan = compile_dcgan(8, "non_saturating");
  rt::Model& m = *gan.compiled.model;
  m.init(1);
  rt::Tensor x = images(8), key = rt::Tensor::from<int64_t>({}, {2}), lr = rt::Tensor::from<float>({}, {0.01f});
  auto g0 = snapshot(m, "generator."), d0 = snapshot(m, "discriminator.net.5.weight");
  run(m, "d_step", {{"x", &x}, {"key", &key}, {"lr", &lr}});
  CHECK(snapshot(m, "generator.") == g0);
  CHECK(snapshot(m, "discriminator.net.5.weight") != d0);
  auto d1 = snapshot(m, "discriminator.net.5.weight"), bn1 = snapshot(m, "discriminator.net.3.running_mean");
  run(m, "g_step", {{"key", &key}, {"lr", &lr}});
  CHECK(snapshot(m, "discriminator.net.5.weight") == d1);
  CHECK(snapshot(m, "discriminator.net.3.running_mean") != bn1);
  CHECK(snapshot(m, "generator.") != g0);
}

TEST_CASE("gan: a step repeats bit for bit from the same parameters and key, another key draws other noise", "[gan]") {
  Gan gan = compile_dcgan(4, "non_saturating");
  rt::Model& m = *gan.compiled.model;
  rt::Tensor x = images(4), lr = rt::Tensor::from<float>({}, {0.01f});
  auto loss_after = [&](int64_t k) {
    m.init(5);
    rt::Tensor key = rt::Tensor::from<int64_t>({}, {k});
    return run(m, "d_step", {{"x", &x}, {"key", &key}, {"lr", &lr}})[0].values<float>()[0];
  };
  float a = loss_after(9), b = loss_after(9), c = loss_after(10);
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("gan: a generator whose images do not fit the discriminator is reported", "[gan]") {
  auto gen = load_member("generator", 4), disc = load_member("discriminator", 8);
  Diagnostics diags;
  CHECK_FALSE(build_gan(*gen, *disc, {}, {"dcgan.stag", 8, 1}, diags));
  CHECK_THAT(diags.render(), Catch::Contains("dcgan.stag:8:1") && Catch::Contains("makes f32[4,1,28,28]") &&
                                 Catch::Contains("takes f32[8,1,28,28]"));
}

TEST_CASE("gan: the pair step is the discriminator step then the generator step, bit for bit", "[gan]") {
  Gan gan = compile_dcgan_pair(8);
  rt::Model& m = *gan.compiled.model;
  rt::Tensor lr_d = rt::Tensor::from<float>({}, {2e-3f}), lr_g = rt::Tensor::from<float>({}, {1e-3f});
  std::vector<rt::Tensor> xs;
  for (int s = 0; s < 4; ++s) {
    xs.push_back(images(8));
    for (float& v : xs.back().values<float>()) v = std::fmod(v + 0.3f * static_cast<float>(s), 1.f);
  }
  // Every output of every step (the pair's are d_step's, then g_step's), in order.
  auto train = [&](bool pair) {
    m.init(11);
    std::vector<float> outputs;
    auto keep = [&](const std::vector<rt::Tensor>& out) {
      for (const auto& t : out) outputs.insert(outputs.end(), t.values<float>().begin(), t.values<float>().end());
    };
    for (size_t s = 0; s < xs.size(); ++s) {
      rt::Tensor key = rt::Tensor::from<int64_t>({}, {static_cast<int64_t>(40 + s)});
      if (pair) {
        keep(run(m, "pair_step", {{"x", &xs[s]}, {"key", &key}, {"lr", &lr_d}, {"lr_g", &lr_g}}));
      } else {
        keep(run(m, "d_step", {{"x", &xs[s]}, {"key", &key}, {"lr", &lr_d}}));
        keep(run(m, "g_step", {{"key", &key}, {"lr", &lr_g}}));
      }
    }
    return std::pair{outputs, state_bytes(m, "")};
  };
  auto [apart_out, apart_state] = train(false);
  auto [pair_out, pair_state] = train(true);
  auto moved_g = state_bytes(m, "generator."), moved_d = state_bytes(m, "discriminator.");
  REQUIRE(apart_out.size() == pair_out.size());
  CHECK(std::memcmp(apart_out.data(), pair_out.data(), apart_out.size() * sizeof(float)) == 0);
  CHECK(apart_state == pair_state);
  // Both models trained: equal states are not two unchanged ones.
  m.init(11);
  CHECK(state_bytes(m, "generator.") != moved_g);
  CHECK(state_bytes(m, "discriminator.") != moved_d);
}



TEST_CASE("gan: a pair step whose discriminator half is not finite changes nothing", "[gan]") {
  Gan gan = compile_dcgan_pair(8);
  rt::Model& m = *gan.compiled.model;
  m.init(2);
  rt::Tensor x = images(8), key = rt::Tensor::from<int64_t>({}, {3}), lr = rt::Tensor::from<float>({}, {1e-3f});
  x.values<float>()[5] = NAN;
  auto before = state_bytes(m, "");
  auto out = run(m, "pair_step", {{"x", &x}, {"key", &key}, {"lr", &lr}, {"lr_g", &lr}});
  const auto& spec = m.manifest().function("pair_step");
  for (size_t i = 0; i < spec.outputs.size(); ++i)
    if (spec.outputs[i].name == "nonfinite") CHECK(out[i].values<float>()[0] == 1.f);
  CHECK(state_bytes(m, "") == before);
}
