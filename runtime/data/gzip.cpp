// gzip decompression with zlib, strict about truncation and trailing garbage.
#include "runtime/data/gzip.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "runtime/error.h"

namespace stag::rt {

std::vector<std::byte> read_file_bytes(const std::filesystem::path& path) {
  FileSource src(path);
  std::vector<std::byte> out(static_cast<size_t>(src.size()));
  src.read_at(0, out);
  return out;
}

bool is_gzip(std::span<const std::byte> b) {
  return b.size() >= 2 && b[0] == std::byte{0x1f} && b[1] == std::byte{0x8b};
}

namespace {

// The compressed input is read in windows of this size: small, so it stays in cache.
constexpr size_t kInputWindow = size_t{64} << 10;
// zlib counts in uInt; hand it output in pieces so buffers over 4 GiB work too.
constexpr size_t kPiece = size_t{1} << 30;

}  // namespace

struct GzipReader::Zlib {
  z_stream zs{};
};

GzipReader::GzipReader(const ByteSource& src) : src_(src), z_(std::make_unique<Zlib>()) {
  // 16 + MAX_WBITS: expect a gzip wrapper (header and CRC-32 trailer are checked by zlib).
  if (inflateInit2(&z_->zs, 16 + MAX_WBITS) != Z_OK) {
    z_.reset();
    throw Error(fmt::format("{}: cannot initialise zlib", src_.name()));
  }
  in_.resize(static_cast<size_t>(std::min<int64_t>(src_.size(), kInputWindow)));
}

GzipReader::~GzipReader() {
  if (z_) inflateEnd(&z_->zs);
}

// Moves the next window of the source into in_ (only when zlib has consumed the last one).
bool GzipReader::refill() {
  z_stream& zs = z_->zs;
  if (zs.avail_in != 0 || src_pos_ == src_.size()) return false;
  size_t n = static_cast<size_t>(std::min<int64_t>(src_.size() - src_pos_, in_.size()));
  src_.read_at(src_pos_, std::span(in_).first(n));
  src_pos_ += static_cast<int64_t>(n);
  zs.next_in = reinterpret_cast<Bytef*>(in_.data());
  zs.avail_in = static_cast<uInt>(n);
  return true;
}

// At the end of a member: another member may follow (gzip concatenates them); anything else is
// garbage.
void GzipReader::start_next_member() {
  z_stream& zs = z_->zs;
  int64_t rest = static_cast<int64_t>(zs.avail_in) + (src_.size() - src_pos_);
  std::byte head[2] = {};
  size_t have = std::min<size_t>(zs.avail_in, 2);
  if (have) std::memcpy(head, zs.next_in, have);
  if (have < 2 && rest >= 2) src_.read_at(src_pos_, std::span(head + have, 2 - have));
  if (rest < 2 || !is_gzip(head))
    throw Error(fmt::format("{}: {} trailing bytes after the gzip data", src_.name(), rest));
  inflateReset(&zs);
}

size_t GzipReader::read(std::span<std::byte> dst) {
  z_stream& zs = z_->zs;
  size_t got = 0;
  while (got < dst.size() && !done_) {
    refill();
    size_t want = std::min(dst.size() - got, kPiece);
    zs.next_out = reinterpret_cast<Bytef*>(dst.data() + got);
    zs.avail_out = static_cast<uInt>(want);
    int rc = inflate(&zs, Z_NO_FLUSH);
    got += want - zs.avail_out;
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0 && src_pos_ == src_.size())
        done_ = true;
      else
        start_next_member();
      continue;
    }
    if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT)
      throw Error(fmt::format("{}: corrupt gzip data: {}", src_.name(),
                              zs.msg ? zs.msg : "invalid stream"));
    if (rc == Z_MEM_ERROR) throw Error(fmt::format("{}: out of memory decompressing", src_.name()));
    if (rc == Z_BUF_ERROR || rc == Z_OK) {
      // No progress possible: the input ran out before the end of the stream.
      if (zs.avail_in == 0 && src_pos_ == src_.size() && zs.avail_out != 0)
        throw Error(fmt::format("{}: truncated gzip data (the stream ends early)", src_.name()));
      continue;
    }
    throw Error(fmt::format("{}: zlib error {}", src_.name(), rc));
  }
  produced_ += static_cast<int64_t>(got);
  return got;
}

