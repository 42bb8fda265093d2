#pragma once
/// The data pipeline's random numbers: splitmix64, fully specified here so that the same seed
/// gives the same shuffles and augmentations on every machine and standard library.
///
/// std::mt19937 is portable but std::uniform_int_distribution and friends are not (their
/// algorithms are implementation-defined), so the runtime draws bounded integers and floats itself.
///
/// - `splitmix64_next(state)`: state += 0x9E3779B97F4A7C15; z = state; z = (z ^ z>>30) *
///   0xBF58476D1CE4E5B9; z = (z ^ z>>27) * 0x94D049BB133111EB; return z ^ z>>31 (Vigna's
///   reference; seed 0 gives 0xE220A8397B1DCDAF first).
/// - `derive_seed(seed, stream, counter)` = mix(mix(seed + stream * C1) + counter * C2) with mix
/// the
///   splitmix64 finaliser: independent generators for (seed, purpose, epoch/example) without
///   storing any state, which is what makes a resumed run draw the same numbers.
/// - `below(n)`: uniform in [0, n) by rejection: draws x until x >= 2^64 mod n, returns x mod n.
/// - `uniform01()`: (next() >> 11) * 2^-53, in [0, 1).

#include <cstdint>

namespace stag::rt {

/// The splitmix64 output function (finaliser) applied to z.
constexpr uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Advances the state and returns the next output.
constexpr uint64_t splitmix64_next(uint64_t& state) {
  state += 0x9E3779B97F4A7C15ull;
  return splitmix64_mix(state);
}

/// Streams: one per purpose, so that e.g. shuffling and augmentation never share numbers.
enum class RngStream : uint64_t { shuffle = 1, split = 2, kfold = 3, augment = 4, sample = 5, balance = 6 };

/// A seed for (seed, stream, counter); see the file comment for the formula.
constexpr uint64_t derive_seed(uint64_t seed, RngStream stream, uint64_t counter) {
  uint64_t s = splitmix64_mix(seed + static_cast<uint64_t>(stream) * 0xD1B54A32D192ED03ull);
  return splitmix64_mix(s + counter * 0x9E3779B97F4A7C15ull);
}

/// A splitmix64 generator with the portable bounded and float draws.
class Rng {
 public:
  explicit constexpr Rng(uint64_t seed) : state_(seed) {}
  /// The next 64 random bits.
  constexpr uint64_t next() { return splitmix64_next(state_); }
  /// Uniform in [0, n); n must be > 0.
  constexpr uint64_t below(uint64_t n) {
    uint64_t threshold = (0 - n) % n;  // 2^64 mod n: values below it would bias the result
    for (;;) {
      uint64_t x = next();
      if (x >= threshold) return x % n;
    }
  }
  /// Uniform in [0, 1) with 53 random bits.
  constexpr double uniform01() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform in [lo, hi).
  constexpr double uniform(double lo, double hi) { return lo + (hi - lo) * uniform01(); }

 private:
  uint64_t state_;
};

}  // namespace stag::rt
