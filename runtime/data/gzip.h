#pragma once
/// Whole-file reading with transparent gzip decompression (zlib), for data files that may be
/// shipped compressed (Fashion-MNIST's .gz IDX files) or raw; and a streaming reader that
/// decompresses piece by piece into buffers the caller owns, so that a large file goes straight
/// into its final place without a compressed copy or an intermediate buffer in memory.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/io.h"

namespace stag::rt {

/// Decompressed data larger than this is refused (a corrupt or hostile file must not exhaust
/// memory); every real data set the runtime reads is far smaller.
inline constexpr int64_t kMaxDecompressedBytes = int64_t{8} << 30;

/// The file's bytes; throws Error naming the path when it cannot be read.
std::vector<std::byte> read_file_bytes(const std::filesystem::path& path);

/// True when the bytes start with the gzip magic 1f 8b.
bool is_gzip(std::span<const std::byte> bytes);

/// A gzip stream read from a ByteSource, decompressed on demand. Several concatenated members are
/// one stream, as gzip(1) treats them. Errors start with the source's name: corrupt data (a bad
/// CRC-32 or length trailer included), a truncated stream, bytes after the last member that are
/// not another member.
class GzipReader {
 public:
  /// The source must outlive the reader.
  explicit GzipReader(const ByteSource& src);
  ~GzipReader();
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;

  /// Fills `dst` with the next decompressed bytes and returns how many; fewer than dst.size()
  /// only at the end of the data (0 from then on).
  size_t read(std::span<std::byte> dst);
  /// Decompressed bytes returned so far.
  int64_t position() const { return produced_; }

 private:
  struct Zlib;
  bool refill();
  void start_next_member();

  const ByteSource& src_;
  std::unique_ptr<Zlib> z_;
  std::vector<std::byte> in_;  // a window of the compressed input
  int64_t src_pos_ = 0;        // source bytes moved into in_ so far
  int64_t produced_ = 0;
  bool done_ = false;
};

/// Decompresses a gzip stream (several concatenated members are allowed, as gzip(1) does).
/// Throws Error starting with `name` for corrupt data, a truncated stream, bytes after the last
/// member that are not another member, or output beyond `max_bytes`.
std::vector<std::byte> gunzip(std::span<const std::byte> bytes, const std::string& name,
                              int64_t max_bytes = kMaxDecompressedBytes);

/// The file's contents, decompressed when it is gzip (by magic, not by name).
std::vector<std::byte> read_maybe_gzip(const std::filesystem::path& path);

/// A file's bytes in order, decompressed on the fly when it is gzip (by magic, not by name).
class MaybeGzipReader {
 public:
  /// Throws Error naming the path when it cannot be opened.
  explicit MaybeGzipReader(const std::filesystem::path& path);
  /// As GzipReader::read.
  size_t read(std::span<std::byte> dst);
  /// Reads and discards the rest of the data (at most `limit` bytes, then stops) and returns how
  /// many bytes that was: for a message about trailing data.
  int64_t skip_rest(int64_t limit = kMaxDecompressedBytes);
  bool compressed() const { return gzip_ != nullptr; }
  /// The file's size on disk (compressed size for gzip).
  int64_t file_size() const { return file_.size(); }
  const std::string& name() const { return file_.name(); }

 private:
  FileSource file_;
  std::unique_ptr<GzipReader> gzip_;
  int64_t raw_pos_ = 0;
};

/// Deflate expands at most this much (RFC 1951: a 258-byte match per 2 bits, ~1032:1); a claimed
/// decompressed size beyond compressed_bytes * this cannot be real.
inline constexpr int64_t kMaxDeflateRatio = 1032;

}  // namespace stag::rt
