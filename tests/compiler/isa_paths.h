#pragma once
// The ISA paths a kernel test runs on: every one the host supports, forced with STAG_ISA.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cstdlib>
#include <vector>

#include "compiler/target/host.h"

namespace stag::test {

/// Every ISA the host supports, best first; the ones it lacks are named once as skipped.
inline std::vector<Isa> host_paths() {
  std::vector<Isa> paths;
  for (int i = static_cast<int>(detected_isa()); i >= 0; --i) paths.push_back(static_cast<Isa>(i));
  static bool said = false;
  for (int i = static_cast<int>(detected_isa()) + 1; i <= static_cast<int>(Isa::amx) && !said; ++i)
    WARN(fmt::format("SKIPPED: the paths of {} (this host has only {})", isa_name(static_cast<Isa>(i)), isa_name(detected_isa())));
  said = true;
  return paths;
}

/// STAG_ISA set for the object's lifetime.
struct ForcedIsa {
  explicit ForcedIsa(Isa isa) { setenv("STAG_ISA", isa_name(isa), 1); }
  ~ForcedIsa() { unsetenv("STAG_ISA"); }
};

}  // namespace stag::test
