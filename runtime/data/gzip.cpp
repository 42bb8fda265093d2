// gzip decompression with zlib, strict about truncation and trailing garbage.
#include "runtime/data/gzip.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>

#include "runtime/error.h"
#include "runtime/io.h"

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

std::vector<std::byte> gunzip(std::span<const std::byte> in, const std::string& name,
                              int64_t max_bytes) {
  z_stream zs{};
  // 16 + MAX_WBITS: expect a gzip wrapper (header and CRC-32 trailer are checked by zlib).
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
    throw Error(fmt::format("{}: cannot initialise zlib", name));
  struct Guard {
    z_stream* z;
    ~Guard() { inflateEnd(z); }
  } guard{&zs};
  std::vector<std::byte> out(
      std::min<size_t>(std::max<size_t>(in.size() * 4, 1024), static_cast<size_t>(max_bytes) + 1));
  size_t pos = 0;  // input consumed so far
  size_t produced = 0;
  // zlib counts in uInt; feed the input in pieces so files over 4 GiB work too.
  constexpr size_t kPiece = size_t{1} << 30;
  for (;;) {
    if (produced == out.size()) {
      if (static_cast<int64_t>(out.size()) > max_bytes)
        throw Error(
            fmt::format("{}: decompressed data exceeds the limit of {} bytes", name, max_bytes));
      out.resize(std::min<size_t>(out.size() * 2, static_cast<size_t>(max_bytes) + 1));
    }
    size_t in_avail = std::min(in.size() - pos, kPiece);
    size_t out_avail = std::min(out.size() - produced, kPiece);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data() + pos));
    zs.avail_in = static_cast<uInt>(in_avail);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(out_avail);
    int rc = inflate(&zs, Z_NO_FLUSH);
    pos += in_avail - zs.avail_in;
    produced += out_avail - zs.avail_out;
    if (rc == Z_STREAM_END) {
      if (pos == in.size()) break;
      // Another member may follow (gzip concatenates them); anything else is garbage.
      if (!is_gzip(in.subspan(pos)))
        throw Error(
            fmt::format("{}: {} trailing bytes after the gzip data", name, in.size() - pos));
      inflateReset(&zs);
      continue;
    }
    if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT)
      throw Error(
          fmt::format("{}: corrupt gzip data: {}", name, zs.msg ? zs.msg : "invalid stream"));
    if (rc == Z_MEM_ERROR) throw Error(fmt::format("{}: out of memory decompressing", name));
    if (rc == Z_BUF_ERROR || rc == Z_OK) {
      // No progress possible: the input ran out before the end of the stream.
      if (pos == in.size() && zs.avail_out != 0)
        throw Error(fmt::format("{}: truncated gzip data (the stream ends early)", name));
      continue;
    }
    throw Error(fmt::format("{}: zlib error {}", name, rc));
  }
  if (static_cast<int64_t>(produced) > max_bytes)
    throw Error(
        fmt::format("{}: decompressed data exceeds the limit of {} bytes", name, max_bytes));
  out.resize(produced);
  return out;
}

std::vector<std::byte> read_maybe_gzip(const std::filesystem::path& path) {
  std::vector<std::byte> raw = read_file_bytes(path);
  if (!is_gzip(raw)) return raw;
  return gunzip(raw, path.string());
}

}  // namespace stag::rt
