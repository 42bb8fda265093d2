// Every op compiled to native code against the reference interpreter: the PyTorch-checked
// cases of tests/ir/reference_cases in f64, the same cases in f32, and random shapes; the
// loop hints codegen passes to LLVM.

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <tuple>

#include "compiler/jit/jit.h"
#include "compiler/jit/jit_model.h"
#include "compiler/lower/lower.h"
#include "ir/builder.h"
#include "ir/random.h"
#include "ir/parser.h"
#include "ir/reference.h"
#include "ir/verifier.h"
#include "runtime/error.h"
#include "runtime/thread_pool.h"
#include "tests/compiler/isa_paths.h"
#include "tests/util.h"

using namespace stag;
using namespace stag::test;

namespace {

// The tolerances, in one place: f64 code differs from the reference only by rounding order;
// f32 code by f32 rounding, growing with the length of the reductions behind an element.
struct Tolerance {
  double rel, abs;
};
constexpr Tolerance kF64{1e-11, 1e-11};
constexpr Tolerance kF32{2e-5, 2e-5};

std::unique_ptr<Graph> parse_verified(const std::string& text, const std::string& name) {
  Diagnostics diags;
  SourceMap map;
  auto g = parse_ir(text, name, diags, &map);
  bool ok = g && verify(*g, diags, &map);
  INFO(diags.render());
  REQUIRE(ok);
  return g;
}

void compare_compiled_with_reference(const Graph& g, Tolerance tol) {
  RefResult want = interpret(g, {});
  CompiledModel c = compile_jit(g);
  auto outs = c.model->run("forward", {});
  const auto& spec = c.model->manifest().function("forward").outputs;
  REQUIRE(outs.size() == g.outputs.size());
  for (size_t o = 0; o < outs.size(); ++o) {
    const auto& ref = want.outputs.at(spec[o].name).data;
    auto got = to_doubles(outs[o]);
    REQUIRE(got.size() == ref.size());
    for (size_t i = 0; i < got.size(); ++i) {
      INFO(fmt::format("output {} element {}: compiled {} reference {}", spec[o].name, i, got[i], ref[i]));
      bool same = std::isnan(ref[i]) ? std::isnan(got[i])
                                     : std::fabs(got[i] - ref[i]) <= tol.abs + tol.rel * std::fabs(ref[i]);
      CHECK(same);
    }
  }
}

std::vector<std::filesystem::path> reference_cases() {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(STAG_TESTS_DIR) / "ir/reference_cases"))
    if (e.path().extension() == ".ir") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

TEST_CASE("compiled f64 kernels match the reference on every PyTorch-checked case", "[codegen]") {
  auto files = reference_cases();
  REQUIRE(files.size() >= 90);
  for (const auto& file : files) {
    INFO(file.filename().string());
    auto g = parse_verified(slurp(file), file.filename().string());
    compare_compiled_with_reference(*g, kF64);
  }
}

TEST_CASE("compiled f32 kernels match the reference on every case", "[codegen]") {
  for (const auto& file : reference_cases()) {
    std::string text = slurp(file);
    // The same graphs in f32: every f64 type and dtype attribute becomes f32.
    for (size_t at = text.find("f64"); at != std::string::npos; at = text.find("f64", at)) text.replace(at, 3, "f32");
    INFO(file.filename().string() + " in f32");
    auto g = parse_verified(text, file.filename().string());
    compare_compiled_with_reference(*g, kF32);
  }
}

TEST_CASE("an out-of-range index is an error naming the node, not a wild read", "[codegen]") {
  auto g = parse_verified(R"(graph bad_ids {
  %w: f32[4,3] = constant(value=[1.0])
  %ids: i64[3] = constant(value=[0, 7, 1])
  %e: f32[3,3] = embedding(%w, %ids)
  output e = %e
}
)", "bad_ids.ir");
  CompiledModel c = compile_jit(*g);
  CHECK_THROWS_WITH(c.model->run("forward", {}), "bad_ids: embedding %e: index 7 is out of range [0, 4)");
}

