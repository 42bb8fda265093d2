#pragma once
/// A data set in memory: features [N, ...] and labels [N] (or [N, T] for language models), with
/// row gathering for batches and subsets.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace stag::rt {

/// Examples in rows: features is f32 [N, ...] (images [N, C, H, W], tables [N, F]) or i64 [N, T]
/// (token ids of a language model); labels is i64 [N] (class ids) or i64 [N, T] (next tokens).
struct Dataset {
  Tensor features;
  Tensor labels;

  /// N, the number of examples.
  int64_t size() const { return features.rank() == 0 ? 0 : features.shape()[0]; }
};

/// Checks that features and labels have rank >= 1, labels are i64 and both have the same N;
/// throws Error naming `name` otherwise.
void check_dataset(const Dataset& d, const std::string& name);

/// Bytes in one row (example) of t: nbytes / shape[0] (0 for an empty tensor).
int64_t row_bytes(const Tensor& t);

/// Copies rows src[indices[i]] to dst rows dst_begin + i (same dtype and row shape; checked).
void gather_rows(const Tensor& src, std::span<const int64_t> indices, Tensor& dst,
                 int64_t dst_begin = 0);

/// A new tensor holding src's rows at `indices`, in that order.
Tensor take_rows(const Tensor& src, std::span<const int64_t> indices);

/// The examples at `indices`, in that order (e.g. one side of a train/validation split).
Dataset subset(const Dataset& d, std::span<const int64_t> indices);

}  // namespace stag::rt
