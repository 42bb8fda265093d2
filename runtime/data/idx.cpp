// IDX decoding with checked sizes, and the Fashion-MNIST loader built on it.
#include "runtime/data/idx.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "runtime/checked.h"
#include "runtime/data/gzip.h"

namespace stag::rt {

namespace {

uint32_t be32(const std::byte* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

std::string type_name(uint8_t t) {
  switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
  }
  return fmt::format("unknown type 0x{:02x}", t);
}

// The magic, element type and rank of the 4 bytes at b; returns the rank.
size_t idx_rank(const std::byte* b, const std::string& name) {
  if (b[0] != std::byte{0} || b[1] != std::byte{0})
    throw Error(
        fmt::format("{}: not an IDX file: bad magic (the first two bytes must be zero)", name));
  auto type = static_cast<uint8_t>(b[2]);
  auto rank = static_cast<size_t>(b[3]);
  if (type != 0x08)
    throw Error(fmt::format("{}: IDX element type is {}; only unsigned byte (0x08) is supported",
                            name, type_name(type)));
  if (rank == 0) throw Error(fmt::format("{}: IDX rank is 0", name));
  return rank;
}

std::string too_short(const std::string& name, size_t have) {
  return fmt::format("{}: not an IDX file: only {} bytes, shorter than the 4-byte magic", name,
                     have);
}

std::string truncated_header(const std::string& name, size_t rank, size_t header, size_t have) {
  return fmt::format("{}: truncated IDX header: rank {} needs {} bytes, the file has {}", name,
                     rank, header, have);
}

// Reads the dimensions after the 4-byte magic; returns the total size, header included.
int64_t idx_dims(const std::byte* b, size_t rank, const std::string& name, IdxArray& a) {
  for (size_t i = 0; i < rank; ++i) a.dims.push_back(be32(b + 4 + 4 * i));
  auto numel = checked_numel(a.dims);
  auto total = numel ? checked_add(*numel, static_cast<int64_t>(4 + 4 * rank)) : std::nullopt;
  if (!total)
    throw Error(fmt::format("{}: IDX dimensions {} hold more elements than fit in int64", name,
                            shape_to_string(a.dims)));
  return *total;
}

std::string truncated_data(const std::string& name, const IdxArray& a, int64_t total,
                           int64_t have) {
  return fmt::format("{}: truncated IDX data: dimensions {} need {} bytes, the file has {}", name,
                     shape_to_string(a.dims), total, have);
}

std::string trailing_data(const std::string& name, const IdxArray& a, int64_t extra) {
  return fmt::format("{}: {} trailing bytes after the IDX data of dimensions {}", name, extra,
                     shape_to_string(a.dims));
}

}  // namespace

IdxArray decode_idx(std::span<const std::byte> b, const std::string& name) {
  if (b.size() < 4) throw Error(too_short(name, b.size()));
  size_t rank = idx_rank(b.data(), name);
  size_t header = 4 + 4 * rank;
  if (b.size() < header) throw Error(truncated_header(name, rank, header, b.size()));
  IdxArray a;
  int64_t total = idx_dims(b.data(), rank, name, a);
  auto have = static_cast<int64_t>(b.size());
  if (have < total) throw Error(truncated_data(name, a, total, have));
  if (have > total) throw Error(trailing_data(name, a, have - total));
  a.data.resize(static_cast<size_t>(total - static_cast<int64_t>(header)));
  if (!a.data.empty()) std::memcpy(a.data.data(), b.data() + header, a.data.size());
  return a;
}

IdxArray read_idx(const std::filesystem::path& path) {
  MaybeGzipReader in(path);
  const std::string& name = in.name();
  std::array<std::byte, 4 + 4 * 255> head;
  size_t have = in.read(std::span(head).first(4));
  if (have < 4) throw Error(too_short(name, have));
  size_t rank = idx_rank(head.data(), name);
  size_t header = 4 + 4 * rank;
  have += in.read(std::span(head).subspan(4, 4 * rank));
  if (have < header) throw Error(truncated_header(name, rank, header, have));
  IdxArray a;
  int64_t total = idx_dims(head.data(), rank, name, a);
  int64_t most = in.compressed()
                     ? std::min(kMaxDecompressedBytes,
                                checked_mul(in.file_size(), kMaxDeflateRatio).value_or(INT64_MAX))
                     : in.file_size();
  // A size the file cannot hold is never allocated: count what it has, for the message.
  if (total > most)
    throw Error(truncated_data(name, a, total, static_cast<int64_t>(header) + in.skip_rest()));
  a.data.resize(static_cast<size_t>(total - static_cast<int64_t>(header)));  // not zeroed
  size_t got = in.read(std::as_writable_bytes(std::span(a.data)));
  if (got < a.data.size())
    throw Error(truncated_data(name, a, total, static_cast<int64_t>(header + got)));
  if (int64_t extra = in.skip_rest(); extra > 0) throw Error(trailing_data(name, a, extra));
  return a;
}

ByteImages idx_images(IdxArray a, const std::string& name) {
  if (a.dims.size() != 3)
    throw Error(fmt::format("{}: IDX images must have rank 3 [N,H,W], got {}", name,
                            shape_to_string(a.dims)));
  return {{a.dims[0], 1, a.dims[1], a.dims[2]}, std::move(a.data)};
}

Tensor idx_labels_to_tensor(const IdxArray& a, const std::string& name) {
  if (a.dims.size() != 1)
    throw Error(
        fmt::format("{}: IDX labels must have rank 1 [N], got {}", name, shape_to_string(a.dims)));
  Tensor t = Tensor::uninitialized(DType::i64, {a.dims[0]});
  auto v = t.values<int64_t>();
  for (size_t i = 0; i < a.data.size(); ++i) v[i] = a.data[i];
  return t;
}

Dataset load_idx(const std::filesystem::path& images, const std::filesystem::path& labels) {
  ByteImages x = idx_images(read_idx(images), images.string());
  Tensor y = idx_labels_to_tensor(read_idx(labels), labels.string());
  if (x.shape[0] != y.shape()[0])
    throw Error(fmt::format("{}: {} images, but {} has {} labels", images.string(), x.shape[0],
                            labels.string(), y.shape()[0]));
  return {Tensor(), std::move(y), std::move(x)};
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

Dataset load_fashion_mnist(const std::string& split, const std::filesystem::path& dir) {
  std::string prefix;
  if (split == "train")
    prefix = "train";
  else if (split == "test" || split == "t10k")
    prefix = "t10k";
  else
    throw Error(fmt::format("Fashion-MNIST: unknown split '{}' (train or test)", split));
  auto file = [&](const char* kind) {
    auto p = dir / fmt::format("{}-{}-ubyte.gz", prefix, kind);
    // Accept an uncompressed copy too (the name without .gz).
    if (!std::filesystem::exists(p) && std::filesystem::exists(p.parent_path() / p.stem()))
      p = p.parent_path() / p.stem();
    return p;
  };
  return load_idx(file("images-idx3"), file("labels-idx1"));
}

}  // namespace stag::rt
