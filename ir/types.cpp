#include "ir/types.h"

#include <fmt/format.h>

namespace stag {

namespace {
struct DTypeInfo {
  DType dtype;
  std::string_view name;
  int64_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::f32, "f32", 4}, {DType::f64, "f64", 8}, {DType::i32, "i32", 4},
    {DType::i64, "i64", 8}, {DType::b8, "bool", 1},
};
}  // namespace

std::string_view dtype_name(DType t) { return kDTypes[static_cast<int>(t)].name; }
int64_t dtype_size(DType t) { return kDTypes[static_cast<int>(t)].size; }

std::optional<DType> dtype_from_name(std::string_view s) {
  for (const auto& d : kDTypes)
    if (d.name == s) return d.dtype;
  return std::nullopt;
}

std::string dims_to_string(const Dims& d) { return fmt::format("[{}]", fmt::join(d, ",")); }

std::string to_string(const Type& t) {
  return fmt::format("{}{}", dtype_name(t.dtype), dims_to_string(t.dims));
}

std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

std::optional<int64_t> checked_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

std::optional<int64_t> checked_numel(const Dims& d) {
  int64_t n = 1;
  for (int64_t x : d) {
    auto m = checked_mul(n, x);
    if (!m) return std::nullopt;
    n = *m;
  }
  return n;
}

std::string type_error(const Type& t) {
  if (t.rank() > kMaxRank)
    return fmt::format("rank {} exceeds the maximum rank {}", t.rank(), kMaxRank);
  for (size_t i = 0; i < t.rank(); ++i)
    if (t.dims[i] < 1)
      return fmt::format("dimension {} of {} is {}: dimensions must be at least 1", i,
                         to_string(t), t.dims[i]);
  // The byte size must fit too: buffers are addressed in bytes.
  auto n = checked_numel(t.dims);
  if (!n) return fmt::format("{} has more elements than fit in 64 bits", to_string(t));
  if (!checked_mul(*n, dtype_size(t.dtype)))
    return fmt::format("{} has {} elements, too many bytes for a 64-bit size", to_string(t), *n);
  return {};
}

}  // namespace stag
