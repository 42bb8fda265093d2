// .npy reading and writing on top of the header parser and the byte sources and sinks.
#include "runtime/npy.h"

#include <fmt/format.h>

#include <array>
#include <cstring>

#include "runtime/checked.h"
#include "runtime/npy_header.h"
#include "runtime/validate.h"

namespace stag::rt {

namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr int64_t kArrayAlign = 64;

uint32_t read_le(const std::byte* p, int n) {
  uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint32_t>(p[i]);
  return v;
}

}  // namespace

std::string_view npy_descr(DType t) {
  switch (t) {
    case DType::f32: return "<f4";
    case DType::f64: return "<f8";
    case DType::i32: return "<i4";
    case DType::i64: return "<i8";
    case DType::b8: return "|b1";
  }
  return "?";
}

std::optional<DType> dtype_from_npy_descr(std::string_view descr) {
  for (DType t : {DType::f32, DType::f64, DType::i32, DType::i64, DType::b8})
    if (npy_descr(t) == descr) return t;
  return std::nullopt;
}

Tensor decode_npy(const ByteSource& src) {
  const std::string& name = src.name();
  const int64_t size = src.size();
  std::array<std::byte, 12> pre{};
  if (size < 10)
    throw Error(fmt::format("{}: not a .npy file: only {} bytes, shorter than the preamble", name,
                            size));
  src.read_at(0, std::span(pre).first(10));
  if (std::memcmp(pre.data(), kMagic.data(), kMagic.size()) != 0)
    throw Error(fmt::format("{}: not a .npy file: bad magic (expected \\x93NUMPY)", name));
  int major = static_cast<int>(pre[6]), minor = static_cast<int>(pre[7]);
  if (major < 1 || major > 3 || minor != 0)
    throw Error(fmt::format("{}: unsupported .npy format version {}.{} (supported: 1.0, 2.0, 3.0)",
                            name, major, minor));
  // Version 1.0 has a 2-byte header length; 2.0 and 3.0 (UTF-8 header) a 4-byte one.
  int len_bytes = major == 1 ? 2 : 4;
  int64_t prefix = 8 + len_bytes;
  if (size < prefix)
    throw Error(fmt::format("{}: truncated .npy header length ({} bytes)", name, size));
  if (len_bytes == 4) src.read_at(10, std::span(pre).subspan(10, 2));
  int64_t header_len = read_le(pre.data() + 8, len_bytes);
  if (header_len > kMaxNpyHeaderBytes)
    throw Error(fmt::format("{}: .npy header length {} exceeds the limit of {} bytes", name,
                            header_len, kMaxNpyHeaderBytes));
  if (header_len > size - prefix)
    throw Error(fmt::format("{}: truncated .npy header: it claims {} bytes but the file has only "
                            "{} after the preamble",
                            name, header_len, size - prefix));
  std::string text(static_cast<size_t>(header_len), '\0');
  src.read_at(prefix, std::as_writable_bytes(std::span(text)));
  NpyHeader h = parse_npy_header(text, name);

  if (h.fortran_order)
    throw Error(fmt::format("{}: fortran_order is True: only C-order arrays are supported "
                            "(save with np.ascontiguousarray)",
                            name));
  auto dtype = dtype_from_npy_descr(h.descr);
  if (!dtype) {
    std::string why = !h.descr.empty() && h.descr[0] == '>' ? " (big-endian data)" : "";
    throw Error(fmt::format("{}: unsupported dtype '{}'{}; supported: <f4 <f8 <i4 <i8 |b1", name,
                            h.descr, why));
  }
  int64_t nbytes;
  try {
    nbytes = shape_nbytes(*dtype, h.shape);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: invalid shape: {}", name, e.what()));
  }
  int64_t data_at = prefix + header_len;
  int64_t have = size - data_at;
  if (have < nbytes)
    throw Error(fmt::format("{}: truncated data: the header promises {} bytes ({}{}) but the file "
                            "holds {}",
                            name, nbytes, dtype_name(*dtype), shape_to_string(h.shape), have));
  if (have > nbytes)
    throw Error(fmt::format("{}: {} trailing bytes after the {} bytes of data the header promises",
                            name, have - nbytes, nbytes));
  Tensor t = Tensor::uninitialized(*dtype, std::move(h.shape));
  src.read_at(data_at, t.bytes());
  if (t.dtype() == DType::b8) check_bool_bytes(t, name);
  return t;
}

Tensor decode_npy(std::span<const std::byte> bytes, std::string name) {
  return decode_npy(MemorySource(bytes, std::move(name)));
}

Tensor read_npy(const std::filesystem::path& path) { return decode_npy(FileSource(path)); }

void write_npy(ByteSink& sink, const Tensor& t) {
  std::string dict = format_npy_header({std::string(npy_descr(t.dtype())), false, t.shape()});
  // NumPy's rule: the dictionary, then spaces and a newline so that the data starts on a 64-byte
  // boundary (always at least one space). Version 2.0 only when the length needs 4 bytes.
  int major = 1;
  int64_t hlen = static_cast<int64_t>(dict.size()) + 1;
  int64_t pad = kArrayAlign - (10 + hlen) % kArrayAlign;
  if (hlen + pad > 0xffff) {
    major = 2;
    pad = kArrayAlign - (12 + hlen) % kArrayAlign;
  }
  int64_t total = hlen + pad;
  std::string head(kMagic);
  head.push_back(static_cast<char>(major));
  head.push_back('\0');
  for (int i = 0; i < (major == 1 ? 2 : 4); ++i) head.push_back(static_cast<char>((total >> (8 * i)) & 0xff));
  head += dict;
  head.append(static_cast<size_t>(pad), ' ');
  head.push_back('\n');
  sink.write(head);
  sink.write(t.bytes());
}

std::vector<std::byte> encode_npy(const Tensor& t) {
  VectorSink sink;
  write_npy(sink, t);
  return std::move(sink.data);
}

void write_npy(const std::filesystem::path& path, const Tensor& t) {
  AtomicFileWriter out(path);
  write_npy(out, t);
  out.commit();
}

}  // namespace stag::rt
