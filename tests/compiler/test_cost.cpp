// The static cost model behind the profiler's GFLOP/s and GB/s: on hand-built kernels whose
// counts are known in closed form, and on the matmul kernels the lowering emits.

#include <catch2/catch.hpp>

#include "compiler/lower/cost.h"
#include "compiler/lower/lower.h"
#include "ir/parser.h"
#include "ir/verifier.h"

using namespace stag;
using namespace stag::kir;

namespace {

int buffer(Program& p, const std::string& name, DType t, Dims dims) {
  Buffer b;
  b.name = name;
  b.type = Type{t, std::move(dims)};
  b.kind = BufKind::Temp;
  return p.add_buffer(std::move(b));
}

// C[M,N] = A[M,K] B[K,N] as the lowering writes it: row i per p, C zeroed, then the k loop
// around the j loop accumulating into C in memory.
Kernel matmul_kernel(int a, int b, int c, int64_t M, int64_t N, int64_t K) {
  Kernel k;
  k.name = "matmul";
  k.vars = {{"p", DType::i64}, {"j", DType::i64}, {"k", DType::i64}};
  k.extent = M;
  E p = var(0, DType::i64), j = var(1, DType::i64), kk = var(2, DType::i64);
  E at = add(mul(p, int_(N)), j);
  E sum = bin(Bin::add, load(c, DType::f32, at),
              bin(Bin::mul, load(a, DType::f32, add(mul(p, int_(K)), kk)), load(b, DType::f32, add(mul(kk, int_(N)), j))));
  k.body = {for_(1, 0, N, {store(c, at, float_(0, DType::f32))}), for_(2, 0, K, {for_(1, 0, N, {store(c, at, sum)})})};
  return k;
}

const Kernel& only_kernel_named(const Program& p, const std::string& part) {
  const Kernel* found = nullptr;
  for (const auto& k : p.functions.back().kernels)
    if (k.name.find(part) != std::string::npos) {
      REQUIRE(found == nullptr);
      found = &k;
    }
  REQUIRE(found != nullptr);
  return *found;
}

Program lowered(const std::string& text) {
  Diagnostics diags;
  auto g = parse_ir(text, "cost.ir", diags);
  REQUIRE(g);
  REQUIRE(verify(*g, diags));
  return lower(*g);
}

}  // namespace

TEST_CASE("cost: a hand-built matmul does 2·M·N·K flops") {
  Program p;
  const int64_t M = 6, N = 7, K = 9;
  int a = buffer(p, "a", DType::f32, {M, K}), b = buffer(p, "b", DType::f32, {K, N}), c = buffer(p, "c", DType::f32, {M, N});
  Cost cost = kir::cost(p, matmul_kernel(a, b, c, M, N, K));
  CHECK(cost.flops == 2.0 * M * N * K);
  // Per row: N zero stores, then per (k, j) three loads and a store, 4 bytes each.
  CHECK(cost.bytes == static_cast<double>(M * (N * 4 + K * N * 16)));
}

TEST_CASE("cost: a dot-product kernel in f64, with its accumulator in a variable") {
  Program p;
  const int64_t N = 5, K = 11;
  int a = buffer(p, "a", DType::f64, {N, K}), c = buffer(p, "c", DType::f64, {N});
  Kernel k;
  k.vars = {{"p", DType::i64}, {"k", DType::i64}, {"acc", DType::f64}};
  k.extent = N;
  E p0 = var(0, DType::i64), kk = var(1, DType::i64), acc = var(2, DType::f64);
  E x = load(a, DType::f64, add(mul(p0, int_(K)), kk));
  k.body = {assign(2, float_(0, DType::f64)), for_(1, 0, K, {assign(2, bin(Bin::add, acc, bin(Bin::mul, x, x)))}),
            store(c, p0, acc)};
  Cost cost = kir::cost(p, k);
  CHECK(cost.flops == 2.0 * N * K);
  // x * x loads x once: codegen emits a shared subexpression once per statement.
  CHECK(cost.bytes == static_cast<double>(N * (K * 8 + 8)));
}

TEST_CASE("cost: compares, selects, casts and index arithmetic are not flops") {
  Program p;
  int x = buffer(p, "x", DType::f32, {100}), idx = buffer(p, "idx", DType::i32, {100}), y = buffer(p, "y", DType::f32, {100});
  Kernel k;
  k.vars = {{"p", DType::i64}};
  k.extent = 100;
  E p0 = var(0, DType::i64);
  E v = load(x, DType::f32, cast(load(idx, DType::i32, p0), DType::i64));
  E relu = select(bin(Bin::gt, v, float_(0, DType::f32)), v, float_(0, DType::f32));
  k.body = {store(y, bin(Bin::rem, bin(Bin::add, p0, int_(1)), int_(100)), relu)};
  Cost cost = kir::cost(p, k);
  CHECK(cost.flops == 0);
  CHECK(cost.bytes == 100.0 * (4 + 4 + 4));
  // One transcendental an element is one flop.
  k.body = {store(y, p0, un(Un::exp, load(x, DType::f32, p0)))};
  CHECK(kir::cost(p, k).flops == 100);
}

TEST_CASE("cost: the matmul kernels the lowering emits do 2·M·N·K flops") {
  const int64_t M = 3, N = 7, K = 5;
  SECTION("plain") {
    Program p = lowered(R"(graph mm {
  %a: f32[3,5] = input()
  %b: f32[5,7] = input()
  %c: f32[3,7] = matmul(%a, %b)
  output c = %c
})");
    CHECK(cost(p, only_kernel_named(p, "matmul")).flops == 2.0 * M * N * K);
  }
  SECTION("B transposed") {
    Program p = lowered(R"(graph mm {
  %a: f32[3,5] = input()
  %b: f32[7,5] = input()
  %c: f32[3,7] = matmul(%a, %b, transpose_b=true)
  output c = %c
})");
    CHECK(cost(p, only_kernel_named(p, "matmul")).flops == 2.0 * M * N * K);
  }
  SECTION("batched, A transposed") {
    Program p = lowered(R"(graph mm {
  %a: f32[4,5,3] = input()
  %b: f32[4,5,7] = input()
  %c: f32[4,3,7] = matmul(%a, %b, transpose_a=true)
  output c = %c
})");
    CHECK(cost(p, only_kernel_named(p, "matmul")).flops == 4 * 2.0 * M * N * K);
  }
}
