// The register-tiled matrix product (compiler/codegen/gemm.cpp) against the reference at
// every edge: sizes on both sides of the tile's rows and columns and of the packed panel's
// depth, transposed operands, broadcast batches, fused epilogues, one and two threads.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <map>
#include <tuple>

#include "compiler/codegen/gemm.h"
#include "compiler/jit/jit_model.h"
#include "compiler/lower/conv_plan.h"
#include "ir/builder.h"
#include "ir/random.h"
#include "ir/reference.h"
#include "runtime/thread_pool.h"
#include "tests/compiler/isa_paths.h"
#include "tests/compiler/reference_check.h"
#include "tests/util.h"

using namespace stag;
using stag::test::check_against_reference;

namespace {

struct Case {
  Dims a, b;
  bool ta = false, tb = false;
  bool epilogue = false;  ///< relu(a @ b + bias) + residual, fused into the product's store
};

// Checks the product against the reference; returns the kernel's column block (0: rows split).
int64_t check(const Case& c, int threads) {
  Graph g("gemm");
  Builder b(g);
  Value* a = b.input("a", {DType::f32, c.a});
  Value* w = b.input("b", {DType::f32, c.b});
  Value* y = b.matmul({a, w}, {{"transpose_a", c.ta}, {"transpose_b", c.tb}});
  if (c.epilogue) {
    Value* bias = b.input("bias", {DType::f32, {y->type.dims.back()}});
    Value* residual = b.input("residual", y->type);
    y = b.add({b.relu({b.add({y, bias})}), residual});
  }
  b.output("y", y);
  CompiledModel compiled = compile_jit(g);
  bool fused = false;
  int64_t column_block = 0;
  for (const auto& k : compiled.program.functions.back().kernels)
    if (k.gemm) fused = true, column_block = k.gemm->split == kir::Gemm::Split::columns ? k.gemm->block : 0;
  REQUIRE(fused);  // the product ran on the micro-kernel, not on loops

  int64_t K = c.ta ? c.a[c.a.size() - 2] : c.a.back();
  check_against_reference(g, compiled, 17, static_cast<double>(K), threads,
                          fmt::format("a {} b {} ta {} tb {} epilogue {}", dims_to_string(c.a), dims_to_string(c.b), c.ta, c.tb, c.epilogue));
  return column_block;
}

}  // namespace

TEST_CASE("the matrix product is exact at every tile and panel edge", "[gemm]") {
  GemmTile t = host_gemm_tile();
  int64_t MR = t.rows, NR = t.columns(), KC = t.depth;
  std::vector<int64_t> ms = {1, MR - 1, MR, MR + 1, 2 * MR + 3, 67};
  std::vector<int64_t> ns = {1, NR - 1, NR, NR + 1, 2 * NR + 5, 100};
  std::vector<int64_t> ks = {1, 7, KC - 1, KC, KC + 1, 2 * KC + 9};
  int cases = 0;  // turns the operand layouts and thread counts from case to case
  for (int64_t M : ms)
    for (int64_t N : ns)
      for (int64_t K : ks) {
        // Each size with one of the four operand layouts, turn by turn.
        bool ta = cases % 2, tb = cases / 2 % 2;
        Dims a = ta ? Dims{K, M} : Dims{M, K}, b = tb ? Dims{N, K} : Dims{K, N};
        check({a, b, ta, tb, cases % 3 == 0}, 1 + cases % 2);
        ++cases;
      }
}

TEST_CASE("products of few rows split their columns over the threads", "[gemm]") {
  GemmTile t = host_gemm_tile();
  int64_t KC = t.depth;
  int cases = 0;
  for (int64_t M : {1, 7, 33, 64})
    for (int64_t N : {128, 192, 320})
      for (int64_t K : {int64_t{5}, KC + 3})
        for (int layout = 0; layout < 4; ++layout) {
          bool ta = layout % 2, tb = layout / 2;
          Dims a = ta ? Dims{K, M} : Dims{M, K}, b = tb ? Dims{N, K} : Dims{K, N};
          for (int threads : {1, 2}) CHECK(check({a, b, ta, tb, cases++ % 3 == 0}, threads) == 64);
        }
  // Batches count as rows; more rows than 64, or columns that are not whole blocks, split rows.
  CHECK(check({{2, 20, 9}, {9, 128}, false, false, true}, 2) == 64);
  CHECK(check({{65, 9}, {9, 128}, false, false, false}, 2) == 0);
  CHECK(check({{3, 30, 9}, {9, 128}, false, false, false}, 2) == 0);
  CHECK(check({{8, 9}, {9, 100}, false, false, false}, 2) == 0);
}

TEST_CASE("batched products broadcast their batch dimensions", "[gemm]") {
  check({{3, 1, 9, 20}, {4, 20, 33}, false, false, false}, 2);
  check({{2, 5, 17}, {17, 40}, false, false, true}, 1);
  check({{6, 30, 13}, {6, 50, 30}, true, true, false}, 2);
  check({{1, 7, 64}, {3, 1, 64, 7}, false, false, false}, 1);
}

