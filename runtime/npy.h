#pragma once
/// NumPy .npy files: read format versions 1.0, 2.0 and 3.0; write 1.0 (2.0 when the header would
/// not fit), byte for byte what NumPy 1.24 writes.
///
/// Supported dtypes: <f4 <f8 <i4 <i8 |b1 (f32 f64 i32 i64 bool), C order only. Everything else —
/// big-endian data, |u1 and other integer widths, float16, structured dtypes, fortran_order True —
/// is refused with an Error that names it: the runtime has no uint8 tensors, and silently widening
/// |u1 would hide a mismatch from the model's declared input dtype (image bytes arrive through the
/// data loaders, which convert explicitly). Every other inconsistency (magic, version, header
/// length, dictionary syntax, shape, data size, trailing bytes, bool bytes other than 0 or 1) is an
/// Error whose message starts with the file name.

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string_view>
#include <vector>

#include "runtime/io.h"
#include "runtime/tensor.h"

namespace stag::rt {

/// A header larger than this is refused before it is read: real headers are under 3 KiB even at
/// the maximum rank, so a larger one is corruption or an attack.
inline constexpr int64_t kMaxNpyHeaderBytes = 1 << 20;

/// The NumPy descr for a dtype, e.g. "<f4".
std::string_view npy_descr(DType t);
/// The dtype of a NumPy descr, or nullopt when the runtime does not support it.
std::optional<DType> dtype_from_npy_descr(std::string_view descr);

/// Reads a whole .npy file.
Tensor read_npy(const std::filesystem::path& path);
/// Decodes .npy bytes from any source (messages name source.name()).
Tensor decode_npy(const ByteSource& source);
/// Decodes .npy bytes held in memory.
Tensor decode_npy(std::span<const std::byte> bytes, std::string name = "<memory>");

/// Writes `t` as .npy atomically (temporary file, fsync, rename): the old file, if any, survives
/// any failure.
void write_npy(const std::filesystem::path& path, const Tensor& t);
/// Writes the .npy encoding of `t` to a sink.
void write_npy(ByteSink& sink, const Tensor& t);
/// The .npy encoding of `t`.
std::vector<std::byte> encode_npy(const Tensor& t);

}  // namespace stag::rt
