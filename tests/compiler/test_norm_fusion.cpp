// Batch norm's training kernels against the reference interpreter (f64): the one-pass shifted
// statistics on data far from zero, and the backward of a residual block (batch norm, ReLU,
// residual add, ReLU) as fusion plans it: its normalised input and ReLU gradient computed in
// each reader rather than stored, and its two per-channel sums in one pass over the data.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <map>

#include "compiler/autodiff/autodiff.h"
#include "compiler/jit/jit_model.h"
#include "ir/builder.h"
#include "ir/random.h"
#include "ir/reference.h"
#include "runtime/thread_pool.h"
#include "tests/compiler/isa_paths.h"
#include "tests/util.h"

using namespace stag;

namespace {

// Standard normals scaled by `scale` around `offset`, stream `stream`.
std::vector<double> normals(int64_t n, int64_t stream, double offset = 0, double scale = 1) {
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(static_cast<double>(static_cast<float>(offset + scale * random_standard_normal(3, stream, i))));
  return v;
}

Value* batch_norm(Builder& b, Value* x, Value* gamma, Value* beta, Value* stats) {
  return b.create(Op::batch_norm, {x, gamma, beta, stats, stats}, {{"training", true}})[0];
}

// One BasicBlock's tail as ResNet has it, x -> relu(bn2(relu(bn1(x)) * s) + x), scored by
// sum(out * k) so that the gradient flowing back is random. Parameters: x, the batch norms'
// gamma and beta.
std::unique_ptr<Graph> residual_block(const Dims& xd) {
  auto g = std::make_unique<Graph>("block");
  Builder b(*g);
  Dims cd{xd[1]};
  Value* x = b.parameter("x", {DType::f32, xd});
  Value* stats = b.constant({DType::f32, cd}, Floats(static_cast<size_t>(xd[1]), 0.5));
  auto p = [&](const std::string& name) { return b.parameter(name, {DType::f32, cd}); };
  Value* h = b.relu({batch_norm(b, x, p("g1"), p("b1"), stats)});
  Value* s = b.constant({DType::f32, {xd[1], 1, 1}}, normals(xd[1], 7, 1, 0.3));
  Value* y = batch_norm(b, b.mul({h, s}), p("g2"), p("b2"), stats);
  Value* out = b.relu({b.add({y, x})});
  Value* k = b.constant({DType::f32, xd}, normals(*checked_numel(xd), 8));
  b.output("loss", b.sum({b.mul({out, k})}));
  Diagnostics diags;
  auto step = differentiate(*g, "loss", diags);
  INFO(diags.render());
  REQUIRE(step);
  return step;
}

// Runs every output of `g` compiled (default passes) and interpreted on the same parameters
// (parameter k: normals of stream k around `offset`); f32 against f64 within `tol` of each
// output's scale.
kir::Program check_outputs(const Graph& g, double offset, double tol, int threads) {
  CompiledModel c = compile_jit(g, {.opt_level = 2, .profile = false, .passes = {}});
  std::map<std::string, RefTensor> feeds;
  const auto& specs = c.model->manifest().params;
  for (size_t k = 0; k < specs.size(); ++k) {
    rt::Tensor& t = c.model->params()[k];
    std::vector<double> v = normals(t.numel(), static_cast<int64_t>(k), specs[k].name == "x" ? offset : 0.5);
    for (int64_t i = 0; i < t.numel(); ++i) t.values<float>()[i] = static_cast<float>(v[static_cast<size_t>(i)]);
    feeds[specs[k].name] = RefTensor(g.find(specs[k].name)->type, v);
  }
  stag_set_num_threads(threads);
  auto got = c.model->run("forward", {});
  stag_set_num_threads(0);
  RefResult want = interpret(g, feeds);
  const auto& outs = c.model->manifest().function("forward").outputs;
  for (size_t o = 0; o < outs.size(); ++o) {
    INFO(fmt::format("{} threads {}", outs[o].name, threads));
    REQUIRE(test::first_mismatch(test::to_doubles(got[o]), want.outputs.at(outs[o].name).data, tol) == "");
  }
  return std::move(c.program);
}

// The kernels of the program's forward that compute `sums` sums (two: a shared pass).
int kernels_with_sums(const kir::Program& p, const Graph& g, int sums) {
  int n = 0;
  for (const auto& k : p.functions.back().kernels) {
    int here = 0;
    for (const auto& name : k.nodes) {
      const Value* v = g.find(name);
      here += v && v->def->op == Op::sum;
    }
    n += here == sums;
  }
  return n;
}

}  // namespace

