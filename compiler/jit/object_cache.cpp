// The persistent cache of JIT-compiled objects (see object_cache.h).

#include "compiler/jit/object_cache.h"

#include <llvm/Bitcode/BitcodeWriter.h>
#include <llvm/Support/BLAKE3.h>
#include <llvm/Support/raw_ostream.h>

#include <fmt/format.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace stag {

namespace {

constexpr char kMagic[8] = {'S', 'T', 'A', 'G', 'O', 'B', 'J', '1'};

std::array<uint8_t, 32> digest(const char* data, size_t size) {
  llvm::BLAKE3 h;
  h.update(llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t*>(data), size));
  return h.final();
}

}  // namespace

ObjectCache ObjectCache::from_environment() {
  if (const char* dir = std::getenv("STAG_JIT_CACHE")) {
    std::string d = dir;
    if (d == "off" || d == "0" || d.empty()) return ObjectCache("");
    return ObjectCache(d);
  }
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return ObjectCache(std::string(xdg) + "/stag/jit");
  if (const char* home = std::getenv("HOME"); home && *home) return ObjectCache(std::string(home) + "/.cache/stag/jit");
  return ObjectCache("");
}

std::string ObjectCache::key(const llvm::Module& m, const std::string& settings) {
  llvm::SmallVector<char, 0> bitcode;
  llvm::raw_svector_ostream os(bitcode);
  llvm::WriteBitcodeToFile(m, os);
  llvm::BLAKE3 h;
  h.update(llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t*>(bitcode.data()), bitcode.size()));
  h.update(llvm::StringRef(settings));
  auto d = h.final();
  std::string hex;
  for (uint8_t b : d) hex += fmt::format("{:02x}", b);
  return hex;
}

std::optional<std::string> ObjectCache::load(const std::string& key) const {
  if (!enabled()) return std::nullopt;
  std::ifstream in(dir_ + "/" + key + ".o", std::ios::binary);
  if (!in) return std::nullopt;
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  constexpr size_t header = sizeof kMagic + 32;
  if (bytes.size() <= header || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) return std::nullopt;
  auto d = digest(bytes.data() + header, bytes.size() - header);
  if (std::memcmp(bytes.data() + sizeof kMagic, d.data(), d.size()) != 0) return std::nullopt;
  return bytes.substr(header);
}

void ObjectCache::store(const std::string& key, std::string_view object) const {
  if (!enabled()) return;
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return;
  // Another process may store the same key at once: each writes its own temporary file and
  // the rename makes one of them the entry, whole.
  std::string tmp = fmt::format("{}/{}.{}.tmp", dir_, key, ::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return;
    auto d = digest(object.data(), object.size());
    out.write(kMagic, sizeof kMagic);
    out.write(reinterpret_cast<const char*>(d.data()), static_cast<std::streamsize>(d.size()));
    out.write(object.data(), static_cast<std::streamsize>(object.size()));
    if (!out.flush()) {
      out.close();
      std::filesystem::remove(tmp, ec);
      return;
    }
  }
  std::filesystem::rename(tmp, dir_ + "/" + key + ".o", ec);
  if (ec) std::filesystem::remove(tmp, ec);
}

}  // namespace stag