TEST_CASE("an out-of-range id of embedding_grad is an error naming the node", "[codegen]") {
  auto g = parse_verified(R"(graph bad_grad_ids {
  %dy: f32[3,2] = constant(value=[1.0])
  %ids: i64[3] = constant(value=[0, 1, -1])
  %dw: f32[4,2] = embedding_grad(%dy, %ids, num_embeddings=4)
  output dw = %dw
}
)", "bad_grad_ids.ir");
  CompiledModel c = compile_jit(*g);
  CHECK_THROWS_WITH(c.model->run("forward", {}), "bad_grad_ids: embedding_grad %dw: index -1 is out of range [0, 4)");
}

// The ONNX layer-norm expansion declares Y before Mean, which is computed first.
TEST_CASE("compiled outputs come in the graph's declared order, not the order they are computed", "[codegen]") {
  auto g = parse_verified(R"(graph late_first {
  %x: f32[2,3] = constant(value=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
  %m: f32[2,1] = mean(%x, axes=[1], keepdims=true)
  %y: f32[2,3] = sub(%x, %m)
  %z: f32[2,1] = reshape(%m, shape=[2, 1])
  output y = %y
  output m = %z
  output again = %m
}
)", "late_first.ir");
  CompiledModel c = compile_jit(*g);
  const auto& spec = c.model->manifest().function("forward").outputs;
  REQUIRE(spec.size() == 3);
  CHECK(spec[0].name == "y");
  CHECK(spec[1].name == "m");
  CHECK(spec[2].name == "again");
  auto outs = c.model->run("forward", {});
  CHECK(to_doubles(outs[0]) == std::vector<double>{-1, 0, 1, -1, 0, 1});
  CHECK(to_doubles(outs[1]) == std::vector<double>{2, 5});
  CHECK(to_doubles(outs[2]) == std::vector<double>{2, 5});
}

// embedding_grad of 300 ids into 13 rows (each row about 23 of dy's rows), on `threads`.
std::vector<float> run_embedding_grad(const CompiledModel& c, const rt::Tensor& dy, int threads) {
  stag_set_num_threads(threads);
  std::vector<rt::Tensor> out = c.model->run("forward", {&dy});
  stag_set_num_threads(0);
  auto values = out[0].values<float>();
  return {values.begin(), values.end()};
}

TEST_CASE("embedding_grad adds repeated ids' rows by column blocks, the same bits on 1 and 2 threads", "[codegen]") {
  const int64_t V = 13, T = 300;
  Floats ids(T);
  for (int64_t i = 0; i < T; ++i) ids[i] = static_cast<double>((i * 7 + i / 5) % V);
  // D -> column blocks: at most 8, each at least 8 wide, dividing D.
  for (auto [D, blocks] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {15, 1}, {39, 3}, {100, 5}, {128, 8}, {1000, 8}}) {
    INFO("D " << D);
    Graph g("embedding_grad");
    Builder b(g);
    Value* dy = b.input("dy", {DType::f32, {6, T / 6, D}});
    b.output("dw", b.embedding_grad({dy, b.constant({DType::i64, {6, T / 6}}, ids)}, {{"num_embeddings", V}}));
    CompiledModel c = compile_jit(g);
    const auto& kernels = c.program.functions.back().kernels;
    auto k = std::find_if(kernels.begin(), kernels.end(), [](const kir::Kernel& k) { return k.name.find("embedding_grad") != std::string::npos; });
    REQUIRE(k != kernels.end());
    CHECK(k->extent == blocks);
    rt::Tensor feed(rt::DType::f32, {6, T / 6, D});
    std::vector<double> fed;
    for (int64_t e = 0; e < feed.numel(); ++e) fed.push_back(feed.values<float>()[e] = static_cast<float>(random_standard_normal(23, 0, e)));
    std::vector<float> one = run_embedding_grad(c, feed, 1), two = run_embedding_grad(c, feed, 2);
    CHECK(one == two);
    RefResult ref = interpret(g, {{"dy", RefTensor(dy->type, fed)}});
    const auto& want = ref.outputs.at("dw").data;
    REQUIRE(one.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      INFO("element " << i << " got " << one[i] << " want " << want[i]);
      REQUIRE(std::fabs(one[i] - want[i]) <= 1e-5 * std::sqrt(23.0) * (1 + std::fabs(want[i])));
    }
  }
}

