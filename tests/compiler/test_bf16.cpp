// bf16 products (PyTorch's CPU autocast): every micro-kernel path the host has, forced with
// STAG_ISA, against the reference interpreter multiplying the same bf16-rounded operands. The
// operands are rounded identically on both sides, so the tolerance is f32's: sums of K exact
// products round within about sqrt(K) ulps. A kernel that ignored the precision would be off
// by bf16's rounding (about 2^-9 of each operand) and fail.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "compiler/autodiff/autodiff.h"
#include "compiler/codegen/gemm.h"
#include "compiler/jit/jit_model.h"
#include "compiler/passes/pass.h"
#include "compiler/target/host.h"
#include "ir/builder.h"
#include "ir/random.h"
#include "ir/reference.h"
#include "runtime/cpu.h"
#include "runtime/error.h"
#include "runtime/thread_pool.h"
#include "tests/compiler/isa_paths.h"
#include "tests/compiler/reference_check.h"
#include "tests/util.h"

using namespace stag;
using test::ForcedIsa;
using test::host_paths;

namespace {

const NamedAttrs kBf16 = {{"precision", std::string("bf16")}};

// Compiles g (one output) and checks it against the reference at `threads`; returns how many
// of its kernels are bf16 products.
int check_against_reference(const Graph& g, double K, int threads, const std::string& what) {
  CompiledModel compiled = compile_jit(g);
  int bf16_products = 0;
  for (const auto& k : compiled.program.functions.back().kernels)
    bf16_products += k.gemm && k.gemm->precision == kir::Gemm::Precision::bf16;
  test::check_against_reference(g, compiled, 23, K, threads, fmt::format("{} on {}", what, isa_name(host_isa())));
  return bf16_products;
}

std::unique_ptr<Graph> matmul_graph(int64_t M, int64_t N, int64_t K, bool ta, bool tb) {
  auto g = std::make_unique<Graph>("bf16_matmul");
  Builder b(*g);
  Value* a = b.input("a", {DType::f32, ta ? Dims{K, M} : Dims{M, K}});
  Value* w = b.input("b", {DType::f32, tb ? Dims{N, K} : Dims{K, N}});
  NamedAttrs attrs = kBf16;
  attrs.push_back({"transpose_a", ta});
  attrs.push_back({"transpose_b", tb});
  b.output("y", b.matmul({a, w}, attrs));
  return g;
}

// A bf16 convolution's attributes, which its gradients' graphs take too.
NamedAttrs conv_attrs(const Ints& stride, const Ints& padding) {
  NamedAttrs attrs = kBf16;
  attrs.push_back({"stride", stride});
  attrs.push_back({"padding", padding});
  return attrs;
}

// g: y = conv2d(x, w); returns y.
Value* conv_graph(Graph& g, const Dims& x, const Dims& w, const NamedAttrs& attrs) {
  Builder b(g);
  Value* y = b.conv2d({b.input("x", {DType::f32, x}), b.input("w", {DType::f32, w})}, attrs);
  b.output("y", y);
  return y;
}

// g: dx = conv_transpose2d(dy, w), the convolution's data gradient.
void conv_transpose_graph(Graph& g, const Type& dy, const Dims& w, const NamedAttrs& attrs) {
  Builder b(g);
  b.output("dx", b.conv_transpose2d({b.input("dy", dy), b.input("w", {DType::f32, w})}, attrs));
}

}  // namespace

TEST_CASE("bf16 matrix products multiply the rounded operands on every path the host has", "[bf16][gemm]") {
  for (Isa isa : host_paths()) {
    ForcedIsa forced(isa);
    GemmTile t = host_gemm_tile();
    int64_t MR = t.rows, NR = t.columns(), KC = t.depth;
    // Odd depths leave the last pair of k half empty; the panel's depth edges and the tile's.
    std::vector<std::array<int64_t, 3>> sizes = {{1, 1, 1}, {MR + 1, NR - 1, 3}, {2 * MR + 3, NR + 1, KC + 1},
                                                 {67, 2 * NR + 5, 2 * KC + 9}, {MR - 1, 100, KC}};
    int turn = 0;
    for (auto [M, N, K] : sizes) {
      bool ta = turn % 2, tb = turn / 2 % 2;
      auto g = matmul_graph(M, N, K, ta, tb);
      CHECK(check_against_reference(*g, static_cast<double>(K), 1 + turn % 2, fmt::format("{}x{}x{} ta {} tb {}", M, N, K, ta, tb)) == 1);
      ++turn;
    }
  }
}

