// The catalog's recurrent models (char_rnn, lstm_lm, gru_lm) lowered with a scan per layer
// against their unrolled form (--unroll): compiled, the loss, the outputs and every parameter's
// gradient agree within f32 tolerance in training mode (dropout active, the same masks); the
// scanned form's kernel count does not grow with the sequence length.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <cstring>
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
// with one seed (or taken by name from `like`, initialised so) and the same inputs.
std::map<std::string, std::vector<double>> run(const Graph& g, const Graph* like = nullptr) {
  CompiledModel c = compile_jit(g);
  c.model->init(7);
  if (like) {
    CompiledModel source = compile_jit(*like);
    source.model->init(7);
    for (const auto& p : c.model->manifest().params) {
      const rt::Tensor& from = source.model->param(p.name);
      rt::Tensor& to = c.model->param(p.name);
      REQUIRE(from.nbytes() == to.nbytes());
      std::memcpy(to.data(), from.data(), static_cast<size_t>(to.nbytes()));
    }
  }
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

// PyTorch's GRU written by hand in the language: a block with the layer's parameter names whose
// forward is a `for` loop over the sequence.
const char* kUserGru = R"(
block MyGRU(input_size, hidden_size) {
  param weight_ih_l0: f32[3 * hidden_size, input_size]
  param weight_hh_l0: f32[3 * hidden_size, hidden_size]
  param bias_ih_l0: f32[3 * hidden_size]
  param bias_hh_l0: f32[3 * hidden_size]
  forward(x) {
    H = hidden_size
    h = constant(f32[B, H], value=[0])
    for xt in x along 1 {
      xr, xz, xn = split(xt @ transpose(weight_ih_l0, perm=[1, 0]) + bias_ih_l0, axis=1, sizes=[H, H, H])
      hr, hz, hn = split(h @ transpose(weight_hh_l0, perm=[1, 0]) + bias_hh_l0, axis=1, sizes=[H, H, H])
      r = sigmoid(xr + hr)
      z = sigmoid(xz + hz)
      n = tanh(xn + r * hn)
      h = (1 - z) * n + z * h
      stack out = h
    }
    return out
  }
}
)";

std::string gru_model(bool user) {
  return fmt::format(R"({}
model m {{
  batch 2
  input x: f32[B, 7, 5]
  input y: i64[B, 7]
  layer rnn = {}
  layer head = Linear(6, 4)
  forward {{
    {}
    logits = head(out)
    output logits
    loss = cross_entropy(flatten(logits, start_dim=0, end_dim=1), flatten(y, start_dim=0))
  }}
}}
)", user ? kUserGru : "", user ? "MyGRU(5, 6)" : "GRU(5, 6, batch_first=true)", user ? "out = rnn(x)" : "out, h_n = rnn(x)");
}

TEST_CASE("a GRU written as a for loop trains like the built-in GRU layer (outputs and gradients)", "[scan][models][loops]") {
  auto user = load("user_gru", false, gru_model(true)), builtin = load("builtin_gru", false, gru_model(false));
  CHECK(scans(*user) >= 2);  // the forward loop and its gradient
  auto a = run(*user, builtin.get()), b = run(*builtin);
  for (const auto& [out, want] : b) {
    if (!a.count(out)) continue;  // the built-in's h_n
    const auto& got = a.at(out);
    REQUIRE(got.size() == want.size());
    double scale = 0;
    for (double v : want) scale = std::max(scale, std::fabs(v));
    size_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i) bad += !(std::fabs(got[i] - want[i]) <= 1e-5 * scale + 1e-5 * std::fabs(want[i]));
    INFO(fmt::format("output {}: {} of {} differ (scale {})", out, bad, got.size(), scale));
    CHECK(bad == 0);
  }
  for (const char* out : {"loss", "grad.rnn.weight_ih_l0", "grad.rnn.weight_hh_l0", "grad.rnn.bias_hh_l0", "grad.head.weight"})
    CHECK(a.count(out));
}