TEST_CASE("the ReLU and residual add after a batch norm ride in its store and match the reference", "[codegen]") {
  // Odd sizes; training (batch statistics) and eval (running statistics); a residual of the
  // result's shape and a per-channel one (the plane read as one axis), and one broadcast over
  // part of the plane (read through the multi-index); a batch norm over [N, C] (no plane).
  auto g = parse_verified(R"(graph bn_epilogue {
  %x: f32[3,5,7,9] = random_normal(seed=1)
  %id: f32[3,5,7,9] = random_normal(seed=2)
  %ch: f32[1,5,1,1] = random_normal(seed=3)
  %row: f32[7,1] = random_normal(seed=4)
  %w: f32[5] = random_uniform(seed=5)
  %b: f32[5] = random_normal(seed=6)
  %rm: f32[5] = random_uniform(seed=7)
  %rv: f32[5] = random_uniform(low=0.5, high=1.5, seed=8)
  %n1: f32[3,5,7,9], %m1: f32[5], %v1: f32[5] = batch_norm(%x, %w, %b, %rm, %rv, training=true)
  %a1: f32[3,5,7,9] = add(%n1, %id)
  %y1: f32[3,5,7,9] = relu(%a1)
  %n2: f32[3,5,7,9], %m2: f32[5], %v2: f32[5] = batch_norm(%x, %w, %b, %rm, %rv, training=false)
  %a2: f32[3,5,7,9] = add(%ch, %n2)
  %y2: f32[3,5,7,9] = relu(%a2)
  %n3: f32[3,5,7,9], %m3: f32[5], %v3: f32[5] = batch_norm(%id, %w, %b, %rm, %rv, training=true)
  %a3: f32[3,5,7,9] = mul(%n3, %row)
  %y3: f32[3,5,7,9] = relu(%a3)
  %f: f32[11,5] = random_normal(seed=9)
  %n4: f32[11,5], %m4: f32[5], %v4: f32[5] = batch_norm(%f, %w, %b, %rm, %rv, training=true)
  %y4: f32[11,5] = relu(%n4)
  output y1 = %y1
  output y2 = %y2
  output y3 = %y3
  output y4 = %y4
  output m1 = %m1
}
)", "bn_epilogue.ir");
  std::string text = kir::print(lower({{"forward", g.get()}}, {.fuse = true}));
  CHECK(text.find("relu") == std::string::npos);  // no kernel of its own
  CHECK(text.find("# fused: %n1, %a1, %y1") != std::string::npos);
  CHECK(text.find("# fused: %n3, %a3, %y3") != std::string::npos);
  compare_compiled_with_reference(*g, kF32);
}

TEST_CASE("a leaky ReLU after a batch norm whose output is read elsewhere is stored beside it", "[codegen][fusion]") {
  // The DCGAN discriminator's batch norm: its output is the leaky ReLU's input and is read by
  // the backward (an output here), so no epilogue; the leaky ReLU follows in the same store
  // loop. Training and eval, a plane of odd size and a batch norm over [N, C]; 1 and 2
  // threads on every vector width the host has.
  auto g = parse_verified(R"(graph bn_follower {
  %x: f32[3,5,7,9] = random_normal(seed=1)
  %w: f32[5] = random_uniform(seed=5)
  %b: f32[5] = random_normal(seed=6)
  %rm: f32[5] = random_uniform(seed=7)
  %rv: f32[5] = random_uniform(low=0.5, high=1.5, seed=8)
  %n1: f32[3,5,7,9], %m1: f32[5], %v1: f32[5] = batch_norm(%x, %w, %b, %rm, %rv, training=true)
  %y1: f32[3,5,7,9] = leaky_relu(%n1, alpha=0.2)
  %n2: f32[3,5,7,9], %m2: f32[5], %v2: f32[5] = batch_norm(%x, %w, %b, %rm, %rv, training=false)
  %y2: f32[3,5,7,9] = leaky_relu(%n2, alpha=0.1)
  %f: f32[11,5] = random_normal(seed=9)
  %n3: f32[11,5], %m3: f32[5], %v3: f32[5] = batch_norm(%f, %w, %b, %rm, %rv, training=true)
  %y3: f32[11,5] = leaky_relu(%n3, alpha=0.2)
  output n1 = %n1
  output y1 = %y1
  output n2 = %n2
  output y2 = %y2
  output n3 = %n3
  output y3 = %y3
}
)", "bn_follower.ir");
  std::string text = kir::print(lower({{"forward", g.get()}}, {.fuse = true}));
  CHECK(text.find("_leaky_relu ") == std::string::npos);  // no kernel of its own
  for (const char* fused : {"# fused: %n1, %y1", "# fused: %n2, %y2", "# fused: %n3, %y3"}) CHECK(text.find(fused) != std::string::npos);
  for (Isa isa : test::host_paths()) {
    test::ForcedIsa forced(isa);
    for (int threads : {1, 2}) {
      INFO(fmt::format("{} on {} threads", isa_name(isa), threads));
      stag_set_num_threads(threads);
      compare_compiled_with_reference(*g, kF32);
      stag_set_num_threads(0);
    }
  }
}

