// Tensor construction, checked sizes and typed access.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "runtime/memory.h"
#include "runtime/tensor.h"

using namespace stag::rt;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;

TEST_CASE("dtype names and sizes", "[tensor]") {
  for (DType t : {DType::f32, DType::f64, DType::i32, DType::i64, DType::b8})
    CHECK(dtype_from_name(dtype_name(t)) == t);
  CHECK(dtype_name(DType::b8) == "bool");
  CHECK(!dtype_from_name("f16"));
  CHECK(dtype_size(DType::f32) == 4);
  CHECK(dtype_size(DType::f64) == 8);
  CHECK(dtype_size(DType::i32) == 4);
  CHECK(dtype_size(DType::i64) == 8);
  CHECK(dtype_size(DType::b8) == 1);
}

TEST_CASE("tensors are zeroed, aligned and sized", "[tensor]") {
  Tensor t(DType::f64, {3, 5});
  CHECK(t.numel() == 15);
  CHECK(t.nbytes() == 120);
  CHECK(t.rank() == 2);
  CHECK(reinterpret_cast<uintptr_t>(t.data()) % 64 == 0);
  for (double v : t.values<double>()) CHECK(v == 0.0);
  t.at<double>({2, 4}) = 7.5;
  CHECK(t.values<double>()[14] == 7.5);
  CHECK(t.type_string() == "f64[3,5]");

  Tensor s(DType::i32, {});
  CHECK(s.numel() == 1);
  CHECK(s.rank() == 0);
  s.at<int32_t>({}) = -3;
  CHECK(s.values<int32_t>()[0] == -3);

  Tensor e(DType::f32, {4, 0});
  CHECK(e.numel() == 0);
  CHECK(e.nbytes() == 0);
}

TEST_CASE("long-lived tensors are zeroed and aligned as others are", "[tensor]") {
  // Above 2 MiB a long-lived tensor has its own mapping; below, the heap.
  for (int64_t n : {int64_t{5}, int64_t{3} << 18, (int64_t{3} << 18) + 7}) {
    Tensor t = Tensor::long_lived(DType::f32, {n});
    CHECK(t.numel() == n);
    CHECK(reinterpret_cast<uintptr_t>(t.data()) % 64 == 0);
    auto v = t.values<float>();
    CHECK(std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; }));
    v[0] = 1.0f;
    v[static_cast<size_t>(n - 1)] = 2.0f;
    Tensor moved = std::move(t);
    CHECK(moved.values<float>()[static_cast<size_t>(n - 1)] == 2.0f);
    moved = Tensor::long_lived(DType::f32, {n});  // the old buffer is freed the way it was allocated
    CHECK(moved.values<float>()[0] == 0.0f);
  }
  CHECK(Tensor::long_lived(DType::f32, {0}).nbytes() == 0);
}

TEST_CASE("typed access checks dtype and bounds", "[tensor]") {
  Tensor t(DType::f32, {2, 2});
  CHECK_THROWS_WITH(t.values<double>(), Contains("f32[2,2] accessed as f64"));
  CHECK_THROWS_WITH(t.at<float>({2, 0}), Contains("out of range"));
  CHECK_THROWS_WITH(t.at<float>({0}), Contains("index of rank 1"));
}

TEST_CASE("from, clone, move and identical", "[tensor]") {
  Tensor a = Tensor::from<int64_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(a.at<int64_t>({1, 0}) == 4);
  Tensor b = a.clone();
  CHECK(identical(a, b));
  CHECK(b.data() != a.data());
  b.at<int64_t>({0, 0}) = 9;
  CHECK(!identical(a, b));
  Tensor c = std::move(b);
  CHECK(c.at<int64_t>({0, 0}) == 9);
  CHECK_THROWS_WITH(Tensor::from<float>({3}, {1.f, 2.f}), Contains("2 values for a tensor of type f32[3]"));
  Tensor flags = Tensor::from<bool>({2}, {true, false});
  CHECK(flags.dtype() == DType::b8);
}

TEST_CASE("sizes are overflow-checked, never wrapped", "[tensor]") {
  const int64_t big = int64_t{1} << 32;
  CHECK_THROWS_WITH(shape_numel(std::vector<int64_t>{big, big}), Contains("more elements than fit in int64"));
  CHECK_THROWS_WITH(Tensor(DType::f32, {big, big}), Contains("more elements than fit in int64"));
  // The element count fits, the byte count does not.
  const int64_t n = std::numeric_limits<int64_t>::max() / 4;
  CHECK(shape_numel(std::vector<int64_t>{n}) == n);
  CHECK_THROWS_WITH(shape_nbytes(DType::f64, std::vector<int64_t>{n}),
                    Contains("needs more bytes than fit in int64"));
  CHECK_THROWS_WITH(Tensor(DType::f32, {2, -1}), Contains("negative dimension"));
  CHECK_THROWS_WITH(Tensor(DType::f32, Shape(65, 1)), Contains("rank 65"));
  // A zero dimension makes everything after it harmless.
  CHECK(shape_numel(std::vector<int64_t>{0, big, big}) == 0);
}

TEST_CASE("an impossible allocation is an Error, not a crash", "[tensor][allocator]") {
  CHECK_THROWS_AS(Tensor(DType::f32, {int64_t{1} << 60}), Error);
  // A user error (exit 1), in human units, like the memory check that normally comes first.
  CHECK_THROWS_AS(Tensor(DType::f32, {int64_t{1} << 60}), MemoryError);
  CHECK_THROWS_WITH(Tensor(DType::f32, {int64_t{1} << 60}),
                    Equals("out of memory allocating 4.6 EB for tensor f32[1152921504606846976]"));
  CHECK_THROWS_AS(Tensor::long_lived(DType::f32, {int64_t{1} << 60}), MemoryError);
}
