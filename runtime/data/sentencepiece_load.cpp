// Finds and loads the SentencePiece module (sentencepiece_abi.h) once per process.
#include <dlfcn.h>
#include <fmt/format.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/data/sentencepiece_abi.h"
#include "runtime/error.h"

namespace stag::rt {

namespace {

constexpr const char* kModuleName = "libstag_sentencepiece.so";

#if !STAG_SANITIZED

// Where to look, in order: installed beside the running executable (PREFIX/bin/stag finds
// PREFIX/lib/stag), next to it (a copied trainer), where `cmake --install` was told to put it
// (a trainer an installed stag built), and the build's own path.
std::vector<std::string> module_paths() {
  std::vector<std::string> paths;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    paths.push_back((exe.parent_path().parent_path() / "lib" / "stag" / kModuleName).string());
    paths.push_back((exe.parent_path() / kModuleName).string());
  }
#ifdef STAG_INSTALLED_MODULE_DIR
  paths.push_back(std::string(STAG_INSTALLED_MODULE_DIR) + "/" + kModuleName);
#endif
#ifdef STAG_SENTENCEPIECE_MODULE
  paths.push_back(STAG_SENTENCEPIECE_MODULE);
#endif
  return paths;
}

// RTLD_DEEPBIND: the module's protobuf calls bind inside libsentencepiece before the global
// scope (where the ONNX importer's libprotobuf 3.21 lives); RTLD_LOCAL keeps its symbols out of
// everyone else's lookups.
const StagSentencePieceApi* open_module(const std::string& path, std::string& errors) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (!handle) {
    errors += fmt::format("\n  {}", dlerror());
    return nullptr;
  }
  auto entry = reinterpret_cast<const StagSentencePieceApi* (*)()>(dlsym(handle, "stag_sentencepiece_api"));
  const StagSentencePieceApi* api = entry ? entry() : nullptr;
  if (api && api->version == kStagSentencePieceAbi) return api;
  errors += fmt::format("\n  {}: not a stag SentencePiece module of this build", path);
  dlclose(handle);
  return nullptr;
}

#endif

const StagSentencePieceApi& load_api() {
#if STAG_SANITIZED
  return *stag_sentencepiece_api();
#else
  std::string errors;
  for (const auto& path : module_paths())
    if (const auto* api = open_module(path, errors)) return *api;
  throw Error(fmt::format("the SentencePiece module ({}) does not load:{}", kModuleName, errors));
#endif
}

}  // namespace

const StagSentencePieceApi& sentencepiece_api() {
  static std::mutex mutex;
  static const StagSentencePieceApi* api = nullptr;
  std::lock_guard lock(mutex);
  if (!api) api = &load_api();
  return *api;
}

}  // namespace stag::rt