TEST_CASE("a batched A against one 2-D B is one product of the stacked rows", "[gemm]") {
  // Row-major A: the batch's rows are contiguous, so the product is [batch x M, K] by B (B
  // packed once a thread). Transposed A is not, and stays a product a batch entry.
  for (bool tb : {false, true})
    for (int threads : {1, 2}) {
      Graph g("stacked");
      Builder b(g);
      Value* a = b.input("a", {DType::f32, {3, 5, 13, 17}});
      Value* w = b.input("b", {DType::f32, tb ? Dims{40, 17} : Dims{17, 40}});
      b.output("y", b.add({b.matmul({a, w}, {{"transpose_b", tb}}), b.input("bias", {DType::f32, {40}})}));
      CompiledModel compiled = compile_jit(g);
      const kir::Kernel* product = nullptr;
      for (const auto& k : compiled.program.functions.back().kernels)
        if (k.gemm) product = &k;
      REQUIRE(product);
      CHECK(product->gemm->M == 3 * 5 * 13);
      CHECK(product->gemm->a_offsets.empty());
      test::check_against_reference(g, compiled, 29, 17.0, threads, fmt::format("stacked tb {} threads {}", tb, threads));
    }
  check({{4, 9, 6}, {9, 33}, true, false, true}, 2);
}

namespace {

// Every output of g compiled, at `threads`, against the reference on the same standard-normal
// inputs (f32 or f64), within `tol` relative to each element's size.
void check_every_output(const Graph& g, const CompiledModel& compiled, int threads, double tol, const std::string& what) {
  test::ForwardPair run = test::run_both(g, compiled, 31, threads);
  const auto& spec = compiled.model->manifest().function("forward");
  const auto& outs = spec.outputs;
  for (size_t o = 0; o < outs.size(); ++o) {
    INFO(fmt::format("{}: output {} threads {}", what, outs[o].name, threads));
    REQUIRE(test::first_mismatch(test::to_doubles(run.got[o]), run.want.outputs.at(outs[o].name).data, tol) == "");
  }
}

}  // namespace

TEST_CASE("a GELU after a biased product is stored by the product's kernel beside its input", "[gemm][fusion]") {
  // h = a @ w + bias is read by the GELU and elsewhere (an output here, the backward in a
  // transformer), so the epilogue stops at h; the GELU follows it in the same store loop. f32
  // and bf16 on the micro-kernel, f64 on loops (both the dot-product and the row forms).
  for (DType dt : {DType::f32, DType::f64})
    for (bool bf16 : {false, true})
      for (bool tb : {false, true}) {
        if (bf16 && dt == DType::f64) continue;
        Graph g("gelu_follower");
        Builder b(g);
        Value* a = b.input("a", {dt, {3, 7, 20}});
        Value* w = b.input("w", {dt, tb ? Dims{45, 20} : Dims{20, 45}});
        NamedAttrs attrs{{"transpose_b", tb}};
        if (bf16) attrs.push_back({"precision", std::string("bf16")});
        Value* h = b.add({b.matmul({a, w}, attrs), b.input("bias", {dt, {45}})});
        b.output("h", h);
        b.output("y", b.gelu({h}));
        CompiledModel compiled = compile_jit(g);
        int with_gelu = 0;
        for (const auto& k : compiled.program.functions.back().kernels) {
          bool product = false, gelu = false;
          for (const auto& name : k.nodes) {
            const Value* v = g.find(name);
            product |= v && v->def->op == Op::matmul;
            gelu |= v && v->def->op == Op::gelu;
          }
          with_gelu += gelu;
          if (gelu) CHECK(product);
          if (gelu) CHECK(k.gemm.has_value() == (dt == DType::f32));
        }
        CHECK(with_gelu == 1);
        std::string what = fmt::format("{} bf16 {} tb {}", to_string(dt), bf16, tb);
        for (int threads : {1, 2}) check_every_output(g, compiled, threads, dt == DType::f32 ? 1e-4 : 1e-12, what);
      }
}

namespace {

struct ConvCase {
  int64_t batch, cin, h, w, cout, kh, kw;
  Ints stride, padding, dilation;
  bool bias, epilogue;
  bool transposed = false;  ///< conv_transpose2d (weight [cin, cout, kh, kw]; padding doubles as output_padding's bound)
  int64_t output_padding = -1;  ///< of a transposed convolution; -1: the largest allowed
  bool bf16 = false;  ///< weight gradients: autocast's bf16 factors
};

// Checks a convolution on the micro-kernel against the reference; returns whether its product
// read the image through B's lines (kir::Gemm::b_lines) rather than gathering patches (for a
// transposed convolution: whether its product read lines or consumed each image's at once).
bool check_conv(const ConvCase& c, int threads) {
  Graph g("conv");
  Builder b(g);
  Value* x = b.input("x", {DType::f32, {c.batch, c.cin, c.h, c.w}});
  Value* w = b.input("w", {DType::f32, c.transposed ? Dims{c.cin, c.cout, c.kh, c.kw} : Dims{c.cout, c.cin, c.kh, c.kw}});
  std::vector<Value*> operands = {x, w};
  if (c.bias) operands.push_back(b.input("bias", {DType::f32, {c.cout}}));
  NamedAttrs attrs{{"stride", c.stride}, {"padding", c.padding}, {"dilation", c.dilation}};
  // The largest output_padding allowed: one less than the larger of stride and dilation.
  if (c.transposed && c.output_padding >= 0) attrs.push_back({"output_padding", Ints{c.output_padding, c.output_padding}});
  else if (c.transposed)
    attrs.push_back({"output_padding", Ints{std::max(c.stride[0], c.dilation[0]) - 1, std::max(c.stride[1], c.dilation[1]) - 1}});
  Value* y = c.transposed ? b.conv_transpose2d(operands, attrs) : b.conv2d(operands, attrs);
  if (c.epilogue) y = b.add({b.relu({y}), b.input("residual", y->type)});
  b.output("y", y);
  CompiledModel compiled = compile_jit(g);
  bool lines = false, fused = false;
  for (const auto& k : compiled.program.functions.back().kernels)
    if (k.gemm) fused = true, lines = k.gemm->b_read == kir::Gemm::BRead::lines || k.gemm->split == kir::Gemm::Split::row_blocks;
  REQUIRE(fused);

  check_against_reference(g, compiled, 23, static_cast<double>(c.cin * c.kh * c.kw), threads,
                          fmt::format("x [{}, {}, {}, {}] w [{}, {}, {}, {}] stride {} padding {} dilation {}{}", c.batch, c.cin, c.h, c.w,
                                      c.cout, c.cin, c.kh, c.kw, fmt::join(c.stride, ","), fmt::join(c.padding, ","),
                                      fmt::join(c.dilation, ","), c.transposed ? " transposed" : ""));
  return lines;
}

}  // namespace