TEST_CASE("a bf16 product of a batched A and one 2-D B multiplies the rounded operands as one product", "[bf16][gemm]") {
  for (Isa isa : host_paths()) {
    ForcedIsa forced(isa);
    for (bool tb : {false, true}) {
      Graph g("bf16_stacked");
      Builder b(g);
      NamedAttrs attrs = kBf16;
      attrs.push_back({"transpose_b", tb});
      Value* a = b.input("a", {DType::f32, {4, 21, 37}});
      b.output("y", b.matmul({a, b.input("b", {DType::f32, tb ? Dims{70, 37} : Dims{37, 70}})}, attrs));
      CHECK(check_against_reference(g, 37, 2, fmt::format("4 x 21 x 37 by 37 x 70, tb {}", tb)) == 1);
    }
  }
}

TEST_CASE("bf16 convolutions and their gradients multiply the rounded operands", "[bf16][conv]") {
  for (Isa isa : host_paths()) {
    ForcedIsa forced(isa);
    // Strided (phase planes through lines), stride 1, patches gathered (a kernel as wide as
    // the image), the transposed convolution and the weight gradient.
    // The last one's weight gradient runs in loops, which round their factors too.
    struct Case { Dims x, w; Ints stride, padding; int weight_grad_products; };
    for (const Case& c : {Case{{3, 5, 9, 11}, {70, 5, 3, 3}, {2, 2}, {1, 1}, 1}, Case{{2, 3, 8, 7}, {16, 3, 5, 3}, {1, 1}, {2, 1}, 1},
                          Case{{2, 2, 12, 12}, {4, 2, 10, 10}, {1, 1}, {0, 0}, 0}}) {
      Graph g("bf16_conv");
      NamedAttrs attrs = conv_attrs(c.stride, c.padding);
      Value* y = conv_graph(g, c.x, c.w, attrs);
      double K = static_cast<double>(c.w[1] * c.w[2] * c.w[3]);
      CHECK(check_against_reference(g, K, 2, "conv2d " + dims_to_string(c.x)) >= 1);

      Graph gt("bf16_conv_transpose");
      conv_transpose_graph(gt, y->type, c.w, attrs);
      CHECK(check_against_reference(gt, static_cast<double>(c.w[0] * c.w[2] * c.w[3]), 1, "conv_transpose2d " + dims_to_string(c.x)) >= 1);

      Graph gw("bf16_weight_grad");
      Builder bw(gw);
      Value* xw = bw.input("x", {DType::f32, c.x});
      Value* dyw = bw.input("dy", y->type);
      attrs.push_back({"kernel", Ints{c.w[2], c.w[3]}});
      bw.output("dw", bw.conv2d_weight_grad({xw, dyw}, attrs));
      double Kw = static_cast<double>(c.x[0] * y->type.dims[2] * y->type.dims[3]);
      CHECK(check_against_reference(gw, Kw, 2, "conv2d_weight_grad " + dims_to_string(c.x)) == c.weight_grad_products);
    }
  }
}

