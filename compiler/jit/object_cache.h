#pragma once
/// The JIT's persistent cache of compiled objects, like JAX's compilation cache: a module's
/// machine code stored under the BLAKE3 hash of its unoptimized bitcode and everything else the
/// code depends on (LLVM's version, the host CPU and features, the optimization level). A
/// second run of the same model skips LLVM's optimizer and code generator.
///
/// Where: $STAG_JIT_CACHE, else $XDG_CACHE_HOME/stag/jit, else ~/.cache/stag/jit;
/// STAG_JIT_CACHE=off disables it. Entries are written atomically (a temporary file renamed)
/// and carry a hash of their contents: a damaged or foreign file is a miss, never a crash.

#include <optional>
#include <string>
#include <string_view>

namespace llvm {
class Module;
}

namespace stag {

class ObjectCache {
 public:
  /// The cache of the environment's directory; disabled when STAG_JIT_CACHE=off or no
  /// directory can be named.
  static ObjectCache from_environment();
  explicit ObjectCache(std::string directory) : dir_(std::move(directory)) {}

  bool enabled() const { return !dir_.empty(); }
  const std::string& directory() const { return dir_; }

  /// The key of a module compiled with the given settings (the module's bitcode and them).
  static std::string key(const llvm::Module& m, const std::string& settings);
  /// The object stored under key, if there is an intact one.
  std::optional<std::string> load(const std::string& key) const;
  /// Stores an object; failures (a read-only disk, a full one) are ignored: the cache is an
  /// optimization only.
  void store(const std::string& key, std::string_view object) const;

 private:
  std::string dir_;
};

}  // namespace stag
