#pragma once
/// Data sets from a pair of .npy files (features and labels), as NumPy users save them.

#include <filesystem>

#include "runtime/data/dataset.h"

namespace stag::rt {

/// Features: f32 as is, f64 narrowed to f32, i32/i64 as i64 (token ids). Labels: i32 or i64, as
/// i64, rank >= 1. The first dimensions must agree. Errors name the offending file.
Dataset load_npy_dataset(const std::filesystem::path& features,
                         const std::filesystem::path& labels);

}  // namespace stag::rt