TEST_CASE("convolutions read their image's phase planes through lines, unless the grid wastes most columns", "[gemm][conv]") {
  // Few output channels read B in place; more than 64 pack it (through the same lines).
  for (int64_t cout : {1, 6, 16, 70})
    for (int threads : {1, 2}) {
      CHECK(check_conv({3, 2, 9, 11, cout, 3, 3, {1, 1}, {0, 0}, {1, 1}, cout % 2 == 0, threads == 2}, threads));
      CHECK(check_conv({2, 3, 8, 7, cout, 5, 3, {1, 1}, {2, 1}, {1, 1}, true, cout == 16}, threads));
      CHECK(check_conv({2, 2, 12, 10, cout, 3, 2, {1, 1}, {1, 0}, {2, 3}, false, true}, threads));
      // Strides: taps read their phase plane; odd sizes leave a phase a row or column short.
      CHECK(check_conv({3, 3, 9, 11, cout, 3, 3, {2, 2}, {1, 1}, {1, 1}, true, cout == 6}, threads));
      CHECK(check_conv({2, 2, 13, 10, cout, 4, 3, {3, 2}, {2, 0}, {2, 1}, cout % 2 == 1, false}, threads));
    }
  // A 1x1 kernel without padding: the grid is the output (no columns to drop).
  CHECK(check_conv({4, 5, 6, 6, 8, 1, 1, {1, 1}, {0, 0}, {1, 1}, false, false}, 2));
  CHECK(check_conv({4, 5, 6, 6, 8, 1, 1, {1, 1}, {0, 0}, {1, 1}, true, true}, 1));
  // Deep channels: K spans several packed panels' depth.
  CHECK(check_conv({2, 40, 6, 6, 12, 3, 3, {1, 1}, {1, 1}, {1, 1}, true, false}, 2));
  // The DCGAN discriminator's strided layers (and the generator's data gradients): the second
  // (more than 64 output channels on a narrow grid) as one product over every image's planes.
  for (int threads : {1, 2}) {
    CHECK(check_conv({64, 1, 28, 28, 64, 4, 4, {2, 2}, {1, 1}, {1, 1}, false, true}, threads));
    CHECK(check_conv({4, 64, 14, 14, 128, 4, 4, {2, 2}, {1, 1}, {1, 1}, false, false}, threads));
    CHECK(check_conv({3, 5, 9, 11, 70, 3, 3, {2, 2}, {1, 1}, {1, 1}, true, true}, threads));
  }
  // A kernel covering the whole image (the DCGAN discriminator's last layer): one plain product.
  CHECK_FALSE(check_conv({64, 128, 7, 7, 1, 7, 7, {1, 1}, {0, 0}, {1, 1}, false, false}, 2));
  CHECK_FALSE(check_conv({5, 3, 4, 3, 9, 4, 3, {2, 3}, {0, 0}, {1, 1}, true, true}, 1));
  // One output channel: the product's one row holds every image (bias and epilogue still ride).
  CHECK_FALSE(check_conv({5, 3, 4, 3, 1, 4, 3, {2, 3}, {0, 0}, {1, 1}, true, true}, 2));
  CHECK_FALSE(check_conv({37, 2, 5, 5, 1, 5, 5, {1, 1}, {0, 0}, {1, 1}, false, false}, 1));
  // A stride past the kernel (phases no tap reads, not copied): the ResNet's downsampling too.
  CHECK(check_conv({2, 3, 17, 16, 5, 2, 2, {4, 4}, {0, 0}, {1, 1}, true, false}, 1));
  CHECK(check_conv({3, 16, 28, 28, 32, 1, 1, {2, 2}, {0, 0}, {1, 1}, false, false}, 2));
  // Stride-1 planes share their padding between rows and between images (Phases::shared): the
  // AlexNet's 7x7 layers over every image's planes, per image, a stride-1 axis beside a strided
  // one, and padding past the kernel's reach (that axis keeps its own).
  for (int threads : {1, 2}) {
    CHECK(check_conv({3, 8, 7, 7, 70, 3, 3, {1, 1}, {1, 1}, {1, 1}, true, true}, threads));
    CHECK(check_conv({2, 5, 7, 6, 9, 3, 3, {1, 1}, {1, 1}, {1, 1}, false, false}, threads));
    CHECK(check_conv({2, 3, 9, 10, 70, 3, 3, {1, 2}, {1, 1}, {1, 1}, true, false}, threads));
    CHECK(check_conv({2, 3, 10, 9, 6, 3, 3, {2, 1}, {1, 1}, {1, 2}, false, true}, threads));
    CHECK(check_conv({2, 3, 6, 5, 6, 3, 3, {1, 1}, {3, 2}, {1, 1}, true, false}, threads));
  }
  // A kernel as wide as the image: the grid would waste most columns, so patches are gathered.
  CHECK_FALSE(check_conv({2, 2, 12, 12, 4, 10, 10, {1, 1}, {0, 0}, {1, 1}, false, false}, 2));
}

