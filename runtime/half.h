#pragma once
/// Conversion of 16-bit floats (IEEE half and bfloat16) to f32, for reading checkpoints saved in
/// reduced precision. Both conversions are exact.

#include <cstdint>

namespace stag::rt {

/// IEEE 754 binary16 bits to float, including subnormals, infinities and NaN payloads.
float f16_to_f32(uint16_t h);
/// bfloat16 bits to float (the top half of an f32).
float bf16_to_f32(uint16_t h);

}  // namespace stag::rt
