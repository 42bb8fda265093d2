#pragma once
/// What every fuzz target shares: the libFuzzer entry point each defines, and the one rule they
/// check besides the sanitizers' — bad input ends in the user error its reader documents, nothing
/// else. An exception of another type escapes to libFuzzer (or the replay's main) as a finding.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace stag::fuzz {

inline std::string_view text_of(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}
inline std::span<const std::byte> bytes_of(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const std::byte*>(data), size};
}

/// Runs a reader; its documented user error (rt::Error) is the expected outcome for bad input.
template <class F>
void expect_user_error_only(F&& read) {
  try {
    read();
  } catch (const rt::Error&) {
  }
}

}  // namespace stag::fuzz
