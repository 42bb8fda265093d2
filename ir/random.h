#pragma once
/// The counter-based generator behind dropout and the random ops: Philox4x32-10, keyed by a
/// node's seed and a step key, counted by element index. The reference interpreter and the
/// compiled kernels draw exactly the same numbers, so a step is reproducible anywhere.

#include <array>
#include <cmath>
#include <cstdint>

namespace stag {

/// Philox4x32 with 10 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3").
inline std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key) {
  constexpr uint32_t kMul0 = 0xD2511F53, kMul1 = 0xCD9E8D57;
  constexpr uint32_t kWeyl0 = 0x9E3779B9, kWeyl1 = 0xBB67AE85;
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(kMul0) * ctr[0];
    uint64_t p1 = static_cast<uint64_t>(kMul1) * ctr[2];
    ctr = {static_cast<uint32_t>(p1 >> 32) ^ ctr[1] ^ key[0], static_cast<uint32_t>(p1),
           static_cast<uint32_t>(p0 >> 32) ^ ctr[3] ^ key[1], static_cast<uint32_t>(p0)};
    key[0] += kWeyl0;
    key[1] += kWeyl1;
  }
  return ctr;
}

/// Two independent 32-bit draws for element `index` of the stream (seed, step).
inline std::array<uint32_t, 2> random_bits(int64_t seed, int64_t step, int64_t index) {
  auto s = static_cast<uint64_t>(seed), k = static_cast<uint64_t>(step), i = static_cast<uint64_t>(index);
  auto out = philox4x32({static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32), static_cast<uint32_t>(k),
                         static_cast<uint32_t>(k >> 32)},
                        {static_cast<uint32_t>(s), static_cast<uint32_t>(s >> 32)});
  return {out[0], out[1]};
}

/// Uniform in [0, 1) with 24 random bits, exactly representable in f32.
inline double bits_to_unit(uint32_t bits) { return static_cast<double>(bits >> 8) * (1.0 / 16777216.0); }

inline double random_uniform01(int64_t seed, int64_t step, int64_t index) {
  return bits_to_unit(random_bits(seed, step, index)[0]);
}

/// Standard normal by Box-Muller on the element's two draws (1 - u keeps the log finite).
inline double random_standard_normal(int64_t seed, int64_t step, int64_t index) {
  auto b = random_bits(seed, step, index);
  double u1 = 1.0 - bits_to_unit(b[0]), u2 = bits_to_unit(b[1]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace stag
