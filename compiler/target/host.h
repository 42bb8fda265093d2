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

/// Every feature LLVM detects on the host, as a TargetMachine feature string ("+avx2,-amx-tile,..."):
/// the CPU name alone leaves some off (AMX, bf16 under some hypervisors).
std::string host_feature_string();

}  // namespace stag
