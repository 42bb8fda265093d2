#pragma once
/// Data checks of generated code: a kernel that meets bad data (an index out of range) calls
/// stag_check_failed instead of reading out of bounds; the caller turns it into an error.

#include <cstdint>
#include <optional>

extern "C" {
/// Records a failed check: the first one wins until it is taken. Safe from any thread.
void stag_check_failed(int64_t code, int64_t value);
}

namespace stag::rt {

struct CheckFailure {
  int64_t code;   ///< index into the program's check messages
  int64_t value;  ///< the offending value
};

/// The first failure since the last call, if any; clears it.
std::optional<CheckFailure> take_check_failure();

}  // namespace stag::rt
