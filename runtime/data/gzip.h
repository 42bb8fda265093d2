#pragma once
/// Whole-file reading with transparent gzip decompression (zlib), for data files that may be
/// shipped compressed (Fashion-MNIST's .gz IDX files) or raw.

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace stag::rt {

/// Decompressed data larger than this is refused (a corrupt or hostile file must not exhaust
/// memory); every real data set the runtime reads is far smaller.
inline constexpr int64_t kMaxDecompressedBytes = int64_t{8} << 30;

/// The file's bytes; throws Error naming the path when it cannot be read.
std::vector<std::byte> read_file_bytes(const std::filesystem::path& path);

/// True when the bytes start with the gzip magic 1f 8b.
bool is_gzip(std::span<const std::byte> bytes);

/// Decompresses a gzip stream (several concatenated members are allowed, as gzip(1) does).
/// Throws Error starting with `name` for corrupt data, a truncated stream, bytes after the last
/// member that are not another member, or output beyond `max_bytes`.
std::vector<std::byte> gunzip(std::span<const std::byte> bytes, const std::string& name,
                              int64_t max_bytes = kMaxDecompressedBytes);

/// The file's contents, decompressed when it is gzip (by magic, not by name).
std::vector<std::byte> read_maybe_gzip(const std::filesystem::path& path);

}  // namespace stag::rt