TEST_CASE("stride-1 phase planes share their padding between rows and planes", "[conv]") {
  auto shape = [](int64_t H, int64_t K, int64_t s, int64_t p) {
    int64_t OH = (H + 2 * p - K) / s + 1;
    return kir::ConvShape{2, 3, H, H, 4, OH, OH, K, K, {s, s}, {p, p}, {1, 1}};
  };
  // The AlexNet's 7x7 layers: 8 x 8 planes, not 9 x 9; the last tap's line of the last plane
  // reads one padded row and column past it.
  kir::Phases same(shape(7, 3, 1, 1));
  CHECK((same.rows == 8 && same.cols == 8 && same.shared[0] && same.shared[1]));
  CHECK(same.spill(shape(7, 3, 1, 1)) == 8 + 1);
  // Strided axes and padding past the kernel's reach keep every plane's own padding.
  kir::Phases strided(shape(14, 4, 2, 1)), wide(shape(6, 3, 1, 3));
  CHECK((strided.rows == 8 && strided.cols == 8 && !strided.shared[0]));
  CHECK((wide.rows == 12 && wide.cols == 12 && !wide.shared[1]));
  CHECK(wide.spill(shape(6, 3, 1, 3)) == 0);
  // A ResNet's 1 x 1 downsampling at stride 2 reads one phase of four (the copy writes no other).
  kir::Phases down(shape(28, 1, 2, 0));
  CHECK((down.read(shape(28, 1, 2, 0), 0) && !down.read(shape(28, 1, 2, 0), 1) && !down.read(shape(28, 1, 2, 0), 3)));
  CHECK(down.spill(shape(28, 1, 2, 0)) == 0);
  CHECK((strided.read(shape(14, 4, 2, 1), 1) && strided.read(shape(14, 4, 2, 1), 3)));
}

TEST_CASE("a convolution per image stores each image's grid as soon as its product is done", "[gemm][conv]") {
  // The ResNet's 16-channel layers and the AlexNet's first: a grid past the output's columns,
  // bias and ReLU in the store. The product runs an image (O rows) a p, then the store for it.
  for (auto [C, O, K] : {std::tuple<int64_t, int64_t, int64_t>{16, 16, 3}, {1, 64, 5}}) {
    Graph g("conv_by_image");
    Builder b(g);
    Value* x = b.input("x", {DType::f32, {3, C, 12, 12}});
    Value* w = b.input("w", {DType::f32, {O, C, K, K}});
    b.output("y", b.relu({b.conv2d({x, w, b.input("bias", {DType::f32, {O}})}, {{"padding", Ints{K / 2, K / 2}}})}));
    CompiledModel compiled = compile_jit(g);
    int products = 0;
    for (const auto& k : compiled.program.functions.back().kernels)
      if (k.gemm) {
        ++products;
        CHECK((k.gemm->split == kir::Gemm::Split::row_blocks && k.gemm->block == O && k.extent == 3));
      }
    CHECK(products == 1);
    for (int threads : {1, 2}) check_against_reference(g, compiled, 31, static_cast<double>(C * K * K), threads, fmt::format("{} channels", C));
  }
}

