// CPUID as the compiler's host detection reads it: the same feature sets make each level.

#include "runtime/cpu.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "runtime/error.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace stag::rt {

namespace {

constexpr std::array<const char*, 5> kLevels = {"generic", "avx2", "avx512", "avx512bf16", "amx"};

int level_of(const std::string& name) {
  auto it = std::find_if(kLevels.begin(), kLevels.end(), [&](const char* n) { return name == n; });
  return it == kLevels.end() ? -1 : static_cast<int>(it - kLevels.begin());
}

#if defined(__x86_64__)
// AMX needs the tile features and the OS's consent (XTILEDATA in XCR0); CPUID leaf 7's EDX.
bool has_amx() {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return (d & (1u << 24)) && (d & (1u << 22));
}

int cpu_level() {
  __builtin_cpu_init();
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return 0;
  if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))) return 1;
  if (!__builtin_cpu_supports("avx512bf16")) return 2;
  return has_amx() ? 4 : 3;
}
#else
int cpu_level() { return 0; }
#endif

}  // namespace

std::string cpu_isa() { return kLevels[static_cast<size_t>(cpu_level())]; }

void check_cpu_isa(const std::string& needed) {
  int want = level_of(needed);
  if (want < 0) throw Error(fmt::format("the compiled model needs an instruction set '{}' this runtime does not know", needed));
  if (want > cpu_level())
    throw Error(fmt::format("the compiled model was built for a CPU with {}; this CPU has only {}: compile it again on this machine",
                            needed, cpu_isa()));
}

}  // namespace stag::rt