// Rows of `n` logits: row 0 mixes arguments of exp far below its underflow (-inf, -1000, the
// largest x whose exp rounds to 0) with ordinary ones; in row 1 only the smallest x whose exp
// does not round to 0 stands beside the max, so its probability is that subnormal exp; row 2
// is a causal mask's first row. The max of each row is 0, so x is exp's argument exactly.
// cross_entropy reads -1000 for -inf (with -inf it gives NaN in the reference and compiled).
std::string underflow_graph(const std::string& dt, double zero_at, double last_nonzero, int64_t n) {
  double inf = std::numeric_limits<double>::infinity();
  std::vector<double> x(3 * n, -inf);
  const double row0[] = {-inf, -1000, zero_at, -90, -3, 0.25, last_nonzero};
  for (int64_t j = 0; j < n; ++j) x[j] = j == 0 ? 0 : row0[j % 7];
  x[n + 5] = 0;
  x[n + 7] = last_nonzero;
  x[3 * n - 1] = 0;
  return fmt::format(R"(graph underflow {{
  %x: {0}[3,{1}] = constant(value=[{2}])
  %floor: {0}[] = constant(value=[-1000.0])
  %xf: {0}[3,{1}] = maximum(%x, %floor)
  %label: i64[3] = constant(value=[4, 5, {3}])
  %s: {0}[3,{1}] = softmax(%x)
  %ls: {0}[3,{1}] = log_softmax(%x)
  %ce: {0}[3] = cross_entropy(%xf, %label, reduction="none")
  output s = %s
  output ls = %ls
  output ce = %ce
}}
)", dt, n, fmt::join(x, ", "), n - 1);
}

TEST_CASE("softmax, log_softmax and cross-entropy give exp's underflow exactly 0 and keep its last subnormal", "[codegen]") {
  // Their exp answers arguments at or below zero_at by a compare (glibc's vector exp is slow
  // on them); the subnormal just above must still come from exp.
  const double f32_zero = -103.97208404541016, f64_zero = -745.1332191019412;
  const double f32_last = std::nextafter(static_cast<float>(f32_zero), 0.0f), f64_last = std::nextafter(f64_zero, 0.0);
  for (auto [dt, zero_at, last, tol] : {std::tuple{"f32", f32_zero, f32_last, kF32}, std::tuple{"f64", f64_zero, f64_last, kF64}}) {
    const int64_t n = 37;
    INFO(dt);
    auto g = parse_verified(underflow_graph(dt, zero_at, last, n), "underflow.ir");
    CHECK(kir::print(lower(*g)).find(fmt::format("<= {})", zero_at)) != std::string::npos);
    RefResult want = interpret(*g, {});
    CompiledModel c = compile_jit(*g);
    auto outs = c.model->run("forward", {});
    for (size_t o = 0; o < outs.size(); ++o) {
      const std::string& name = c.model->manifest().function("forward").outputs[o].name;
      const auto& ref = want.outputs.at(name).data;
      auto got = to_doubles(outs[o]);
      REQUIRE(got.size() == ref.size());
      for (size_t i = 0; i < got.size(); ++i) {
        INFO(fmt::format("{} element {}: compiled {} reference {}", name, i, got[i], ref[i]));
        if (std::isinf(ref[i])) CHECK(got[i] == ref[i]);
        else CHECK(std::fabs(got[i] - ref[i]) <= tol.abs + tol.rel * std::fabs(ref[i]));
      }
      if (name != "s") continue;
      for (int64_t j = 1; j < n; ++j) {
        INFO("row 0 column " << j);
        if (j % 7 <= 2) CHECK(got[j] == 0);
        if (j % 7 >= 3 && j % 7 <= 5) CHECK(got[j] > 0);
      }
      CHECK(got[n + 7] > 0);
      CHECK(std::count(got.begin() + 2 * n, got.end(), 0.0) == n - 1);
    }
  }
}