TEST_CASE("sub-pixel interleaves and weight-gradient partial sums in f32 and bf16 on every path the host has", "[bf16][conv]") {
  // The discriminator's second layer (4 x 4, stride 2, padding 1) at a smaller batch: its data
  // gradient is one stride-1 product a phase, interleaved into the output a row at a time; an
  // odd image (phases with fewer outputs), output_padding and stride 3 (phases no tap reaches).
  // Its weight gradient, and an odd one, add per-image partial products by column blocks.
  struct Case { Dims x, w; Ints stride, padding; };
  for (Isa isa : host_paths()) {
    ForcedIsa forced(isa);
    for (bool bf16 : {false, true})
      for (const Case& c : {Case{{3, 16, 14, 14}, {32, 16, 4, 4}, {2, 2}, {1, 1}}, Case{{2, 9, 11, 9}, {12, 9, 3, 4}, {2, 3}, {1, 0}}}) {
        NamedAttrs attrs = bf16 ? conv_attrs(c.stride, c.padding) : NamedAttrs{{"stride", c.stride}, {"padding", c.padding}};
        Graph g("conv");
        Value* y = conv_graph(g, c.x, c.w, attrs);
        std::string what = fmt::format("{} bf16 {}", dims_to_string(c.x), bf16);
        Graph gt("subpixel");
        conv_transpose_graph(gt, y->type, c.w, attrs);
        Graph gw("partial_sums");
        Builder bw(gw);
        Value* xw = bw.input("x", {DType::f32, c.x});
        Value* dyw = bw.input("dy", y->type);
        attrs.push_back({"kernel", Ints{c.w[2], c.w[3]}});
        bw.output("dw", bw.conv2d_weight_grad({xw, dyw}, attrs));
        for (int threads : {1, 2}) {
          CHECK(check_against_reference(gt, static_cast<double>(c.w[0] * c.w[2] * c.w[3]), threads, "conv_transpose2d " + what) == (bf16 ? 1 : 0));
          CHECK(check_against_reference(gw, static_cast<double>(c.x[0] * y->type.dims[2] * y->type.dims[3]), threads, "weight grad " + what) ==
                (bf16 ? 1 : 0));
        }
        CompiledModel ct = compile_jit(gt), cw = compile_jit(gw);
        auto has = [](const CompiledModel& m, const std::string& name) {
          const auto& ks = m.program.functions.back().kernels;
          return std::any_of(ks.begin(), ks.end(), [&](const kir::Kernel& k) { return k.name.find(name) != std::string::npos; });
        };
        CHECK(has(ct, "conv_transpose2d_interleave"));
        CHECK(has(cw, "conv2d_weight_grad_sum"));
      }
  }
}

TEST_CASE("a weight gradient's dy computed where its grid copy reads it, in f32 and bf16 on every path the host has", "[bf16][conv]") {
  // dy = select(x > 0, g, g * 0.2) * scale (a leaky ReLU's backward, a per-channel factor read
  // through the multi-index) is read only by the weight gradient, whose lines strategies copy
  // it onto their grid once: no kernel of its own. The DCGAN discriminator's first layer (per
  // image, partial sums) and a layer over every image's planes (merged).
  struct Case { Dims x, w; Ints stride, padding; };
  for (Isa isa : host_paths()) {
    ForcedIsa forced(isa);
    for (bool bf16 : {false, true})
      for (const Case& c : {Case{{4, 1, 28, 28}, {16, 1, 4, 4}, {2, 2}, {1, 1}}, Case{{8, 24, 9, 9}, {70, 24, 3, 3}, {1, 1}, {1, 1}}}) {
        NamedAttrs attrs = bf16 ? conv_attrs(c.stride, c.padding) : NamedAttrs{{"stride", c.stride}, {"padding", c.padding}};
        Graph probe("conv");
        Type yt = conv_graph(probe, c.x, c.w, attrs)->type;
        Graph g("fused_dy");
        Builder b(g);
        Value* x = b.input("x", {DType::f32, c.x});
        Value* pre = b.input("pre", yt);
        Value* grad = b.input("grad", yt);
        Value* scale = b.input("scale", {DType::f32, {1, c.w[0], 1, 1}});
        Value* leaky = b.select({b.gt({pre, b.scalar(0.0)}), grad, b.mul({grad, b.scalar(0.2)})});
        Value* dy = b.mul({leaky, scale});
        attrs.push_back({"kernel", Ints{c.w[2], c.w[3]}});
        b.output("dw", b.conv2d_weight_grad({x, dy}, attrs));
        std::string what = fmt::format("{} bf16 {}", dims_to_string(c.x), bf16);
        for (int threads : {1, 2})
          CHECK(check_against_reference(g, static_cast<double>(c.x[0] * yt.dims[2] * yt.dims[3]), threads, what) == (bf16 ? 1 : 0));
        CompiledModel compiled = compile_jit(g);
        for (const auto& k : compiled.program.functions.back().kernels) {
          INFO(k.name + ": " + k.origin);
          CHECK(k.origin.find("conv2d_weight_grad") != std::string::npos);
        }
      }
  }
}

