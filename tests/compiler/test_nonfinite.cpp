// A compiled train step whose loss or gradients are not finite changes nothing and says which
// value failed, through the full pass pipeline (so no simplification may fold the check away).

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "compiler/jit/jit_model.h"
#include "compiler/train/train_step.h"
#include "ir/builder.h"

using namespace stag;

namespace {

// loss = sum(w1 * x) + sum(sqrt(w2)): a NaN or inf in x spoils the loss and w1's gradient only;
// a zero in w2 keeps the loss finite but makes w2's gradient infinite.
std::unique_ptr<Graph> step_graph(const std::string& optimizer) {
  Graph g("nonfinite");
  Builder b(g);
  Value* x = b.input("x", {DType::f32, {4}});
  Value* w1 = b.parameter("w1", {DType::f32, {4}});
  Value* w2 = b.parameter("w2", {DType::f32, {4}});
  b.output("loss", b.add({b.sum({b.mul({w1, x})}), b.sum({b.sqrt({w2})})}));
  OptimizerConfig opt;
  opt.kind = optimizer;
  opt.momentum = optimizer == "sgd" ? 0.9 : 0;
  Diagnostics diags;
  auto step = build_train_step(g, opt, diags);
  INFO(diags.render());
  REQUIRE(step);
  return step;
}

struct Stepper {
  CompiledModel c;
  rt::Tensor x = rt::Tensor::from<float>({4}, {0.5f, -1.f, 2.f, 0.25f});
  rt::Tensor lr = rt::Tensor::from<float>({}, {0.01f});

  explicit Stepper(const Graph& step) : c(compile_jit(std::vector<std::pair<std::string, const Graph*>>{{"train_step", &step}})) {
    c.model->init(3);
    for (const char* w : {"w1", "w2"})
      for (float& v : c.model->param(w).values<float>()) v = 1.5f;
  }
  const rt::FunctionSpec& spec() const { return c.model->manifest().function("train_step"); }
  std::vector<rt::Tensor> run() {
    std::vector<const rt::Tensor*> args;
    for (const auto& in : spec().inputs) args.push_back(in.name == "lr" ? &lr : &x);
    return c.model->run("train_step", args);
  }
  int output(const std::string& name) const {
    for (size_t i = 0; i < spec().outputs.size(); ++i)
      if (spec().outputs[i].name == name) return static_cast<int>(i);
    return -1;
  }
  std::vector<std::vector<std::byte>> state() {
    std::vector<std::vector<std::byte>> s;
    for (auto& p : c.model->params()) s.emplace_back(p.bytes().begin(), p.bytes().end());
    return s;
  }
  // The flag of the entry `name` of kNonfiniteAttr's list, as the runtime reads the manifest.
  float flag(const std::vector<rt::Tensor>& out, const std::string& name) const {
    std::string names = nlohmann::json::parse(c.model->manifest().attrs.at(kNonfiniteAttr)).get<std::string>();
    names += ",";
    auto flags = out[output("nonfinite")].values<float>();
    size_t k = 0;
    for (size_t start = 0, comma; (comma = names.find(',', start)) != std::string::npos; start = comma + 1, ++k)
      if (names.substr(start, comma - start) == name) return k < flags.size() ? flags[k] : -1;
    return -1;
  }
};

}  // namespace

TEST_CASE("a step with a NaN or inf loss or gradient leaves parameters and optimizer state bit-identical", "[train][nonfinite]") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (const char* optimizer : {"adam", "sgd"}) {
    INFO(optimizer);
    auto step = step_graph(optimizer);
    Stepper s(*step);
    REQUIRE(s.output("nonfinite") >= 0);
    s.run();
    s.run();  // the optimizer state is no longer its initial zeros
    auto good = s.state();
    struct Bad {
      std::string what;
      float x2, w2;
      float loss, g1, g2;  // expected flags
    };
    for (const Bad& bad : {Bad{"NaN input", nan, 1.5f, 1, 1, 0}, Bad{"inf input", inf, 1.5f, 1, 1, 0},
                           Bad{"-inf input", -inf, 1.5f, 1, 1, 0}, Bad{"zero under sqrt", 2.f, 0.f, 0, 0, 1}}) {
      INFO(bad.what);
      float w2 = s.c.model->param("w2").values<float>()[1];
      s.x.values<float>()[2] = bad.x2;
      s.c.model->param("w2").values<float>()[1] = bad.w2;
      auto before = s.state();
      auto out = s.run();
      CHECK(s.flag(out, "loss") == bad.loss);
      CHECK(s.flag(out, "grad.w1") == bad.g1);
      CHECK(s.flag(out, "grad.w2") == bad.g2);
      CHECK(s.state() == before);
      s.x.values<float>()[2] = 2.f;
      s.c.model->param("w2").values<float>()[1] = w2;
    }
    CHECK(s.state() == good);
    // A finite step is applied, flags all zero, so the comparison above could fail.
    auto out = s.run();
    CHECK(s.state() != good);
    for (float f : out[s.output("nonfinite")].values<float>()) CHECK(f == 0);
    CHECK(s.c.model->param("optim.step").values<float>()[0] == 3.0f);
  }
}

TEST_CASE("the nonfinite flags name the loss, then every gradient", "[train][nonfinite]") {
  auto step = step_graph("adam");
  const auto* names = std::get_if<std::string>(step->attr(kNonfiniteAttr));
  REQUIRE(names);
  CHECK(names->starts_with("loss,grad."));
  CHECK(names->find("grad.w1") != std::string::npos);
  CHECK(names->find("grad.w2") != std::string::npos);
  size_t entries = static_cast<size_t>(std::count(names->begin(), names->end(), ',')) + 1;
  CHECK(entries == 3);
  const Output* out = nullptr;
  for (const auto& o : step->outputs)
    if (o.name == "nonfinite") out = &o;
  REQUIRE(out);
  CHECK(out->value->type.dims == std::vector<int64_t>{static_cast<int64_t>(entries)});
}