namespace {

// The whole decompressed stream, refused beyond max_bytes. The gzip trailer's ISIZE (the last
// member's length mod 2^32) sizes the buffer, so a usual file is decompressed with one allocation.
std::vector<std::byte> gunzip_all(const ByteSource& src, int64_t max_bytes) {
  GzipReader reader(src);
  auto limit = static_cast<size_t>(max_bytes) + 1;  // one more byte tells "over the limit"
  size_t guess = 1024;
  if (src.size() >= 18) {
    std::byte t[4];
    src.read_at(src.size() - 4, t);
    uint32_t isize = static_cast<uint32_t>(t[0]) | static_cast<uint32_t>(t[1]) << 8 |
                     static_cast<uint32_t>(t[2]) << 16 | static_cast<uint32_t>(t[3]) << 24;
    // A hostile trailer cannot make this allocate more than real data of the file's size could
    // expand to.
    auto most = static_cast<uint64_t>(src.size()) * kMaxDeflateRatio;
    guess = std::max<size_t>(guess, static_cast<size_t>(std::min<uint64_t>(isize, most)) + 1);
  }
  std::vector<std::byte> out(std::min(guess, limit));
  size_t produced = 0;
  for (;;) {
    produced += reader.read(std::span(out).subspan(produced));
    if (produced < out.size()) break;  // the end of the data
    if (out.size() >= limit)
      throw Error(fmt::format("{}: decompressed data exceeds the limit of {} bytes", src.name(),
                              max_bytes));
    out.resize(std::min(out.size() * 2, limit));
  }
  out.resize(produced);
  return out;
}

}  // namespace

std::vector<std::byte> gunzip(std::span<const std::byte> in, const std::string& name,
                              int64_t max_bytes) {
  MemorySource src(in, name);
  return gunzip_all(src, max_bytes);
}

std::vector<std::byte> read_maybe_gzip(const std::filesystem::path& path) {
  FileSource src(path);
  std::byte head[2] = {};
  if (src.size() >= 2) src.read_at(0, head);
  if (!is_gzip(head)) {
    std::vector<std::byte> out(static_cast<size_t>(src.size()));
    src.read_at(0, out);
    return out;
  }
  return gunzip_all(src, kMaxDecompressedBytes);
}

MaybeGzipReader::MaybeGzipReader(const std::filesystem::path& path) : file_(path) {
  std::byte head[2] = {};
  if (file_.size() >= 2) file_.read_at(0, head);
  if (is_gzip(head)) gzip_ = std::make_unique<GzipReader>(file_);
}

size_t MaybeGzipReader::read(std::span<std::byte> dst) {
  if (gzip_) return gzip_->read(dst);
  size_t n = static_cast<size_t>(std::min<int64_t>(file_.size() - raw_pos_, dst.size()));
  file_.read_at(raw_pos_, dst.first(n));
  raw_pos_ += static_cast<int64_t>(n);
  return n;
}

int64_t MaybeGzipReader::skip_rest(int64_t limit) {
  if (!gzip_) {
    int64_t rest = std::min(file_.size() - raw_pos_, limit);
    raw_pos_ += rest;
    return rest;
  }
  std::vector<std::byte> scratch(kInputWindow);
  int64_t skipped = 0;
  while (skipped < limit) {
    auto want = static_cast<size_t>(std::min<int64_t>(limit - skipped, kInputWindow));
    size_t n = gzip_->read(std::span(scratch).first(want));
    skipped += static_cast<int64_t>(n);
    if (n < want) break;
  }
  return skipped;
}

}  // namespace stag::rt
