#pragma once
/// The host CPU as LLVM sees it: the target every compiled model is built for.

#include <string>
#include <vector>

namespace stag {

struct HostInfo {
  std::string llvm_version;  ///< e.g. "19.1.7"
  std::string triple;        ///< e.g. "x86_64-pc-linux-gnu"
  std::string cpu;           ///< e.g. "znver3"
  std::vector<std::string> features;  ///< the enabled vector features worth naming (avx2, fma, ...)
};

HostInfo host_info();

}  // namespace stag