TEST_CASE("each convolution op's strategy", "[conv]") {
  using kir::ConvPath;
  const kir::ConvOperands kOnProduct{.f32 = true, .in_buffers = true}, kInLoops{.f32 = false, .in_buffers = true};
  // Input [Bn, C, H, H], O outputs of OH x OH, a K x K kernel; stride, padding.
  auto shape = [](int64_t Bn, int64_t C, int64_t H, int64_t O, int64_t OH, int64_t K, int64_t s, int64_t p) {
    return kir::ConvShape{Bn, C, H, H, O, OH, OH, K, K, {s, s}, {p, p}, {1, 1}};
  };
  CHECK(kir::conv2d_path(shape(64, 64, 14, 128, 7, 4, 2, 1), kOnProduct).path == ConvPath::lines_merged);
  CHECK(kir::conv2d_path(shape(64, 128, 7, 192, 7, 3, 1, 1), kOnProduct).path == ConvPath::lines_merged);
  CHECK(kir::conv2d_path(shape(1, 64, 14, 128, 7, 4, 2, 1), kOnProduct).path == ConvPath::lines);
  CHECK(kir::conv2d_path(shape(64, 1, 28, 6, 28, 5, 1, 2), kOnProduct).path == ConvPath::lines);
  CHECK(kir::conv2d_path(shape(2, 2, 12, 4, 3, 10, 1, 0), kOnProduct).path == ConvPath::im2col);
  CHECK(kir::conv2d_path(shape(64, 128, 7, 1, 1, 7, 1, 0), kOnProduct).path == ConvPath::dense);
  CHECK(kir::conv2d_path(shape(64, 64, 14, 128, 7, 4, 2, 1), kInLoops).path == ConvPath::loops);
  CHECK(kir::conv2d_path(shape(64, 64, 14, 128, 7, 4, 2, 1), {.f32 = true, .in_buffers = false}).path == ConvPath::loops);
  kir::ConvShape grouped = shape(64, 64, 14, 128, 7, 4, 2, 1);
  grouped.groups = 2;
  CHECK(kir::conv2d_path(grouped, kOnProduct).path == ConvPath::loops);
  CHECK(kir::weight_grad_path(grouped, kOnProduct).path == ConvPath::loops);
  CHECK(kir::conv_transpose2d_path(grouped, kOnProduct).path == ConvPath::loops);
  // LeNet-5's weight gradients keep their partial sums in cache; the DCGAN's wide layer not.
  CHECK(kir::weight_grad_path(shape(64, 6, 14, 16, 10, 5, 1, 0), kOnProduct).path == ConvPath::lines);
  CHECK(kir::weight_grad_path(shape(64, 1, 28, 64, 14, 4, 2, 1), kOnProduct).path == ConvPath::lines);
  CHECK(kir::weight_grad_path(shape(64, 64, 14, 8, 7, 4, 2, 1), kOnProduct).path == ConvPath::lines_merged);
  CHECK(kir::weight_grad_path(shape(64, 64, 14, 128, 7, 4, 2, 1), kOnProduct).path == ConvPath::lines);
  CHECK(kir::weight_grad_path(shape(64, 128, 7, 1, 1, 7, 1, 0), kOnProduct).path == ConvPath::dense);
  CHECK(kir::weight_grad_path(shape(3, 2, 9, 4, 2, 8, 1, 0), kOnProduct).path == ConvPath::loops);
  // The choices within a path: one output channel's dense product as a row; a grid with no
  // columns past the output's stores straight into it (no bias, no epilogue); per-image weight
  // gradients add their partial sums.
  const kir::ConvOperands kPlain{.f32 = true, .in_buffers = true, .plain_store = true};
  CHECK(kir::conv2d_path(shape(64, 128, 7, 1, 1, 7, 1, 0), kOnProduct).one_row);
  CHECK_FALSE(kir::conv2d_path(shape(64, 128, 7, 2, 1, 7, 1, 0), kOnProduct).one_row);
  CHECK(kir::conv2d_path(shape(4, 5, 6, 8, 6, 1, 1, 0), kPlain).grid_is_output);
  CHECK_FALSE(kir::conv2d_path(shape(4, 5, 6, 8, 6, 1, 1, 0), kOnProduct).grid_is_output);
  CHECK_FALSE(kir::conv2d_path(shape(4, 5, 6, 8, 6, 3, 1, 1), kPlain).grid_is_output);
  CHECK(kir::weight_grad_path(shape(64, 6, 14, 16, 10, 5, 1, 0), kOnProduct).partial_sums);
  CHECK_FALSE(kir::weight_grad_path(shape(1, 6, 14, 16, 10, 5, 1, 0), kOnProduct).partial_sums);
  // Past the partial sums' room, dot products sum the images as they run (with rows enough for
  // the threads): the ResNet's 7 x 7 and 14 x 14 layers, not a layer of 8 output channels.
  CHECK(kir::weight_grad_path(shape(64, 64, 7, 64, 7, 3, 1, 1), kOnProduct).summed);
  CHECK(kir::weight_grad_path(shape(64, 32, 14, 32, 14, 3, 1, 1), kOnProduct).summed);
  CHECK_FALSE(kir::weight_grad_path(shape(64, 64, 14, 8, 7, 4, 2, 1), kOnProduct).summed);
  CHECK_FALSE(kir::weight_grad_path(shape(64, 6, 14, 16, 10, 5, 1, 0), kOnProduct).summed);
  CHECK_FALSE(kir::weight_grad_path(shape(64, 64, 7, 64, 7, 3, 1, 1), {.f32 = true, .in_buffers = true, .bf16 = true}).summed);
  // Dot products over the pixels in f32 at least 256 deep: the ResNet's 7 x 7 layer over every
  // image's planes, not LeNet-5's 10 rows of 14 per image, nor in bf16.
  CHECK(kir::weight_grad_path(shape(64, 64, 7, 64, 7, 3, 1, 1), kOnProduct).dot);
  CHECK_FALSE(kir::weight_grad_path(shape(64, 6, 14, 16, 10, 5, 1, 0), kOnProduct).dot);
  CHECK_FALSE(kir::weight_grad_path(shape(64, 64, 7, 64, 7, 3, 1, 1), {.f32 = true, .in_buffers = true, .bf16 = true}).dot);
  // Transposed, described by the convolution they transpose (whose input is their output).
  CHECK(kir::conv_transpose2d_path(shape(64, 64, 14, 128, 7, 4, 2, 1), kOnProduct).path == ConvPath::subpixel_merged);
  CHECK(kir::conv_transpose2d_path(shape(1, 64, 14, 128, 7, 4, 2, 1), kOnProduct).path == ConvPath::subpixel);
  CHECK(kir::conv_transpose2d_path(shape(2, 8, 40, 3, 20, 4, 2, 1), kOnProduct).path == ConvPath::subpixel);
  CHECK(kir::conv_transpose2d_path(shape(64, 1, 28, 64, 14, 4, 2, 1), kOnProduct).path == ConvPath::columns);
  CHECK(kir::conv_transpose2d_path(shape(64, 128, 7, 100, 1, 7, 1, 0), kOnProduct).path == ConvPath::dense);
  CHECK(kir::conv_transpose2d_path(shape(64, 6, 14, 16, 10, 5, 1, 0), kOnProduct).path == ConvPath::full_columns);
  // Stride 1: the flipped weight's convolution with enough output channels (the ResNet's data
  // gradients; merged where conv2d merges), else the columns (LeNet-5's 6 channels, padding
  // past the kernel's reach, output_padding).
  CHECK(kir::conv_transpose2d_path(shape(64, 16, 28, 16, 28, 3, 1, 1), kOnProduct).path == ConvPath::flipped_lines);
  CHECK(kir::conv_transpose2d_path(shape(64, 70, 7, 16, 7, 3, 1, 1), kOnProduct).path == ConvPath::flipped_lines_merged);
  CHECK(kir::conv_transpose2d_path(shape(64, 16, 6, 16, 10, 3, 1, 3), kOnProduct).path == ConvPath::full_columns);
  CHECK(kir::conv_transpose2d_path(shape(64, 16, 29, 16, 28, 3, 1, 1), kOnProduct).path == ConvPath::full_columns);
}

