#include "compiler/jit/host.h"

#include <llvm/ADT/StringMap.h>
#include <llvm/ADT/StringRef.h>
#include <llvm/Config/llvm-config.h>
#include <llvm/TargetParser/Host.h>

#include <algorithm>

namespace stag {

HostInfo host_info() {
  HostInfo info;
  info.llvm_version = LLVM_VERSION_STRING;
  info.triple = llvm::sys::getProcessTriple();
  info.cpu = llvm::sys::getHostCPUName().str();
  // The features that decide how kernels vectorize, in a stable order.
  static const char* const interesting[] = {"sse4.2", "avx", "avx2", "fma", "avx512f", "neon"};
  auto features = llvm::sys::getHostCPUFeatures();
  for (const char* name : interesting)
    if (auto it = features.find(name); it != features.end() && it->second) info.features.push_back(name);
  return info;
}

}  // namespace stag