TEST_CASE("batch norm's one-pass statistics hold on data far from zero", "[norm][codegen]") {
  // Mean 1000, deviation 0.01: the unshifted sum of squares would lose every digit of the
  // variance in f32 (1e6 beside 1e-4); shifted by a sample it keeps them.
  Dims xd{6, 3, 7, 9};
  Graph g("stats");
  Builder b(g);
  Value* x = b.parameter("x", {DType::f32, xd});
  Value* one = b.constant({DType::f32, {3}}, Floats(3, 1.0));
  auto r = b.create(Op::batch_norm, {x, one, b.constant({DType::f32, {3}}, Floats(3, 0.0)), one, one}, {{"training", true}});
  b.output("y", r[0]);
  b.output("mean", r[1]);
  b.output("var", r[2]);
  for (int threads : {1, 2}) {
    CompiledModel c = compile_jit(g, {.opt_level = 2, .profile = false, .passes = {}});
    rt::Tensor& t = c.model->params()[0];
    std::vector<double> v = normals(t.numel(), 4, 1000, 0.01);
    for (int64_t i = 0; i < t.numel(); ++i) t.values<float>()[i] = static_cast<float>(v[static_cast<size_t>(i)]);
    stag_set_num_threads(threads);
    auto got = c.model->run("forward", {});
    stag_set_num_threads(0);
    RefResult want = interpret(g, {{"x", RefTensor(x->type, v)}});
    auto var = test::to_doubles(got[2]), y = test::to_doubles(got[0]);
    for (size_t ch = 0; ch < 3; ++ch) {
      double w = want.outputs.at("var").data[ch];
      INFO(fmt::format("channel {}: variance {} reference {}", ch, var[ch], w));
      REQUIRE(std::fabs(var[ch] - w) <= 1e-3 * w);
    }
    const auto& wy = want.outputs.at("y").data;
    // x itself is only known to f32's 6e-5 at 1000, a 0.006 deviation of the normalised value.
    for (size_t i = 0; i < y.size(); ++i) REQUIRE(std::fabs(y[i] - wy[i]) <= 2e-2);
  }
}

TEST_CASE("a residual block's batch norm backward: fused, one pass for both sums, equal to the reference", "[norm][fusion][grad]") {
  for (const Dims& xd : {Dims{4, 3, 7, 6}, Dims{8, 5, 5, 5}, Dims{2, 16, 14, 14}}) {
    auto step = residual_block(xd);
    for (int threads : {1, 2}) {
      kir::Program p = check_outputs(*step, 0.3, 2e-4, threads);
      // Each batch norm's sum(dy) and sum(dy * xhat) share one kernel; the loss's sum is alone.
      CHECK(kernels_with_sums(p, *step, 2) == 2);
      CHECK(kernels_with_sums(p, *step, 1) == 1);
    }
  }
}

namespace {

// x -> batch_norm(conv2d(x, w)) in training, loss = sum(relu(bn) * k): the batch norm takes its
// statistics from the convolution's planes (PlaneStats) on each of the convolution's store forms.
struct ConvBn {
  Dims x;
  int64_t out_channels, kernel, padding;
};

std::unique_ptr<Graph> conv_batch_norm(const ConvBn& cb, bool differentiated) {
  auto g = std::make_unique<Graph>("conv_bn");
  Builder b(*g);
  Value* x = b.parameter("x", {DType::f32, cb.x});
  Value* w = b.parameter("w", {DType::f32, {cb.out_channels, cb.x[1], cb.kernel, cb.kernel}});
  Value* y = b.create(Op::conv2d, {x, w}, {{"padding", Ints{cb.padding, cb.padding}}})[0];
  Dims cd{cb.out_channels};
  Value* stats = b.constant({DType::f32, cd}, Floats(static_cast<size_t>(cb.out_channels), 0.5));
  auto r = b.create(Op::batch_norm, {y, b.parameter("g", {DType::f32, cd}), b.parameter("beta", {DType::f32, cd}), stats, stats},
                    {{"training", true}});
  if (!differentiated) {
    b.output("y", y);
    b.output("mean", r[1]);
    b.output("var", r[2]);
    return g;
  }
  Value* k = b.constant(y->type, normals(*checked_numel(y->type.dims), 8));
  b.output("loss", b.sum({b.mul({b.relu({r[0]}), k})}));
  Diagnostics diags;
  auto step = differentiate(*g, "loss", diags);
  INFO(diags.render());
  REQUIRE(step);
  return step;
}

int kernels_named(const kir::Program& p, const std::string& name) {
  int n = 0;
  for (const auto& k : p.functions.back().kernels) n += k.name.find(name) != std::string::npos;
  return n;
}

// By image, the grid as the output (a 1 x 1 kernel), every image's planes side by side.
const std::vector<ConvBn> kConvBnCases = {{{4, 3, 9, 11}, 5, 3, 0}, {{3, 4, 6, 5}, 6, 1, 0}, {{3, 8, 7, 7}, 72, 3, 1}};

}  // namespace

