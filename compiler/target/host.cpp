#include "compiler/target/host.h"

#include <llvm/ADT/StringMap.h>
#include <llvm/ADT/StringRef.h>
#include <llvm/Config/llvm-config.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/SubtargetFeature.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <stdexcept>

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

namespace {

constexpr std::array<const char*, 5> kIsaNames = {"generic", "avx2", "avx512", "avx512bf16", "amx"};

bool has_all(const llvm::StringMap<bool>& features, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (auto it = features.find(n); it == features.end() || !it->second) return false;
  return true;
}

}  // namespace

const char* isa_name(Isa isa) { return kIsaNames[static_cast<size_t>(isa)]; }

Isa detected_isa() {
  auto f = llvm::sys::getHostCPUFeatures();
  if (!has_all(f, {"avx512f", "avx512bw", "avx512vl"})) return has_all(f, {"avx2", "fma"}) ? Isa::avx2 : Isa::generic;
  if (!has_all(f, {"avx512bf16"})) return Isa::avx512;
  return has_all(f, {"amx-tile", "amx-bf16"}) ? Isa::amx : Isa::avx512bf16;
}

Isa host_isa() {
  Isa best = detected_isa();
  const char* forced = std::getenv("STAG_ISA");
  if (!forced || !*forced) return best;
  auto it = std::find_if(kIsaNames.begin(), kIsaNames.end(), [&](const char* n) { return std::string_view(n) == forced; });
  if (it == kIsaNames.end())
    throw std::runtime_error(fmt::format("STAG_ISA={}: expected one of {}", forced, fmt::join(kIsaNames, ", ")));
  auto isa = static_cast<Isa>(it - kIsaNames.begin());
  if (isa > best) throw std::runtime_error(fmt::format("STAG_ISA={}: this host has only {}", forced, isa_name(best)));
  return isa;
}

std::string host_feature_string() {
  llvm::SubtargetFeatures features;
  for (const auto& f : llvm::sys::getHostCPUFeatures()) features.AddFeature(f.first(), f.second);
  return features.getString();
}

}  // namespace stag
