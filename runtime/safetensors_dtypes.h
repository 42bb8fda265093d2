#pragma once
/// The safetensors dtype names the runtime knows, shared by the reader and the writer.

#include <optional>
#include <string_view>

#include "runtime/dtype.h"

namespace stag::rt {

/// A dtype as spelled in a safetensors header.
struct SafetensorsDType {
  std::string_view name;  ///< "F32", ...
  int64_t size;           ///< Bytes an element in the file.
  DType loads_as;         ///< The runtime dtype it becomes on read.
  /// Position in the reference implementation's Dtype enum, whose order (descending) decides the
  /// order tensors are written in.
  int rank;
};

/// Looks up a header dtype string; nullopt when unsupported.
std::optional<SafetensorsDType> safetensors_dtype(std::string_view name);
/// The header spelling for a runtime dtype.
SafetensorsDType safetensors_dtype(DType t);

}  // namespace stag::rt
