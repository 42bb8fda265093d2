#pragma once
/// The runtime's element types. The runtime stands alone (no ir/), so it keeps its own enum with
/// the same spellings as the IR text.

#include <bit>
#include <cstdint>
#include <optional>
#include <string_view>

namespace stag::rt {

/// Element type of a runtime tensor. b8 is spelled "bool": one byte holding 0 or 1.
enum class DType : uint8_t { f32, f64, i32, i64, b8 };

/// The IR text spelling: "f32", "f64", "i32", "i64", "bool".
std::string_view dtype_name(DType t);
/// Inverse of dtype_name; nullopt for anything else.
std::optional<DType> dtype_from_name(std::string_view s);
/// Bytes in one element.
int64_t dtype_size(DType t);

/// The C++ element type that stores a DType, for typed access. bool is one byte on every ABI the
/// runtime targets, and files are checked to hold only 0 or 1 before a bool tensor is created.
template <class T>
struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::b8; };
/// dtype_of<T>::value.
template <class T>
inline constexpr DType dtype_of_v = dtype_of<T>::value;

static_assert(sizeof(bool) == 1, "bool tensors are stored one byte an element");
// File formats store little-endian bytes and the runtime copies them straight into tensors.
static_assert(std::endian::native == std::endian::little, "the runtime assumes a little-endian host");

}  // namespace stag::rt
