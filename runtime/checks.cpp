#include "runtime/checks.h"

#include <atomic>

namespace {
// 0: clear, 1: being written, 2: recorded.
std::atomic<int> g_state{0};
int64_t g_code = 0, g_value = 0;
}  // namespace

extern "C" void stag_check_failed(int64_t code, int64_t value) {
  int expected = 0;
  if (!g_state.compare_exchange_strong(expected, 1, std::memory_order_acquire)) return;
  g_code = code;
  g_value = value;
  g_state.store(2, std::memory_order_release);
}

namespace stag::rt {

std::optional<CheckFailure> take_check_failure() {
  if (g_state.load(std::memory_order_acquire) != 2) return std::nullopt;
  CheckFailure f{g_code, g_value};
  g_state.store(0, std::memory_order_release);
  return f;
}

}  // namespace stag::rt
