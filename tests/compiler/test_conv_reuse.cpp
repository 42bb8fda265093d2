// A weight gradient reads the phase planes its forward convolution copied (compiler/lower/conv.cpp,
// phase_images) when both lay them out image by image: no second copy of the image, and
// gradients equal to the reference interpreter's
// (f64) on every ISA path the host has, on one and two threads.

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

// Standard normals of stream `stream`, rounded to f32.
std::vector<double> normals(int64_t n, int64_t stream) {
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(static_cast<double>(static_cast<float>(random_standard_normal(5, stream, i))));
  return v;
}

int64_t numel(const Type& t) { return *checked_numel(t.dims); }

struct ConvCase {
  Dims x;
  int64_t out_channels, stride, padding;
  int weight_grad_copies;  ///< the weight gradient's own phase copies: 0 when it reads the forward's
  int64_t kernel = 3;
};

// loss = sum(relu(conv2d(x, w)) * k): x's and w's gradients flow through the weight gradient
// and the data gradient of one convolution.
std::unique_ptr<Graph> conv_step(const ConvCase& cc) {
  auto g = std::make_unique<Graph>("conv");
  Builder b(*g);
  Value* x = b.parameter("x", {DType::f32, cc.x});
  Value* w = b.parameter("w", {DType::f32, {cc.out_channels, cc.x[1], cc.kernel, cc.kernel}});
  Ints s{cc.stride, cc.stride}, p{cc.padding, cc.padding};
  Value* y = b.relu({b.create(Op::conv2d, {x, w}, {{"stride", s}, {"padding", p}})[0]});
  Value* k = b.constant(y->type, normals(numel(y->type), 9));
  b.output("loss", b.sum({b.mul({y, k})}));
  Diagnostics diags;
  auto step = differentiate(*g, "loss", diags);
  INFO(diags.render());
  REQUIRE(step);
  return step;
}


// The kernels of `p`'s last function that copy an image into phase planes for a weight gradient.
int weight_grad_copies(const kir::Program& p) {
  int n = 0;
  for (const auto& k : p.functions.back().kernels)
    n += k.name.find("conv_phases") != std::string::npos && k.origin.find("conv2d_weight_grad") != std::string::npos;
  return n;
}

// The parameters of `g`, normals of stream i for the i-th.
std::map<std::string, RefTensor> feeds_of(const Graph& g) {
  std::map<std::string, RefTensor> feeds;
  int64_t i = 0;
  for (const auto& n : g.nodes)
    if (n->op == Op::parameter) feeds[n->result()->name] = RefTensor(n->result()->type, normals(numel(n->result()->type), i++));
  return feeds;
}

// Every output of `g` compiled on `feeds`, within `tol` of each output's scale of `want`; the
// program compiled.
kir::Program check_against(const Graph& g, const std::map<std::string, RefTensor>& feeds, const RefResult& want, int threads, double tol) {
  CompiledModel c = compile_jit(g, {.opt_level = 2, .profile = false, .passes = {}});
  const auto& specs = c.model->manifest().params;
  for (size_t i = 0; i < specs.size(); ++i) {
    rt::Tensor& t = c.model->params()[i];
    const auto& v = feeds.at(specs[i].name).data;
    for (int64_t j = 0; j < t.numel(); ++j) t.values<float>()[j] = static_cast<float>(v[static_cast<size_t>(j)]);
  }
  stag_set_num_threads(threads);
  auto got = c.model->run("forward", {});
  stag_set_num_threads(0);
  const auto& outs = c.model->manifest().function("forward").outputs;
  for (size_t o = 0; o < outs.size(); ++o) {
    INFO(fmt::format("{} threads {}", outs[o].name, threads));
    REQUIRE(test::first_mismatch(test::to_doubles(got[o]), want.outputs.at(outs[o].name).data, tol) == "");
  }
  return std::move(c.program);
}

}  // namespace

TEST_CASE("a weight gradient reads its forward convolution's phase planes", "[conv][grad]") {
  // Image by image (small partial sums) at stride 1 and 2: the forward's copy is read again; so
  // it is by dot products summing the images (many images' partial sums would not stay in
  // cache). Side by side (too few output channels for the dot products' threads), the weight
  // gradient's layout differs from the forward's: it copies the image itself. A 1 x 1 kernel at
  // stride 2 (a ResNet's downsample) reads one phase of four: both copies leave the rest out.
  const std::vector<ConvCase> cases = {{{4, 3, 9, 11}, 5, 1, 1, 0},   {{3, 4, 12, 10}, 6, 2, 1, 0}, {{48, 24, 8, 8}, 32, 1, 1, 0},
                                       {{64, 64, 8, 8}, 8, 1, 1, 1},  {{5, 6, 14, 14}, 12, 2, 0, 0, 1}, {{3, 4, 13, 11}, 7, 2, 0, 0, 1}};
  for (const ConvCase& cc : cases) {
    auto step = conv_step(cc);
    auto feeds = feeds_of(*step);
    RefResult want = interpret(*step, feeds);
    for (Isa isa : test::host_paths()) {
      test::ForcedIsa forced(isa);
      for (int threads : {1, 2}) {
        INFO(fmt::format("{} x {}, kernel {}, stride {}, on {}", fmt::join(cc.x, "x"), cc.out_channels, cc.kernel, cc.stride, isa_name(isa)));
        kir::Program p = check_against(*step, feeds, want, threads, 2e-5);
        CHECK(weight_grad_copies(p) == cc.weight_grad_copies);
      }
    }
  }
}