namespace {

// How a weight gradient's product ran: over the images' tap lines, as dot products, summing the images.
struct WeightGradRun {
  bool lines = false, dot = false, summed = false;
};

// Checks conv2d_weight_grad against the reference; returns how its product ran.
WeightGradRun check_weight_grad(const ConvCase& c, int threads) {
  Graph g("weight_grad");
  Builder b(g);
  Value* x = b.input("x", {DType::f32, {c.batch, c.cin, c.h, c.w}});
  Dims dy_dims{c.batch, c.cout, 0, 0};
  Ints kernel{c.kh, c.kw};
  for (int i = 0; i < 2; ++i)
    dy_dims[2 + i] = ((i ? c.w : c.h) + 2 * c.padding[i] - c.dilation[i] * (kernel[i] - 1) - 1) / c.stride[i] + 1;
  Value* dy = b.input("dy", {DType::f32, dy_dims});
  NamedAttrs attrs{{"kernel", kernel}, {"stride", c.stride}, {"padding", c.padding}, {"dilation", c.dilation}};
  if (c.bf16) attrs.push_back({"precision", std::string("bf16")});
  b.output("dw", b.conv2d_weight_grad({x, dy}, attrs));
  CompiledModel compiled = compile_jit(g);
  WeightGradRun run;
  for (const auto& k : compiled.program.functions.back().kernels)
    if (k.gemm) run = {k.gemm->b_read == kir::Gemm::BRead::lines, k.gemm->dot, k.gemm->sum_batches};
  check_against_reference(g, compiled, 29, static_cast<double>(c.batch * dy_dims[2] * dy_dims[3]), threads,
                          fmt::format("x [{}, {}, {}, {}] dy {} kernel {}x{} padding {} dilation {}", c.batch, c.cin, c.h, c.w,
                                      dims_to_string(dy_dims), c.kh, c.kw, fmt::join(c.padding, ","), fmt::join(c.dilation, ",")));
  return run;
}

}  // namespace

TEST_CASE("weight gradients are products over the images' phase planes", "[gemm][conv]") {
  for (int threads : {1, 2}) {
    // LeNet-5's two: many images in parts, K past the packed panel's depth.
    CHECK(check_weight_grad({64, 1, 28, 28, 6, 5, 5, {1, 1}, {2, 2}, {1, 1}, false, false}, threads).lines);
    CHECK(check_weight_grad({64, 6, 14, 14, 16, 5, 5, {1, 1}, {0, 0}, {1, 1}, false, false}, threads).lines);
    // Images that do not fill the last part; dilation; more than a tile of output channels.
    CHECK(check_weight_grad({11, 3, 9, 7, 20, 3, 2, {1, 1}, {1, 0}, {2, 1}, false, false}, threads).lines);
    CHECK(check_weight_grad({1, 2, 5, 6, 3, 1, 1, {1, 1}, {0, 0}, {1, 1}, false, false}, threads).lines);
    // A 1 x 1 kernel at stride 2 (a ResNet's downsample): one phase of four, dy its own grid.
    CHECK(check_weight_grad({3, 4, 13, 11, 7, 1, 1, {2, 2}, {0, 0}, {1, 1}, false, false}, threads).lines);
    // Strides, odd sizes, dilation with a stride.
    CHECK(check_weight_grad({3, 2, 9, 9, 4, 3, 3, {2, 1}, {1, 1}, {1, 1}, false, false}, threads).lines);
    CHECK(check_weight_grad({5, 3, 13, 11, 7, 4, 3, {3, 2}, {2, 1}, {2, 1}, false, false}, threads).lines);
    // The DCGAN's: the discriminator's first layer per image; its second layer (the generator's
    // middle one too) as one product over every image's planes, partials past the cache.
    CHECK(check_weight_grad({64, 1, 28, 28, 64, 4, 4, {2, 2}, {1, 1}, {1, 1}, false, false}, threads).lines);
    CHECK(check_weight_grad({8, 64, 14, 14, 128, 4, 4, {2, 2}, {1, 1}, {1, 1}, false, false}, threads).lines);
    CHECK(check_weight_grad({9, 40, 15, 13, 70, 3, 4, {2, 3}, {1, 2}, {1, 1}, false, false}, threads).lines);
    // Stride-1 planes sharing their padding: the AlexNet's 7x7 layers over every image's planes,
    // and a stride-1 axis beside a strided one.
    CHECK(check_weight_grad({8, 64, 7, 7, 70, 3, 3, {1, 1}, {1, 1}, {1, 1}, false, false}, threads).lines);
    CHECK(check_weight_grad({3, 2, 9, 9, 4, 3, 3, {1, 2}, {1, 1}, {1, 1}, false, false}, threads).lines);
  }
}