TEST_CASE("a batch norm after a convolution combines the statistics of its planes", "[norm][conv][codegen]") {
  // Inputs near 1000 with deviation 0.01: the statistics must keep the variance's digits. The
  // compiled convolution's own output in f64 is the oracle (its rounding is not the statistics').
  for (const ConvBn& cb : kConvBnCases) {
    auto g = conv_batch_norm(cb, false);
    for (Isa isa : test::host_paths()) {
      test::ForcedIsa forced(isa);
      for (int threads : {1, 2}) {
        CompiledModel c = compile_jit(*g, {.opt_level = 2, .profile = false, .passes = {}});
        for (size_t k = 0; k < 2; ++k) {
          rt::Tensor& t = c.model->params()[k];
          std::vector<double> v = k == 0 ? normals(t.numel(), 4, 1000, 0.01) : normals(t.numel(), 5, 0, 0.3);
          for (int64_t i = 0; i < t.numel(); ++i) t.values<float>()[i] = static_cast<float>(v[static_cast<size_t>(i)]);
        }
        stag_set_num_threads(threads);
        auto got = c.model->run("forward", {});
        stag_set_num_threads(0);
        CHECK(kernels_named(c.program, "batch_norm_stats") == 0);
        CHECK(kernels_named(c.program, "batch_norm_combine") == 1);
        auto y = test::to_doubles(got[0]), mean = test::to_doubles(got[1]), var = test::to_doubles(got[2]);
        int64_t C = cb.out_channels, inner = static_cast<int64_t>(y.size()) / (cb.x[0] * C);
        for (int64_t ch = 0; ch < C; ++ch) {
          double s = 0, s2 = 0, n = static_cast<double>(cb.x[0] * inner);
          for (int64_t b = 0; b < cb.x[0]; ++b)
            for (int64_t i = 0; i < inner; ++i) s += y[static_cast<size_t>((b * C + ch) * inner + i)];
          for (int64_t b = 0; b < cb.x[0]; ++b)
            for (int64_t i = 0; i < inner; ++i) s2 += std::pow(y[static_cast<size_t>((b * C + ch) * inner + i)] - s / n, 2);
          INFO(fmt::format("{} channel {} on {}, {} threads: mean {} ({}) variance {} ({})", fmt::join(cb.x, "x"), ch, isa_name(isa), threads,
                           mean[ch], s / n, var[ch], s2 / n));
          REQUIRE(std::fabs(mean[ch] - s / n) <= 1e-6 * std::fabs(s / n) + 1e-4 * std::sqrt(s2 / n));
          REQUIRE(std::fabs(var[ch] - s2 / n) <= 1e-3 * s2 / n + 1e-12);
        }
      }
    }
  }
}

TEST_CASE("a batch norm on a convolution's plane statistics: gradients equal the reference", "[norm][conv][grad]") {
  for (const ConvBn& cb : kConvBnCases) {
    auto step = conv_batch_norm(cb, true);
    for (Isa isa : test::host_paths()) {
      test::ForcedIsa forced(isa);
      for (int threads : {1, 2}) {
        INFO(fmt::format("{} on {}", fmt::join(cb.x, "x"), isa_name(isa)));
        kir::Program p = check_outputs(*step, 0.3, 2e-4, threads);
        CHECK(kernels_named(p, "batch_norm_combine") == 1);
      }
    }
  }
}

namespace {

// A transformer block's layer norm on a sequence, y = layer_norm(x, g, beta) @ w + bias, scored
// by sum(tanh(y) * k) (so that y's gradient is no constant): the gradients of g, beta and bias
// are sums over the batch and sequence axes.
std::unique_ptr<Graph> sequence_layer_norm(const Dims& xd, int64_t out) {
  auto g = std::make_unique<Graph>("seq_ln");
  Builder b(*g);
  Dims ed{xd.back()};
  Value* x = b.parameter("x", {DType::f32, xd});
  Value* h = b.layer_norm({x, b.parameter("g", {DType::f32, ed}), b.parameter("beta", {DType::f32, ed})}, {});
  Value* w = b.parameter("w", {DType::f32, {xd.back(), out}});
  Value* y = b.add({b.matmul({h, w}), b.parameter("bias", {DType::f32, {out}})});
  Value* k = b.constant(y->type, normals(*checked_numel(y->type.dims), 9));
  b.output("loss", b.sum({b.mul({b.tanh({y}), k})}));
  Diagnostics diags;
  auto step = differentiate(*g, "loss", diags);
  INFO(diags.render());
  REQUIRE(step);
  return step;
}

}  // namespace

TEST_CASE("a layer norm's weight and bias gradients: one pass over the rows, split by columns, equal to the reference", "[norm][fusion][grad]") {
  for (const Dims& xd : {Dims{4, 9, 128}, Dims{3, 5, 40}, Dims{2, 3, 7}}) {
    auto step = sequence_layer_norm(xd, 48);
    for (int threads : {1, 2}) {
      kir::Program p = check_outputs(*step, 0.3, 2e-4, threads);
      // The layer norm's sum(dy * xhat) and sum(dy) share a kernel; the linear's bias gradient
      // and the loss are alone.
      CHECK(kernels_with_sums(p, *step, 2) == 1);
      CHECK(kernels_with_sums(p, *step, 1) == 2);
      // Columns in blocks of at most half the width (from 32 columns on): two threads share it.
      for (const auto& kernel : p.functions.back().kernels) {
        int sums = 0;
        for (const auto& name : kernel.nodes) sums += step->find(name) && step->find(name)->def->op == Op::sum;
        if (sums == 2) CHECK(kernel.extent == (xd.back() >= 32 ? 2 : 1));
      }
    }
  }
}

