#pragma once
/// Runtime tensors: a dtype, a shape and an owned 64-byte-aligned buffer.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/error.h"

namespace stag::rt {

/// Dimensions, outermost first; rank 0 is a scalar. Unlike the IR, a dimension may be 0 (files may
/// hold empty arrays), but never negative.
using Shape = std::vector<int64_t>;

/// Deepest shape the runtime accepts from a file; deeper is corrupt input, never an allocation.
inline constexpr size_t kMaxRank = 64;
/// Buffer alignment: a full cache line, and enough for any vector load generated code emits.
inline constexpr size_t kTensorAlignment = 64;

/// "[2,3]" ("[]" for a scalar), as messages print shapes.
std::string shape_to_string(std::span<const int64_t> shape);
/// Element count of a shape. Throws Error when a dimension is negative, the rank exceeds
/// kMaxRank, or the product does not fit in int64.
int64_t shape_numel(std::span<const int64_t> shape);
/// Bytes a tensor of this dtype and shape needs; throws Error like shape_numel, and when
/// numel * dtype_size does not fit in int64.
int64_t shape_nbytes(DType dtype, std::span<const int64_t> shape);

/// An owned, 64-byte-aligned, C-order (row-major, contiguous) tensor. Move-only: copies of
/// parameter-sized buffers must be asked for (`clone`).
class Tensor {
 public:
  /// An f32 tensor of shape [0] with no buffer.
  Tensor() : shape_{0} {}
  /// A zero-filled tensor. Throws Error for an invalid shape or when memory runs out.
  Tensor(DType dtype, Shape shape);
  /// Like the constructor, but the contents are left unspecified: for buffers about to be filled
  /// from a file, where zeroing would touch every page twice.
  static Tensor uninitialized(DType dtype, Shape shape);
  /// Zero-filled like the constructor, for a big buffer that lives as long as a model (its
  /// workspace, its parameters): from 2 MiB on it is mapped in transparent huge pages where the
  /// kernel gives them and faulted in at once, a 512th of the page faults of clearing 4 KiB
  /// pages (in a VM each fault is dear) and fewer TLB misses in every step.
  static Tensor long_lived(DType dtype, Shape shape);
  /// A tensor over `data`, 64-byte aligned and padded as an owned tensor's buffer, which the caller
  /// owns and keeps alive longer than the view: for outputs that must lie side by side in one
  /// block (the gradients of a bucket, runtime/exchange.h).
  static Tensor view(DType dtype, Shape shape, void* data);
  /// A tensor holding a copy of `values` (their count must equal the shape's element count).
  template <class T>
  static Tensor from(Shape shape, std::span<const T> values);
  template <class T>
  static Tensor from(Shape shape, std::initializer_list<T> values) {
    return from<T>(std::move(shape), std::span<const T>(values.begin(), values.size()));
  }

  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  /// A deep copy.
  Tensor clone() const;

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  size_t rank() const { return shape_.size(); }
  int64_t numel() const { return numel_; }
  int64_t nbytes() const { return numel_ * dtype_size(dtype_); }

  /// The raw buffer (64-byte aligned; may be null when numel() == 0).
  void* data() { return buf_.get(); }
  const void* data() const { return buf_.get(); }
  std::span<std::byte> bytes() { return {buf_.get(), static_cast<size_t>(nbytes())}; }
  std::span<const std::byte> bytes() const { return {buf_.get(), static_cast<size_t>(nbytes())}; }

  /// The elements as T; throws Error when T does not match dtype().
  template <class T>
  std::span<T> values() {
    check_type(dtype_of_v<T>);
    return {reinterpret_cast<T*>(buf_.get()), static_cast<size_t>(numel_)};
  }
  template <class T>
  std::span<const T> values() const {
    check_type(dtype_of_v<T>);
    return {reinterpret_cast<const T*>(buf_.get()), static_cast<size_t>(numel_)};
  }
  /// One element by multi-index, bounds-checked (for tests and tools, not for hot loops).
  template <class T>
  T& at(std::initializer_list<int64_t> index) {
    return values<T>()[offset_of(index)];
  }
  template <class T>
  const T& at(std::initializer_list<int64_t> index) const {
    return values<T>()[offset_of(index)];
  }

  /// "f32[2,3]".
  std::string type_string() const;

 private:
  struct AlignedFree {
    bool view;      ///< value-initialized: false; a view frees nothing
    size_t mapped;  ///< the length of its own mapping (long_lived); value-initialized: 0, from the heap
    void operator()(std::byte* p) const;
  };
  enum class Fill { none, zero, zero_mapped };
  Tensor(DType dtype, Shape shape, Fill fill);
  void check_type(DType want) const;
  size_t offset_of(std::initializer_list<int64_t> index) const;

  DType dtype_ = DType::f32;
  Shape shape_;
  int64_t numel_ = 0;
  std::unique_ptr<std::byte[], AlignedFree> buf_;
};

/// Same dtype, same shape and the same bytes (so NaNs with equal bits compare equal).
bool identical(const Tensor& a, const Tensor& b);

template <class T>
Tensor Tensor::from(Shape shape, std::span<const T> values) {
  Tensor t = uninitialized(dtype_of_v<T>, std::move(shape));
  if (static_cast<int64_t>(values.size()) != t.numel())
    throw Error("Tensor::from: " + std::to_string(values.size()) + " values for a tensor of type " +
                t.type_string());
  std::copy(values.begin(), values.end(), t.values<T>().begin());
  return t;
}

}  // namespace stag::rt
