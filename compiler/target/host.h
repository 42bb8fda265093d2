#pragma once
/// The host CPU as LLVM sees it: the target every compiled model is built for. Codegen asks
/// it which micro-kernel and vector functions to use, the JIT which machine to build; it
/// depends on neither, so both can include it.

#include <string>
#include <string_view>
#include <vector>

namespace stag {

struct HostInfo {
  std::string llvm_version;  ///< e.g. "19.1.7"
  std::string triple;        ///< e.g. "x86_64-pc-linux-gnu"
  std::string cpu;           ///< e.g. "znver3"
  std::vector<std::string> features;  ///< the enabled vector features worth naming (avx2, fma, ...)
  /// Whether `feature` is one of `features`.
  bool has(std::string_view feature) const;
};

HostInfo host_info();

/// The instruction sets the micro-kernels are written for, in order: each includes the ones
/// before it. `avx512bf16` adds VDPBF16PS, `amx` the tile unit's TDPBF16PS.
enum class Isa { generic, avx2, avx512, avx512bf16, amx };

/// The micro-kernels' ISA: the best the host has (from CPUID, not the CPU's name), or the lower
/// one `STAG_ISA` names (`generic`, `avx2`, `avx512`, `avx512bf16`, `amx`), so every path the
/// host supports can be run. Throws std::runtime_error for a name it does not know or an ISA
/// the host lacks.
Isa host_isa();
/// The best ISA the host has, whatever STAG_ISA says.
Isa detected_isa();
const char* isa_name(Isa isa);

/// Every feature LLVM detects on the host, as a TargetMachine feature string ("+avx2,-amx-tile,..."):
/// the CPU name alone leaves some off (AMX, bf16 under some hypervisors).
std::string host_feature_string();

}  // namespace stag
