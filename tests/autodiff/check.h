#pragma once
// Shared by the autodiff tests: random data, central finite differences on the reference
// interpreter (f64 math), and the compiled (f32) gradient graph against the reference.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <map>
#include <random>
#include <string>

#include "compiler/autodiff/autodiff.h"
#include "compiler/jit/jit_model.h"
#include "ir/reference.h"
#include "ir/verifier.h"
#include "tests/util.h"

namespace stag::test {

/// The finite-difference check's constants (central differences in f64).
constexpr double kEps = 1e-6, kRtol = 1e-3, kAtol = 1e-5;
/// Compiled f32 gradients vs the f64 reference: relative to the output's largest magnitude,
/// since f32 rounding of sums and cancellations (batch/layer norm) is absolute in that scale.
constexpr double kF32Rtol = 2e-3, kF32Atol = 2e-4;

struct Rng {
  std::mt19937_64 gen;
  explicit Rng(uint64_t seed) : gen(seed) {}
  double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(gen); }
  double normal() { return std::normal_distribution<double>(0, 1)(gen); }
  int64_t pick(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(gen); }
  bool coin() { return pick(0, 1) == 1; }
};

/// Rounded to f32 so that the compiled graph and the reference see the same numbers.
inline double f32(double v) { return static_cast<double>(static_cast<float>(v)); }

/// Largest errors seen, reported at the end of the run.
struct Worst {
  double abs = 0, rel = 0;
  std::string where;
};
inline Worst& worst_fd() {
  static Worst w;
  return w;
}

inline std::unique_ptr<Graph> differentiate_ok(const Graph& g) {
  Diagnostics diags;
  auto ad = differentiate(g, "loss", diags);
  INFO(diags.render());
  REQUIRE(ad);
  Diagnostics vd;
  bool ok = verify(*ad, vd);
  INFO(vd.render());
  REQUIRE(ok);
  return ad;
}

inline double loss_at(const Graph& g, const std::map<std::string, RefTensor>& feeds) {
  return interpret(g, feeds).outputs.at("loss").data[0];
}

/// Every element of every trainable parameter: autodiff (reference interpreter) vs central
/// differences of the forward graph's loss.
inline void check_fd(const Graph& fwd, const Graph& ad, std::map<std::string, RefTensor> feeds,
                     const std::vector<std::string>& params, const std::string& label) {
  RefResult r = interpret(ad, feeds);
  for (const auto& p : params) {
    const RefTensor& grad = r.outputs.at(grad_output_name(p));
    RefTensor& x = feeds.at(p);
    REQUIRE(grad.numel() == x.numel());
    for (int64_t i = 0; i < x.numel(); ++i) {
      double keep = x.data[i];
      x.data[i] = keep + kEps;
      double up = loss_at(fwd, feeds);
      x.data[i] = keep - kEps;
      double down = loss_at(fwd, feeds);
      x.data[i] = keep;
      double fd = (up - down) / (2 * kEps), got = grad.data[i];
      double err = std::fabs(fd - got);
      INFO(fmt::format("{}: d loss / d {}[{}]: autodiff {} finite differences {}", label, p, i, got, fd));
      CHECK(err <= kAtol + kRtol * std::fabs(fd));
      Worst& w = worst_fd();
      double rel = err / std::max(std::fabs(fd), 1e-3);
      if (rel > w.rel) w = {std::max(w.abs, err), rel, fmt::format("{} {}[{}]", label, p, i)};
      w.abs = std::max(w.abs, err);
    }
  }
}

// Copies a reference tensor's values into a runtime tensor of the same shape and dtype.
inline void fill(rt::Tensor& t, const RefTensor& r) {
  for (int64_t i = 0; i < t.numel(); ++i) switch (t.dtype()) {
      case rt::DType::f32: t.values<float>()[i] = static_cast<float>(r.data[i]); break;
      case rt::DType::f64: t.values<double>()[i] = r.data[i]; break;
      case rt::DType::i32: t.values<int32_t>()[i] = static_cast<int32_t>(r.data[i]); break;
      case rt::DType::i64: t.values<int64_t>()[i] = static_cast<int64_t>(r.data[i]); break;
      case rt::DType::b8: t.values<bool>()[i] = r.data[i] != 0; break;
    }
}

/// The gradient graph compiled to native code vs the reference, on the same parameters and
/// inputs (`feeds` holds both); every output is compared.
inline void check_compiled(const Graph& ad, const std::map<std::string, RefTensor>& feeds, const std::string& label,
                           int opt_level = 1) {
  RefResult want = interpret(ad, feeds);
  CompiledModel c = compile_jit(ad, {.opt_level = opt_level, .profile = false, .passes = {}});
  for (const auto& spec : c.model->manifest().params) fill(c.model->param(spec.name), feeds.at(spec.name));
  const auto& fn = c.model->manifest().function("forward");
  std::vector<rt::Tensor> inputs;
  for (const auto& in : fn.inputs) {
    inputs.emplace_back(in.dtype, in.shape);
    fill(inputs.back(), feeds.at(in.name));
  }
  std::vector<const rt::Tensor*> ptrs;
  for (const auto& t : inputs) ptrs.push_back(&t);
  auto outs = c.model->run("forward", ptrs);
  for (size_t o = 0; o < outs.size(); ++o) {
    const auto& ref = want.outputs.at(fn.outputs[o].name).data;
    auto got = to_doubles(outs[o]);
    REQUIRE(got.size() == ref.size());
    double scale = 0;
    for (double v : ref) scale = std::max(scale, std::fabs(v));
    size_t bad = 0;
    std::string first;
    for (size_t i = 0; i < got.size(); ++i)
      if (!(std::fabs(got[i] - ref[i]) <= kF32Atol * std::max(1.0, scale) + kF32Rtol * std::fabs(ref[i])) && bad++ == 0)
        first = fmt::format("element {}: compiled {} reference {}", i, got[i], ref[i]);
    INFO(fmt::format("{}: output {}: {} of {} elements differ; first {}", label, fn.outputs[o].name, bad, got.size(), first));
    CHECK(bad == 0);
  }
}

}  // namespace stag::test
