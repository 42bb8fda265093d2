#include "compiler/target/host.h"

#include <llvm/ADT/StringMap.h>
#include <llvm/ADT/StringRef.h>
#include <llvm/Config/llvm-config.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/SubtargetFeature.h>

#include <algorithm>

namespace stag {

bool HostInfo::has(std::string_view feature) const { return std::find(features.begin(), features.end(), feature) != features.end(); }

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

std::string host_feature_string() {
  llvm::SubtargetFeatures features;
  for (const auto& f : llvm::sys::getHostCPUFeatures()) features.AddFeature(f.first(), f.second);
  return features.getString();
}

}  // namespace stag
