#pragma once
/// A data set in memory: features [N, ...] and labels [N] (or [N, T] for language models), with
/// row gathering for batches and subsets.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime/tensor.h"

namespace stag::rt {

/// Buffers at least this large come from allocate_large_buffer.
inline constexpr size_t kLargeBufferBytes = size_t{4} << 20;

/// Memory for a large data buffer, not initialised: whole 2 MiB pages, advised into transparent
/// huge pages where the system has them, so that filling it takes a page fault every 2 MiB
/// instead of every 4 KiB (in a VM each fault costs ~15 us: ~0.2 s for Fashion-MNIST's bytes).
/// Throws std::bad_alloc.
void* allocate_large_buffer(size_t bytes);
/// Frees what allocate_large_buffer(bytes) returned.
void free_large_buffer(void* p, size_t bytes) noexcept;

/// An allocator whose value-initialisation leaves elements uninitialised, so that resize() does
/// not zero a buffer about to be filled from a file (zeroing touches every page once more, and a
/// large fresh buffer is mostly page faults); large buffers get huge pages.
template <class T>
struct UninitializedAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <class U>
  UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
  T* allocate(size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_alloc();
    if (n * sizeof(T) < kLargeBufferBytes) return std::allocator<T>::allocate(n);
    return static_cast<T*>(allocate_large_buffer(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n * sizeof(T) < kLargeBufferBytes) return std::allocator<T>::deallocate(p, n);
    free_large_buffer(p, n * sizeof(T));
  }
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

/// Bytes whose resize() leaves the new ones unspecified.
using ByteVector = std::vector<uint8_t, UninitializedAllocator<uint8_t>>;

/// Unsigned-byte images as IDX files hold them, [N, C, H, W], whose features are byte / 255 as
/// f32. They stay bytes in memory — a quarter of the pages to fill when loading — and become f32
/// when a batch is assembled, with exactly the values an f32 tensor of them would hold.
struct ByteImages {
  Shape shape;
  ByteVector data;
};

/// Examples in rows: features is f32 [N, ...] (images [N, C, H, W], tables [N, F]) or i64 [N, T]
/// (token ids of a language model); labels is i64 [N] (class ids) or i64 [N, T] (next tokens).
/// Images loaded from IDX files are `images` instead, and `features` is then empty: read the
/// features' type with feature_dtype() and feature_shape(), and call materialize_features()
/// before changing them in place.
struct Dataset {
  Tensor features;
  Tensor labels;
  std::optional<ByteImages> images = std::nullopt;

  /// N, the number of examples.
  int64_t size() const {
    const Shape& s = feature_shape();
    return s.empty() ? 0 : s[0];
  }
  /// The features' dtype and shape as a model takes them (f32 for byte images).
  DType feature_dtype() const { return images ? DType::f32 : features.dtype(); }
  const Shape& feature_shape() const { return images ? images->shape : features.shape(); }
  /// "f32[60000,1,28,28]".
  std::string feature_type_string() const;
};

/// Byte images as f32 (byte / 255).
Tensor byte_images_to_f32(const ByteImages& images);

/// Replaces byte images by the f32 features tensor (for normalisation, which rewrites features).
void materialize_features(Dataset& d);

/// Checks that features and labels have rank >= 1, labels are i64 and both have the same N;
/// throws Error naming `name` otherwise.
void check_dataset(const Dataset& d, const std::string& name);

/// Bytes in one row (example) of t: nbytes / shape[0] (0 for an empty tensor).
int64_t row_bytes(const Tensor& t);

/// Copies rows src[indices[i]] to dst rows dst_begin + i (same dtype and row shape; checked).
void gather_rows(const Tensor& src, std::span<const int64_t> indices, Tensor& dst,
                 int64_t dst_begin = 0);

/// The features of the examples `indices` into rows dst_begin + i of dst (f32 from byte images).
void gather_features(const Dataset& d, std::span<const int64_t> indices, Tensor& dst,
                     int64_t dst_begin = 0);

/// A new tensor holding src's rows at `indices`, in that order.
Tensor take_rows(const Tensor& src, std::span<const int64_t> indices);

/// The examples at `indices`, in that order (e.g. one side of a train/validation split).
Dataset subset(const Dataset& d, std::span<const int64_t> indices);

}  // namespace stag::rt
