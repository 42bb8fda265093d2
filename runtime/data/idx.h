#pragma once
/// IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or raw.
///
/// Layout: two zero bytes, a type byte, a rank byte, then `rank` big-endian uint32 dimensions and
/// the elements in C order. Only type 0x08 (unsigned byte) is accepted — it is what image and
/// label files use; other types are refused by name. Every inconsistency (magic, type, rank,
/// overflowing sizes, truncated or trailing data, an image/label count mismatch) is an Error whose
/// message starts with the file name.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "runtime/data/dataset.h"

namespace stag::rt {

/// A decoded unsigned-byte IDX array.
struct IdxArray {
  std::vector<int64_t> dims;
  ByteVector data;
};

/// Decodes IDX bytes (already decompressed); messages name `name`.
IdxArray decode_idx(std::span<const std::byte> bytes, const std::string& name);
/// Reads an IDX file, gzip or raw (detected by magic), decompressing straight into the array's
/// buffer: the header gives the size, so the data is written once and nothing else is held.
/// The same checks and messages as decode_idx; a size the file cannot hold (beyond its own size
/// raw, or deflate's largest expansion of it gzipped) is reported without allocating it.
IdxArray read_idx(const std::filesystem::path& path);

/// Images [N, H, W] as byte images [N, 1, H, W] (features byte / 255); takes the array's bytes.
ByteImages idx_images(IdxArray images, const std::string& name);
/// Labels [N] as i64 [N].
Tensor idx_labels_to_tensor(const IdxArray& labels, const std::string& name);

/// An image file and a label file with the same N; the images stay bytes (Dataset::images).
Dataset load_idx(const std::filesystem::path& images, const std::filesystem::path& labels);

/// Where the Debian package dataset-fashion-mnist installs the files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
/// The Fashion-MNIST class names, in label order.
const std::vector<std::string>& fashion_mnist_classes();
/// Fashion-MNIST's "train" (60000 examples) or "test" (the t10k files, 10000) split from `dir`.
Dataset load_fashion_mnist(const std::string& split,
                           const std::filesystem::path& dir = kFashionMnistDir);

}  // namespace stag::rt