TEST_CASE("deep f32 weight gradients are dot products over the pixels on every ISA path", "[gemm][conv][bf16]") {
  // GemmEmitter::emit_dot: ResNet-like layers per image (K = 28 rows of 29 pixels, partial sums);
  // emit_dot_sum: image by image summed in the product (stride 2 into 8 x 8 phase planes, K = 7
  // rows of 8 pixels, groups of 18 images, the last of 4); over
  // every image's planes (a layer of 8 output channels); K past a slice with a tail of the step,
  // rows and columns past the tile's; few output channels split the columns. Not in bf16 (the
  // reference rounds the same factors: f32's tolerance).
  for (Isa isa : test::host_paths()) {
    test::ForcedIsa forced(isa);
    for (bool bf16 : {false, true}) {
      bool dot = !bf16;
      INFO(fmt::format("{} bf16 {}", isa_name(isa), bf16));
      for (int threads : {1, 2}) {
        WeightGradRun by_image = check_weight_grad({3, 5, 28, 28, 6, 3, 3, {1, 1}, {1, 1}, {1, 1}, false, false, false, -1, bf16}, threads);
        CHECK(by_image.lines);
        CHECK(by_image.dot == dot);
        WeightGradRun summed = check_weight_grad({40, 32, 14, 14, 66, 3, 3, {2, 2}, {1, 1}, {1, 1}, false, false, false, -1, bf16}, threads);
        CHECK(summed.lines);
        CHECK(summed.dot == dot);
        CHECK(summed.summed == dot);
        WeightGradRun merged = check_weight_grad({64, 64, 14, 14, 8, 3, 3, {2, 2}, {1, 1}, {1, 1}, false, false, false, -1, bf16}, threads);
        CHECK(merged.lines);
        CHECK(merged.dot == dot);
        CHECK_FALSE(merged.summed);
        WeightGradRun columns = check_weight_grad({130, 64, 5, 5, 8, 2, 2, {1, 1}, {0, 0}, {1, 1}, false, false, false, -1, bf16}, threads);
        CHECK(columns.lines);
        CHECK(columns.dot == dot);
      }
    }
  }
}

TEST_CASE("weight gradients of a kernel covering the image are one plain product", "[gemm][conv]") {
  for (int threads : {1, 2}) {
    // The DCGAN's last discriminator layer (one output channel: columns split) and the
    // generator's first layer's gradient (a 1 x 1 input convolved to 7 x 7).
    CHECK_FALSE(check_weight_grad({64, 128, 7, 7, 1, 7, 7, {1, 1}, {0, 0}, {1, 1}, false, false}, threads).lines);
    CHECK_FALSE(check_weight_grad({64, 128, 7, 7, 100, 7, 7, {1, 1}, {0, 0}, {1, 1}, false, false}, threads).lines);
    CHECK_FALSE(check_weight_grad({5, 3, 4, 3, 9, 4, 3, {2, 3}, {0, 0}, {1, 1}, false, false}, threads).lines);
  }
  // A grid mostly of zeros (a kernel nearly the input's size) runs as loops.
  CHECK_FALSE(check_weight_grad({3, 2, 9, 9, 4, 8, 8, {1, 1}, {0, 0}, {1, 1}, false, false}, 2).lines);
}

TEST_CASE("transposed convolutions add each image's columns as its product is done", "[gemm][conv]") {
  for (int threads : {1, 2}) {
    // Stride 1: taps add contiguous runs to the full plane; with padding, dilation, output_padding.
    CHECK(check_conv({5, 3, 6, 7, 4, 3, 3, {1, 1}, {0, 0}, {1, 1}, true, false, true}, threads));
    CHECK(check_conv({4, 16, 10, 10, 6, 5, 5, {1, 1}, {1, 2}, {2, 1}, false, false, true}, threads));
    CHECK(check_conv({3, 2, 5, 4, 70, 2, 3, {1, 1}, {1, 0}, {2, 2}, true, false, true}, threads));
    // Strides with few output channels scatter in the same kernel.
    CHECK(check_conv({3, 4, 5, 6, 3, 3, 3, {2, 2}, {1, 1}, {1, 1}, true, false, true}, threads));
    CHECK(check_conv({2, 2, 4, 5, 5, 3, 2, {3, 1}, {0, 1}, {1, 2}, false, false, true}, threads));
  }
}

TEST_CASE("stride-1 transposed convolutions run as the convolution by the flipped weight", "[gemm][conv]") {
  for (int threads : {1, 2}) {
    // The ResNet's data gradients: a 3 x 3 kernel, padding 1, 16 channels each way.
    CHECK(check_conv({3, 16, 28, 28, 16, 3, 3, {1, 1}, {1, 1}, {1, 1}, false, false, true, 0}, threads));
    // Odd sizes, a kernel and padding that differ per axis, dilation, bias; no padding (the
    // flipped convolution pads by the whole reach); padding as large as the reach (none).
    CHECK(check_conv({2, 5, 9, 7, 8, 3, 5, {1, 1}, {1, 2}, {1, 1}, true, false, true, 0}, threads));
    CHECK(check_conv({3, 4, 6, 11, 9, 3, 2, {1, 1}, {2, 0}, {2, 3}, true, false, true, 0}, threads));
    CHECK(check_conv({2, 3, 5, 6, 12, 2, 3, {1, 1}, {0, 0}, {1, 1}, false, false, true, 0}, threads));
    CHECK(check_conv({2, 6, 7, 5, 10, 3, 3, {1, 1}, {2, 2}, {1, 1}, true, false, true, 0}, threads));
    // Many output channels on a small plane: one product over every image's planes.
    CHECK(check_conv({4, 16, 7, 7, 70, 3, 3, {1, 1}, {1, 1}, {1, 1}, true, false, true, 0}, threads));
    // A 1 x 1 kernel: the flipped weight is the transposed one, no padding.
    CHECK(check_conv({3, 7, 5, 6, 9, 1, 1, {1, 1}, {0, 0}, {1, 1}, true, false, true, 0}, threads));
  }
}

