#pragma once
/// safetensors files (the Hugging Face / PyTorch weight format): an 8-byte little-endian header
/// size N, N bytes of JSON, then the tensors' little-endian C-order bytes.
///
/// Reading validates like the reference implementation and more: header size at most 100 MB and
/// inside the file; the JSON well-formed, an object, with no duplicate keys; every entry an object
/// with exactly dtype, shape and data_offsets, well-typed; data_offsets within the data section,
/// not overlapping and covering it exactly; each byte length equal to numel * dtype size
/// (overflow-checked); `__metadata__` a string-to-string map. Dtypes F32 F64 I32 I64 BOOL load as
/// such; F16 and BF16 are converted to f32 on read (exactly); anything else is an "unsupported
/// dtype" Error. Every Error message starts with the file name.
///
/// Writing produces the bytes the reference implementation (safetensors' `serialize`) does:
/// `__metadata__` first (omitted when empty), then tensors ordered by dtype, largest alignment
/// first (I64, F64, F32, I32, BOOL — the reference's enum order reversed), then by name bytewise;
/// compact JSON; the header padded with spaces to a multiple of 8 bytes so every tensor's data is
/// 8-byte aligned in the file.

#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "runtime/io.h"
#include "runtime/tensor.h"

namespace stag::rt {

/// The reference implementation's limit on the JSON header.
inline constexpr int64_t kMaxSafetensorsHeaderBytes = 100'000'000;

/// Free-form string metadata (checkpoints keep step, epoch and the like there).
using SafetensorsMetadata = std::map<std::string, std::string>;

/// One tensor as the header describes it.
struct SafetensorsEntry {
  std::string name;
  std::string file_dtype;  ///< As written in the file: "F32", "BF16", ...
  DType dtype;             ///< What it loads as (F16 and BF16 load as f32).
  Shape shape;
  int64_t begin = 0;  ///< Byte offsets relative to the start of the data section.
  int64_t end = 0;
};

/// A validated header: the entries ordered by offset, and the metadata.
struct SafetensorsIndex {
  std::vector<SafetensorsEntry> entries;
  SafetensorsMetadata metadata;
  int64_t data_start = 0;  ///< Absolute file offset of the data section (8 + N).
};

/// A loaded file.
struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  SafetensorsMetadata metadata;
};

/// A tensor to write, by reference (checkpoints write parameters without copying them).
struct NamedTensor {
  std::string name;
  const Tensor* tensor;
};

/// Reads and validates the header only (no tensor data), e.g. to check names and shapes first.
SafetensorsIndex read_safetensors_index(const ByteSource& source);

/// Reads a whole safetensors file.
SafetensorsFile read_safetensors(const std::filesystem::path& path);
SafetensorsFile decode_safetensors(const ByteSource& source);
SafetensorsFile decode_safetensors(std::span<const std::byte> bytes, std::string name = "<memory>");

/// Writes tensors atomically (temporary file, fsync, rename): a failure or a kill at any moment
/// leaves the previous file intact. Names must be unique, valid UTF-8 and not "__metadata__".
void write_safetensors(const std::filesystem::path& path, std::span<const NamedTensor> tensors,
                       const SafetensorsMetadata& metadata = {});
void write_safetensors(const std::filesystem::path& path, const std::map<std::string, Tensor>& tensors,
                       const SafetensorsMetadata& metadata = {});
/// Writes the encoding to a sink.
void write_safetensors(ByteSink& sink, std::span<const NamedTensor> tensors,
                       const SafetensorsMetadata& metadata = {});
/// The encoding in memory.
std::vector<std::byte> encode_safetensors(std::span<const NamedTensor> tensors,
                                          const SafetensorsMetadata& metadata = {});

}  // namespace stag::rt