TEST_CASE("a loop marked vectorized is vectorized by LLVM, however short", "[codegen]") {
  // Six strided reads a row: LLVM unrolls the loop whole and leaves it scalar, unless asked.
  auto g = parse_verified(R"(graph strided {
  %x: f32[4,12] = input()
  %y: f32[4,6] = slice(%x, axes=[1], starts=[0], ends=[12], steps=[2])
  output y = %y
}
)", "strided.ir");
  kir::Program p = lower(*g);
  kir::Stmt& row = p.functions.back().kernels.at(0).body.at(0);
  REQUIRE(row.kind == kir::SK::For);
  CHECK(llvm_ir_text(p, true).find("llvm.loop.isvectorized") == std::string::npos);
  row.vectorize = true;
  CHECK(kir::print(p).find("for i1 in 0..6 vectorized {") != std::string::npos);
  std::string ir = llvm_ir_text(p, true);
  CHECK(ir.find("llvm.loop.isvectorized") != std::string::npos);
  CHECK(ir.find("llvm.loop.vectorize.enable") == std::string::npos);  // taken up, nothing to warn about
}

TEST_CASE("a max pool's rows of windows and its gradient's are vectorized", "[codegen]") {
  // The taps of a 2 x 2 window are unrolled: LLVM vectorizes only innermost loops. AlexNet's
  // first pool (rows of 14 windows: two vector loops of 8).
  for (const char* op : {"max_pool2d(%x, kernel=[2, 2])", "max_pool2d_grad(%x, %dy, kernel=[2, 2])"}) {
    INFO(op);
    bool grad = std::string_view(op).find("grad") != std::string_view::npos;
    auto g = parse_verified(fmt::format(R"(graph pool {{
  %x: f32[2,3,28,28] = input()
  %dy: f32[2,3,14,14] = input()
  %y: f32[{}] = {}
  output y = %y
}}
)", grad ? "2,3,28,28" : "2,3,14,14", op), "pool.ir");
    std::string ir = llvm_ir_text(lower(*g), true);
    CHECK(ir.find("llvm.loop.isvectorized") != std::string::npos);
    CHECK(ir.find("llvm.loop.vectorize.enable") == std::string::npos);
  }
}

TEST_CASE("kernels skip the O3 passes that find nothing in them and compute the same", "[codegen]") {
  // A zero fill: O3's idiom recognition would make its loop a memset call; kernels skip that
  // pass (compiler/jit/pipeline.h), so the loop stays a loop of vector stores.
  auto g = parse_verified(R"(graph zeros {
  %w: f32[600] = parameter()
  %r: f32[600] = relu(%w)
  output r = %r
}
)", "zeros.ir");
  kir::Program p = lower(*g);
  REQUIRE(kir::print(p).find("init %w zeros") != std::string::npos);
  std::string ir = llvm_ir_text(p, true);
  CHECK(ir.find("llvm.memset") == std::string::npos);
  std::string init = ir.substr(ir.find("define hidden void @stag_zeros_init.k0"));
  init = init.substr(0, init.find("\n}\n"));
  CHECK(init.find("store <") != std::string::npos);
  // Every call fills exactly its range: the whole parameter, over what was there before.
  CompiledModel c = compile_jit(*g);
  auto& w = c.model->param("w");
  auto before = w.values<float>();
  std::fill(before.begin(), before.end(), 1.0f);
  c.model->init(1);
  auto values = test::to_doubles(c.model->param("w"));
  CHECK(std::count(values.begin(), values.end(), 0.0) == 600);
}

