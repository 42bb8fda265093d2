#pragma once
/// Element types, static shapes and value types of the graph IR.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stag {

/// Element type of a tensor. f32 is for math, f64 for reference checks, i32/i64 for labels and
/// indices, b8 ("bool" in text) for masks and compare results.
enum class DType : uint8_t { f32, f64, i32, i64, b8 };

/// The spelling used in the IR text: f32, f64, i32, i64, bool.
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view s);
/// Size of one element in bytes.
int64_t dtype_size(DType t);
inline bool is_float(DType t) { return t == DType::f32 || t == DType::f64; }
inline bool is_int(DType t) { return t == DType::i32 || t == DType::i64; }

/// Largest rank the IR accepts; deeper tensors are a user error, never an allocation.
inline constexpr size_t kMaxRank = 8;

/// Dimensions of a static shape; rank 0 is a scalar. Every dimension is >= 1.
using Dims = std::vector<int64_t>;

/// A tensor type: element type and static shape, printed as `f32[64,784]` (`f32[]` for a scalar).
struct Type {
  DType dtype = DType::f32;
  Dims dims;

  size_t rank() const { return dims.size(); }
  bool operator==(const Type&) const = default;
};

std::string to_string(const Type& t);
std::string dims_to_string(const Dims& d);

/// Product of the dimensions, or nullopt when it does not fit in int64.
std::optional<int64_t> checked_numel(const Dims& d);
/// a*b and a+b, or nullopt on int64 overflow.
std::optional<int64_t> checked_mul(int64_t a, int64_t b);
std::optional<int64_t> checked_add(int64_t a, int64_t b);

/// Why a type is not valid (rank too large, a dimension below 1, element count overflows int64);
/// empty when it is valid.
std::string type_error(const Type& t);

}  // namespace stag
