// Tensor allocation, checked sizes and element access.
#include "runtime/tensor.h"

#include <fmt/format.h>

#include <sys/mman.h>

#include <cstring>
#include <new>

#include "runtime/checked.h"
#include "runtime/memory.h"

namespace stag::rt {

std::string shape_to_string(std::span<const int64_t> shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

int64_t shape_numel(std::span<const int64_t> shape) {
  if (shape.size() > kMaxRank)
    throw Error(fmt::format("shape has rank {}, more than the limit {}", shape.size(), kMaxRank));
  for (int64_t d : shape)
    if (d < 0) throw Error(fmt::format("shape {} has a negative dimension", shape_to_string(shape)));
  auto n = checked_numel(shape);
  if (!n)
    throw Error(fmt::format("shape {} has more elements than fit in int64", shape_to_string(shape)));
  return *n;
}

int64_t shape_nbytes(DType dtype, std::span<const int64_t> shape) {
  auto b = checked_mul(shape_numel(shape), dtype_size(dtype));
  if (!b)
    throw Error(fmt::format("{}{} needs more bytes than fit in int64", dtype_name(dtype),
                            shape_to_string(shape)));
  return *b;
}

void Tensor::AlignedFree::operator()(std::byte* p) const {
  if (view) return;
  if (mapped) munmap(p, mapped);
  else ::operator delete[](p, std::align_val_t(kTensorAlignment));
}

namespace {

constexpr size_t kHugePage = size_t{2} << 20;

// Zeroed pages of an anonymous mapping, in huge pages if the kernel has them, populated now so
// that the first step does not fault them in one by one. Null when that fails (no memory, or a
// kernel before 5.14): the heap then serves, as for any tensor.
std::byte* map_zeroed(size_t bytes) {
#ifdef MADV_POPULATE_WRITE
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  madvise(p, bytes, MADV_HUGEPAGE);
  if (madvise(p, bytes, MADV_POPULATE_WRITE) == 0) return static_cast<std::byte*>(p);
  munmap(p, bytes);
#else
  (void)bytes;
#endif
  return nullptr;
}

}  // namespace

Tensor Tensor::view(DType dtype, Shape shape, void* data) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.numel_ = shape_numel(t.shape_);
  t.buf_ = std::unique_ptr<std::byte[], AlignedFree>(static_cast<std::byte*>(data), AlignedFree{true, 0});
  return t;
}

Tensor::Tensor(DType dtype, Shape shape) : Tensor(dtype, std::move(shape), Fill::zero) {}

Tensor Tensor::uninitialized(DType dtype, Shape shape) { return Tensor(dtype, std::move(shape), Fill::none); }

Tensor Tensor::long_lived(DType dtype, Shape shape) { return Tensor(dtype, std::move(shape), Fill::zero_mapped); }

Tensor::Tensor(DType dtype, Shape shape, Fill fill) : dtype_(dtype), shape_(std::move(shape)) {
  int64_t bytes = shape_nbytes(dtype_, shape_);
  numel_ = shape_numel(shape_);
  if (bytes == 0) return;
  // Round up so that vector code may read a whole last cache line without touching another page's
  // allocation.
  constexpr int64_t a = kTensorAlignment;
  if (bytes > PTRDIFF_MAX - a)
    throw Error(fmt::format("tensor {} is too large to allocate", type_string()));
  size_t alloc = static_cast<size_t>((bytes + a - 1) / a * a);
  if (fill == Fill::zero_mapped && alloc >= kHugePage)
    if (std::byte* p = map_zeroed(alloc)) {
      buf_ = std::unique_ptr<std::byte[], AlignedFree>(p, AlignedFree{false, alloc});
      return;
    }
  try {
    buf_.reset(static_cast<std::byte*>(::operator new[](alloc, std::align_val_t(kTensorAlignment))));
  } catch (const std::bad_alloc&) {
    // The memory check passed (or another process took the memory since): still the user's to fix.
    throw MemoryError(fmt::format("out of memory allocating {} for tensor {}", format_bytes(static_cast<double>(alloc)),
                                  type_string()));
  }
  if (fill != Fill::none) std::memset(buf_.get(), 0, alloc);
}

Tensor Tensor::clone() const {
  Tensor t = uninitialized(dtype_, shape_);
  if (nbytes() > 0) std::memcpy(t.data(), data(), static_cast<size_t>(nbytes()));
  return t;
}

std::string Tensor::type_string() const {
  return fmt::format("{}{}", dtype_name(dtype_), shape_to_string(shape_));
}

void Tensor::check_type(DType want) const {
  if (want != dtype_)
    throw Error(fmt::format("tensor {} accessed as {}", type_string(), dtype_name(want)));
}

size_t Tensor::offset_of(std::initializer_list<int64_t> index) const {
  if (index.size() != shape_.size())
    throw Error(fmt::format("index of rank {} into tensor {}", index.size(), type_string()));
  int64_t off = 0;
  size_t k = 0;
  for (int64_t i : index) {
    if (i < 0 || i >= shape_[k])
      throw Error(fmt::format("index {} out of range for dimension {} of tensor {}", i, k,
                              type_string()));
    off = off * shape_[k] + i;
    ++k;
  }
  return static_cast<size_t>(off);
}

bool identical(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         (a.nbytes() == 0 || std::memcmp(a.data(), b.data(), static_cast<size_t>(a.nbytes())) == 0);
}

}  // namespace stag::rt