TEST_CASE("strided transposed convolutions run as one stride-1 convolution per output phase", "[gemm][conv]") {
  for (int threads : {1, 2}) {
    // The DCGAN generator's middle layer (and the discriminator's data gradient) at its sizes:
    // narrow grids, so one product a phase over every image's planes.
    CHECK(check_conv({4, 128, 7, 7, 64, 4, 4, {2, 2}, {1, 1}, {1, 1}, false, false, true, 0}, threads));
    // One image, or a grid wide enough: a product per image and phase.
    CHECK(check_conv({1, 5, 6, 7, 8, 4, 4, {2, 2}, {1, 1}, {1, 1}, true, false, true}, threads));
    CHECK(check_conv({2, 3, 20, 20, 8, 4, 4, {2, 2}, {1, 1}, {1, 1}, true, false, true}, threads));
    // output_padding, odd sizes, bias; a stride past the kernel (phases no tap reaches);
    // strides and padding that differ per axis.
    CHECK(check_conv({3, 5, 6, 7, 8, 4, 4, {2, 2}, {1, 1}, {1, 1}, true, false, true}, threads));
    CHECK(check_conv({2, 3, 5, 4, 9, 3, 5, {3, 2}, {2, 1}, {1, 1}, true, false, true}, threads));
    CHECK(check_conv({2, 3, 4, 4, 8, 2, 2, {3, 3}, {0, 0}, {1, 1}, false, false, true}, threads));
    CHECK(check_conv({2, 6, 5, 5, 70, 3, 3, {2, 1}, {0, 2}, {1, 1}, true, false, true}, threads));
  }
}

TEST_CASE("a transposed convolution of a 1 x 1 input to the kernel's size is one plain product", "[gemm][conv]") {
  for (int threads : {1, 2}) {
    // The DCGAN generator's first layer, and the discriminator's last layer's data gradient.
    CHECK_FALSE(check_conv({64, 100, 1, 1, 128, 7, 7, {1, 1}, {0, 0}, {1, 1}, false, false, true, 0}, threads));
    CHECK_FALSE(check_conv({64, 1, 1, 1, 128, 7, 7, {1, 1}, {0, 0}, {1, 1}, true, false, true, 0}, threads));
    CHECK_FALSE(check_conv({3, 4, 1, 1, 5, 3, 2, {2, 3}, {0, 0}, {1, 1}, true, false, true, 0}, threads));
  }
}

namespace {

// Whether the compiled function's products pack their batch-invariant A once a call.
bool packs_shared_a(const CompiledModel& compiled) {
  for (const auto& k : compiled.program.functions.back().kernels)
    if (k.gemm && gemm_layout_name(*k.gemm, host_gemm_tile()).find(".shared_a") != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("products whose A is the same for every batch pack it once a call", "[gemm][conv]") {
  // A convolution per image packs its weight's tiles once for every image a thread runs
  // (GemmEmitter::pack_shared_a), on every ISA path: 20 output channels end in a partial tile;
  // a weight of 64 x 1296 is past the shared packing's room, so each image packs it again.
  for (Isa isa : test::host_paths()) {
    test::ForcedIsa forced(isa);
    for (int64_t C : {7, 144}) {
      Graph g("conv_shared_a");
      Builder b(g);
      int64_t O = C == 7 ? 20 : 64;
      Value* x = b.input("x", {DType::f32, {C == 7 ? 5 : 2, C, 9, 8}});
      b.output("y", b.conv2d({x, b.input("w", {DType::f32, {O, C, 3, 3}})}, {{"padding", Ints{1, 1}}}));
      CompiledModel compiled = compile_jit(g);
      CHECK(packs_shared_a(compiled));
      for (int threads : {1, 2})
        check_against_reference(g, compiled, 41, static_cast<double>(C * 9), threads, fmt::format("{} channels on {}", C, isa_name(isa)));
    }
    // A matrix broadcast over a batch: two threads split the 100 rows mid-tile (a call's first
    // tile then packs its own rows).
    for (bool ta : {false, true}) {
      Graph g("matmul_shared_a");
      Builder b(g);
      Value* a = b.input("a", {DType::f32, ta ? Dims{1, 300, 20} : Dims{1, 20, 300}});
      b.output("y", b.matmul({a, b.input("b", {DType::f32, {5, 300, 500}})}, {{"transpose_a", ta}}));
      CompiledModel compiled = compile_jit(g);
      CHECK(packs_shared_a(compiled));
      for (int threads : {1, 2})
        check_against_reference(g, compiled, 43, 300.0, threads, fmt::format("ta {} on {}", ta, isa_name(isa)));
    }
  }
}
