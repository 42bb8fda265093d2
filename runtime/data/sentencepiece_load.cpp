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

// tests/sanitized links the module into its sanitized copy of the runtime (the unsanitized module
// the build makes would bring libc's malloc); everything else loads it.
#if !STAG_SENTENCEPIECE_LINKED

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

#ifdef __SANITIZE_ADDRESS__
// ASan's dlopen refuses RTLD_DEEPBIND outright (google/sanitizers#611): a deep-bound library
// usually finds libc's malloc before ASan's. gcc links the sanitized module against libasan.so
// ahead of libc, so inside the module's scope malloc and operator new are still ASan's
// (allocators_shared checks it); glibc's own dlopen, not ASan's interceptor, loads it.
void* dlopen_deep(const char* path) {
  static auto* glibc_dlopen =
      reinterpret_cast<void* (*)(const char*, int)>(dlsym(dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD), "dlopen"));
  return glibc_dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
}
#else
void* dlopen_deep(const char* path) { return dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND); }
#endif

// The module allocates what the caller frees: both must see one malloc and one operator new.
bool allocators_shared(void* handle) {
  for (const char* name : {"malloc", "free", "_Znwm", "_ZdlPv"})
    if (dlsym(handle, name) != dlsym(RTLD_DEFAULT, name)) return false;
  return true;
}

// RTLD_DEEPBIND: the module's protobuf calls bind inside libsentencepiece before the global
// scope (where the ONNX importer's libprotobuf 3.21 lives); RTLD_LOCAL keeps its symbols out of
// everyone else's lookups.
const StagSentencePieceApi* open_module(const std::string& path, std::string& errors) {
  void* handle = dlopen_deep(path.c_str());
  if (!handle) {
    errors += fmt::format("\n  {}", dlerror());
    return nullptr;
  }
  if (!allocators_shared(handle)) {
    errors += fmt::format("\n  {}: its malloc or operator new is not the process's", path);
    dlclose(handle);
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
#if STAG_SENTENCEPIECE_LINKED
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