namespace {

// The products of a compiled forward that multiply the image's channel pairs in place
// (kir::Gemm::pairs).
int pair_products(const CompiledModel& compiled) {
  int n = 0;
  for (const auto& k : compiled.program.functions.back().kernels) n += k.gemm && k.gemm->pairs;
  return n;
}

}  // namespace

// Every class of convolution on lines, forward and as the transposed convolution's stride-1
// data gradient: with channel pairs (even channels, or odd and many: the last pairs with
// zeros), and without (a few odd channels pair taps while packing). Checked against the
// reference at f32's tolerance (both round the same factors), on every path the host has;
// only VDPBF16PS hosts pair channels.
TEST_CASE("bf16 convolutions read channel pairs in place where the host multiplies pairs", "[bf16][conv][pairs]") {
  struct Case { Dims x, w; Ints stride, padding; bool pairs; const char* what; };
  const std::vector<Case> cases = {
      {{2, 16, 10, 9}, {24, 16, 3, 3}, {1, 1}, {1, 1}, true, "stride 1, padding"},
      {{2, 6, 9, 9}, {8, 6, 3, 3}, {1, 1}, {0, 0}, true, "stride 1, no padding (a copy made for the pairs)"},
      {{3, 8, 11, 10}, {12, 8, 3, 3}, {2, 2}, {1, 1}, true, "stride 2, phase planes"},
      {{2, 10, 8, 8}, {20, 10, 1, 1}, {2, 2}, {0, 0}, true, "1 x 1, stride 2"},
      {{2, 32, 6, 6}, {16, 32, 1, 1}, {1, 1}, {0, 0}, true, "1 x 1, stride 1"},
      {{2, 9, 7, 8}, {10, 9, 3, 3}, {1, 1}, {1, 1}, true, "9 channels: the last pairs with zeros"},
      {{2, 3, 8, 7}, {5, 3, 3, 3}, {1, 1}, {1, 1}, false, "3 channels: taps paired while packing"},
      {{4, 8, 6, 6}, {72, 8, 3, 3}, {1, 1}, {1, 1}, true, "merged images (many output channels, a narrow grid)"},
      {{1, 8, 14, 14}, {16, 8, 4, 4}, {2, 2}, {1, 1}, true, "the DCGAN's stride 2, one image (its data gradient per phase)"},
      {{4, 12, 14, 14}, {72, 12, 4, 4}, {2, 2}, {1, 1}, true, "stride 2, many outputs (its data gradient merged)"},
      {{2, 10, 9, 11}, {9, 10, 3, 3}, {2, 2}, {1, 1}, true, "stride 2, 9 outputs (its data gradient's last pair with zeros)"},
      {{2, 288, 5, 5}, {64, 288, 3, 3}, {1, 1}, {1, 1}, true, "a weight past the room of its tiles packed once a call (packed per image)"},
  };
  for (Isa isa : host_paths()) {
    ForcedIsa forced(isa);
    for (const Case& c : cases) {
      Graph g("bf16_conv_pairs");
      NamedAttrs attrs = conv_attrs(c.stride, c.padding);
      Value* y = conv_graph(g, c.x, c.w, attrs);
      CompiledModel compiled = compile_jit(g);
      bool expect = c.pairs && isa >= Isa::avx512bf16;
      INFO(c.what << " on " << isa_name(isa));
      CHECK(pair_products(compiled) == (expect ? 1 : 0));
      test::check_against_reference(g, compiled, 29, static_cast<double>(c.w[1] * c.w[2] * c.w[3]), 2, c.what);
      // The data gradient: at stride 1 a convolution by the flipped weight, on the same lines;
      // strided, a stride-1 convolution per output phase over the padded input (sub-pixel).
      // Either where the transposed convolution has at least 8 outputs (conv_plan.cpp's
      // kSubpixelChannels, else columns); their products' channels are w's outputs.
      Graph gt("bf16_conv_transpose_pairs");
      conv_transpose_graph(gt, y->type, c.w, attrs);
      CompiledModel ct = compile_jit(gt);
      bool on_lines = c.x[1] >= 8 && (c.w[0] % 2 == 0 || c.w[0] >= 9);
      CHECK(pair_products(ct) == (on_lines && isa >= Isa::avx512bf16 ? 1 : 0));
      test::check_against_reference(gt, ct, 31, static_cast<double>(c.w[0] * c.w[2] * c.w[3]), 1, std::string("transposed, ") + c.what);
      // The weight gradient reads the image as sliding pixel pairs (sliding_pairs) with up to
      // 32 output channels and more than one tap, whatever its input channels.
      Graph gw("bf16_weight_grad_pairs");
      Builder bw(gw);
      NamedAttrs wattrs = attrs;
      wattrs.push_back({"kernel", Ints{c.w[2], c.w[3]}});
      bw.output("dw", bw.conv2d_weight_grad({bw.input("x", {DType::f32, c.x}), bw.input("dy", y->type)}, wattrs));
      CompiledModel cw = compile_jit(gw);
      CHECK(pair_products(cw) == (isa >= Isa::avx512bf16 && c.w[0] <= 32 && c.w[2] * c.w[3] > 1 ? 1 : 0));
      double Kw = static_cast<double>(c.x[0] * y->type.dims[2] * y->type.dims[3]);
      test::check_against_reference(gw, cw, 37, Kw, 2, std::string("weight gradient, ") + c.what);
    }
  }
}

