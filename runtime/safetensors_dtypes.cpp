// safetensors dtype table.
#include "runtime/safetensors_dtypes.h"

namespace stag::rt {

namespace {

// Ranks follow the reference enum: BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32,
// F32, F64, I64, U64 (later versions insert new types without changing this relative order).
constexpr SafetensorsDType kTypes[] = {
    {"BOOL", 1, DType::b8, 0},   {"F16", 2, DType::f32, 7},  {"BF16", 2, DType::f32, 8},
    {"I32", 4, DType::i32, 9},   {"F32", 4, DType::f32, 11}, {"F64", 8, DType::f64, 12},
    {"I64", 8, DType::i64, 13},
};

}  // namespace

std::optional<SafetensorsDType> safetensors_dtype(std::string_view name) {
  for (const auto& t : kTypes)
    if (t.name == name) return t;
  return std::nullopt;
}

SafetensorsDType safetensors_dtype(DType t) {
  switch (t) {
    case DType::f32: return kTypes[4];
    case DType::f64: return kTypes[5];
    case DType::i32: return kTypes[3];
    case DType::i64: return kTypes[6];
    case DType::b8: return kTypes[0];
  }
  return kTypes[4];
}

}  // namespace stag::rt
