#include "runtime/run_dir.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <array>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/error.h"
#include "runtime/io.h"

#ifndef STAG_VERSION
#define STAG_VERSION "unknown"
#endif

namespace stag::rt {

namespace fs = std::filesystem;

namespace {

// N of a folder named MODEL-N, or 0.
int64_t run_number(const std::string& name, const std::string& model) {
  std::string prefix = model + "-";
  if (!name.starts_with(prefix) || name.size() == prefix.size() || name.size() > prefix.size() + 9) return 0;
  std::string digits = name.substr(prefix.size());
  if (digits.find_first_not_of("0123456789") != std::string::npos) return 0;
  return std::stoll(digits);
}

int64_t highest_run(const fs::path& root, const std::string& model) {
  int64_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) n = std::max(n, run_number(e.path().filename().string(), model));
  return n;
}

std::string utc_now() {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(std::chrono::system_clock::to_time_t(std::chrono::system_clock::now())));
}

nlohmann::json to_json(const LogRecord& record) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, value] : record) std::visit([&, &k = key](const auto& v) { j[k] = v; }, value);
  return j;
}

nlohmann::json start_json(const RunRecord& r) {
  return {{"command", r.command}, {"start_time", utc_now()}, {"stag_version", stag_version()}, {"threads", r.threads}};
}

nlohmann::json record_json(const RunRecord& r) {
  nlohmann::json j = start_json(r);
  j["model"] = r.model;
  j["model_hash"] = r.model_hash;
  j["model_hash_of"] = r.model_hash_of;
  j["seed"] = r.seed;
  j["settings"] = to_json(r.settings);
  return j;
}

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_atomically(const fs::path& path, const std::string& text) {
  AtomicFileWriter w(path);
  w.write(std::as_bytes(std::span(text.data(), text.size())));
  w.commit();
}

}  // namespace

RunFolder RunFolder::create_next(const fs::path& root, const std::string& model) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) throw Error(fmt::format("{}: cannot create the runs folder: {}", root.string(), ec.message()));
  // create_directory fails on an existing name, so a run that started meanwhile is skipped.
  for (int64_t n = highest_run(root, model) + 1;; ++n) {
    fs::path dir = root / fmt::format("{}-{}", model, n);
    if (fs::create_directory(dir, ec)) return RunFolder{dir};
    if (ec) throw Error(fmt::format("{}: cannot create the run folder: {}", dir.string(), ec.message()));
  }
}

RunFolder RunFolder::open(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(fmt::format("{}: cannot create the run folder: {}", dir.string(), ec.message()));
  return RunFolder{dir};
}

void RunFolder::write_run_json(const RunRecord& record) const {
  nlohmann::json j;
  if (fs::exists(run_json())) {
    j = nlohmann::json::parse(read_all(run_json()), nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw Error(fmt::format("{}: not a run.json (bad JSON)", run_json().string()));
    j["resumed"].push_back(start_json(record));
  } else {
    j = record_json(record);
  }
  write_atomically(run_json(), j.dump(2) + "\n");
}

fs::path resolve_checkpoint(const fs::path& path, Prefer prefer) {
  if (!fs::is_directory(path)) return path;
  RunFolder f{path};
  if (prefer == Prefer::best && fs::exists(f.best())) return f.best();
  if (fs::exists(f.last())) return f.last();
  throw Error(fmt::format("{}: a folder without last.safetensors{}", path.string(),
                          prefer == Prefer::best ? " or best.safetensors" : ""));
}

const char* stag_version() { return STAG_VERSION; }

namespace {

constexpr std::array<uint32_t, 64> kRound = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
    0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
    0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
    0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

// FIPS 180-4, section 6.2.2: one 64-byte block into the state.
void sha256_block(std::array<uint32_t, 8>& h, const unsigned char* p) {
  std::array<uint32_t, 64> w;
  for (int i = 0; i < 16; ++i) w[i] = uint32_t(p[4 * i]) << 24 | uint32_t(p[4 * i + 1]) << 16 | uint32_t(p[4 * i + 2]) << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  auto [a, b, c, d, e, f, g, k] = h;
  for (int i = 0; i < 64; ++i) {
    uint32_t t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kRound[i] + w[i];
    uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    k = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
  }
  std::array<uint32_t, 8> add = {a, b, c, d, e, f, g, k};
  for (int i = 0; i < 8; ++i) h[i] += add[i];
}

}  // namespace

std::string sha256_hex(std::string_view bytes) {
  std::array<uint32_t, 8> h = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  size_t full = bytes.size() / 64 * 64;
  for (size_t i = 0; i < full; i += 64) sha256_block(h, reinterpret_cast<const unsigned char*>(bytes.data()) + i);
  // The tail, a 1 bit, zeros, and the length in bits (big-endian) fill one or two last blocks.
  std::string tail(bytes.substr(full));
  tail += '\x80';
  while (tail.size() % 64 != 56) tail += '\0';
  uint64_t bits = uint64_t(bytes.size()) * 8;
  for (int i = 7; i >= 0; --i) tail += static_cast<char>(bits >> (8 * i));
  for (size_t i = 0; i < tail.size(); i += 64) sha256_block(h, reinterpret_cast<const unsigned char*>(tail.data()) + i);
  std::string hex;
  for (uint32_t v : h) hex += fmt::format("{:08x}", v);
  return hex;
}

}  // namespace stag::rt