TEST_CASE("a bad STAG_ISA is an error naming the choices", "[bf16]") {
  setenv("STAG_ISA", "avx9", 1);
  CHECK_THROWS_WITH(host_isa(), Catch::Contains("expected one of generic, avx2, avx512, avx512bf16, amx"));
  unsetenv("STAG_ISA");
  if (detected_isa() != Isa::amx) {
    setenv("STAG_ISA", "amx", 1);
    CHECK_THROWS_WITH(host_isa(), Catch::Contains("this host has only"));
    unsetenv("STAG_ISA");
  }
}

TEST_CASE("autocast-bf16 marks a bf16 graph's products, and their gradients are bf16 products", "[bf16][passes]") {
  Graph g("mlp");
  Builder b(g);
  Value* x = b.input("x", {DType::f32, {4, 3}});
  Value* w = b.parameter("w", {DType::f32, {3, 5}}, {{"init", std::string("normal")}});
  b.output("loss", b.mean({b.relu({b.matmul({x, w})})}));
  PassCounters counters;
  CHECK_FALSE(autocast_bf16(g, counters));  // no precision attribute: f32
  g.set_attr("precision", std::string("bf16"));
  CHECK(autocast_bf16(g, counters));
  CHECK(counters.counts["products in bf16"] == 1);
  Diagnostics diags;
  auto step = differentiate(g, "loss", diags);
  REQUIRE(step);
  int products = 0;
  for (const auto& n : step->nodes)
    if (n->op == Op::matmul) {
      ++products;
      CHECK(n->s("precision") == "bf16");
    }
  CHECK(products == 2);  // the forward and w's gradient (x is an input: no gradient)
}

TEST_CASE("the runtime reads the CPU's ISA as the compiler does, and refuses code for a better one", "[bf16][isa]") {
  CHECK(rt::cpu_isa() == isa_name(detected_isa()));
  CHECK_NOTHROW(rt::check_cpu_isa(rt::cpu_isa()));
  CHECK_NOTHROW(rt::check_cpu_isa("generic"));
  CHECK_THROWS_WITH(rt::check_cpu_isa("avx9"), Catch::Contains("does not know"));
  if (detected_isa() != Isa::amx)
    CHECK_THROWS_WITH(rt::check_cpu_isa("amx"), Catch::Contains("built for a CPU with amx; this CPU has only " + rt::cpu_isa()));
  // A compiled model's manifest records what its code needs.
  Graph g("isa");
  Builder b(g);
  b.output("y", b.relu({b.input("x", {DType::f32, {4}})}));
  CHECK(compile_jit(g).model->manifest().isa == isa_name(detected_isa()));
}