// A tanh RNN over x's 4 x 3 elements of each example: as a loop over rows around a loop over a
// row's elements, or as one loop over the flattened rows. Both stack every step's h.
std::string rnn_over_elements(bool nested) {
  std::string loops = nested ? R"(
    for xt in x along 1 {
      for v in xt along 1 {
        h = tanh(inp(reshape(v, shape=[B, 1])) + h @ w)
        stack row = h
      }
      stack rows = row along 1
    }
    hs = reshape(rows, shape=[B, 12, 5]))" : R"(
    for v in reshape(x, shape=[B, 12]) along 1 {
      h = tanh(inp(reshape(v, shape=[B, 1])) + h @ w)
      stack hs = h
    })";
  return fmt::format(R"(
model m {{
  batch 2
  input x: f32[B, 4, 3]
  input y: i64[B]
  param w: f32[5, 5] = normal(0, 0.4)
  layer inp = Linear(1, 5)
  layer head = Linear(5, 3)
  forward {{
    h = constant(f32[B, 5], value=[0]){}
    logits = head(h)
    output logits
    loss = cross_entropy(logits, y) + mean(square(hs))
  }}
}}
)", loops);
}

TEST_CASE("a loop inside a loop compiles: outputs and gradients as one loop over the flattened sequence", "[scan][models][loops]") {
  auto nested = load("nested", false, rnn_over_elements(true)), flat = load("flat", false, rnn_over_elements(false));
  const Node* outer = nullptr;
  for (const auto& n : nested->nodes)
    if (n->op == Op::scan && scans(*n->body) > 0) outer = n.get();
  REQUIRE(outer);  // the forward's loop holds the inner one (the gradient's too)
  auto a = run(*nested, flat.get()), b = run(*flat);
  for (const char* out : {"loss", "logits", "grad.w", "grad.inp.weight", "grad.inp.bias", "grad.head.weight"}) {
    INFO(out);
    REQUIRE(a.count(out));
    REQUIRE(a.at(out).size() == b.at(out).size());
    for (size_t i = 0; i < a.at(out).size(); ++i) CHECK(a.at(out)[i] == Approx(b.at(out)[i]).epsilon(1e-4).margin(1e-6));
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

// Dropout of each step's x * w in a loop: the loss sum(s) + sum(kept) with s the running sum of
// the kept values, so that d loss / d w_f = 2 sum_{b,t} kept[b,t,f] / w_f through the carry and
// the stacked output alike.
const char* kDropoutLoop = R"(
model m {
  batch 2
  input x: f32[B, 6, 3]
  param w: f32[3] = normal(1, 0.2)
  forward {
    s = constant(f32[B, 3], value=[0])
    for xt in x along 1 {
      d = dropout(xt * w, p=0.4)
      s = s + d
      stack kept = d
    }
    output kept
    loss = sum(s) + sum(kept)
  }
}
)";

TEST_CASE("dropout in a loop: the gradient draws the forward masks and scanned equals unrolled", "[scan][models][loops]") {
  auto scanned = load("dropout_loop", false, kDropoutLoop), unrolled = load("dropout_loop", true, kDropoutLoop);
  CHECK(scans(*scanned) >= 2);
  CHECK(scans(*unrolled) == 0);
  auto a = run(*scanned), b = run(*unrolled);
  for (const char* out : {"loss", "kept", "grad.w"}) {
    INFO(out);
    REQUIRE(a.count(out));
    REQUIRE(a.at(out).size() == b.at(out).size());
    for (size_t i = 0; i < a.at(out).size(); ++i) CHECK(a.at(out)[i] == Approx(b.at(out)[i]).epsilon(1e-5).margin(1e-6));
  }
  CompiledModel c = compile_jit(*scanned);
  c.model->init(7);
  auto w = c.model->param("w").values<float>();
  const auto& kept = a.at("kept");  // [2, 6, 3]
  size_t zeros = 0;
  for (size_t f = 0; f < 3; ++f) {
    double sum = 0;
    for (size_t bt = 0; bt < 12; ++bt) sum += kept[bt * 3 + f], zeros += kept[bt * 3 + f] == 0;
    CHECK(a.at("grad.w")[f] * w[f] == Approx(2 * sum).epsilon(1e-4));
  }
  CHECK(zeros > 0);
  CHECK(zeros < 36);
}