TEST_CASE("elementwise kernels run a plane's unbroadcast axes as one loop and match the reference", "[codegen]") {
  // Odd sizes; operands broadcast along the channel, along the row, and not at all; a batch
  // norm whose plane is one loop; a reshape below the chain (read through its flat index);
  // sums of a fused chain around the channel axis.
  auto g = parse_verified(R"(graph planes {
  %x: f32[3,5,7,9] = random_normal(seed=1)
  %y: f32[3,5,7,9] = random_normal(seed=2)
  %c: f32[1,5,1,1] = random_uniform(seed=3)
  %r: f32[7,1] = random_uniform(seed=4)
  %w: f32[5] = random_uniform(seed=5)
  %b: f32[5] = random_normal(seed=6)
  %f: f32[3,5,63] = random_normal(seed=7)
  %fr: f32[3,5,7,9] = reshape(%f, shape=[3,5,7,9])
  %s: f32[3,5,7,9] = add(%x, %y)
  %m: f32[3,5,7,9] = mul(%s, %c)
  %t: f32[3,5,7,9] = tanh(%m)
  %p: f32[3,5,7,9] = sub(%x, %fr)
  %q: f32[3,5,7,9] = mul(%p, %r)
  %c5: f32[5] = random_uniform(seed=8)
  %v5: f32[5] = random_uniform(low=0.5, high=1.5, seed=9)
  %n: f32[3,5,7,9], %mean: f32[5], %var: f32[5] = batch_norm(%x, %w, %b, %c5, %v5, training=true)
  %l: f32[3,5,7,9] = leaky_relu(%n, alpha=0.2)
  %sm: f32[1,5,1,1] = sum(%m, axes=[0,2,3], keepdims=true)
  %mq: f32[5] = mean(%q, axes=[0,2,3])
  output t = %t
  output q = %q
  output sm = %sm
  output mq = %mq
  output l = %l
  output mean = %mean
}
)", "planes.ir");
  kir::Program p = lower(*g);
  std::string text = kir::print(p);
  CHECK(text.find("0..315 {") != std::string::npos);  // nothing broadcast: an image's 5 x 7 x 9 elements
  CHECK(text.find("0..63 {") != std::string::npos);   // broadcast along the channel: a 7 x 9 plane
  compare_compiled_with_reference(*g, kF32);
}

TEST_CASE("kernels that differ only in length share one function and inits of one distribution share one", "[codegen]") {
  auto g = parse_verified(R"(graph shared {
  %a: f32[600] = parameter(init="normal", mean=0.0, std=0.5)
  %b: f32[50] = parameter(init="normal", mean=1.0, std=0.1)
  %c: f32[7] = parameter(init="uniform", low=-1.0, high=1.0)
  %ra: f32[600] = relu(%a)
  %rb: f32[50] = relu(%b)
  %rc: f32[7] = relu(%c)
  output ra = %ra
  output rb = %rb
  output rc = %rc
}
)", "shared.ir");
  kir::Program p = lower(*g);
  std::string ir = llvm_ir_text(p, false);
  auto functions = [&](const std::string& kind) {
    size_t n = 0;
    for (size_t at = ir.find("define "); at != std::string::npos; at = ir.find("define ", at + 1))
      n += ir.substr(at, ir.find('(', at) - at).find(kind) != std::string::npos;
    return n;
  };
  CHECK(functions("_relu") == 1);  // three relus of 600, 50 and 7 elements
  CHECK(functions("_init.k") == 2);  // the normals, the uniform
  // Each call runs its own length and its own parameter's draws.
  CompiledModel c = compile_jit(*g);
  c.model->init(3);
  auto outs = c.model->run("forward", {});
  const char* names[] = {"a", "b", "c"};
  for (size_t i = 0; i < 3; ++i) {
    auto w = test::to_doubles(c.model->param(names[i]));
    auto r = test::to_doubles(outs[i]);
    REQUIRE(r.size() == w.size());
    for (size_t k = 0; k < w.size(); ++k) CHECK(r[k] == std::max(w[k], 0.0));
  }
  auto a = test::to_doubles(c.model->param("a")), b = test::to_doubles(c.model->param("b"));
  auto cs = test::to_doubles(c.model->param("c"));
  double mean_b = 0;
  for (double v : b) mean_b += v / static_cast<double>(b.size());
  CHECK(mean_b == Approx(1.0).margin(0.05));
  CHECK(std::all_of(cs.begin(), cs.end(), [](double v) { return v >= -1 && v < 1; }));
  CHECK(std::count_if(a.begin(), a.end(), [](double v) { return std::fabs(v) > 1.5; }) < 10);  // 3 sigma
  // Streams of their own: with one stream a's and b's standardised draws would agree.
  size_t same = 0;
  for (size_t k = 0; k < b.size(); ++k) same += std::fabs(a[k] / 0.5 - (b[k] - 1) / 0.1) < 1e-3;
  CHECK(same < 5);
}
