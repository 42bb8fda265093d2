// Data set consistency checks and row gathering.
#include "runtime/data/dataset.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include <sys/mman.h>

namespace stag::rt {

namespace {

constexpr size_t kHugePage = size_t{2} << 20;

size_t whole_huge_pages(size_t bytes) { return (bytes + kHugePage - 1) / kHugePage * kHugePage; }

}  // namespace

void* allocate_large_buffer(size_t bytes) {
  if (bytes > SIZE_MAX - 2 * kHugePage) throw std::bad_alloc();
  size_t size = whole_huge_pages(bytes);
  // Map one huge page more than needed, keep the aligned part, return the rest.
  size_t mapped = size + kHugePage;
  void* m = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  auto base = reinterpret_cast<uintptr_t>(m);
  uintptr_t start = (base + kHugePage - 1) / kHugePage * kHugePage;
  if (start > base) ::munmap(m, start - base);
  if (uintptr_t end = start + size; end < base + mapped) ::munmap(reinterpret_cast<void*>(end), base + mapped - end);
#ifdef MADV_HUGEPAGE
  // Advice only: without transparent huge pages the buffer simply has small pages.
  ::madvise(reinterpret_cast<void*>(start), size, MADV_HUGEPAGE);
#endif
  return reinterpret_cast<void*>(start);
}

void free_large_buffer(void* p, size_t bytes) noexcept {
  if (p) ::munmap(p, whole_huge_pages(bytes));
}

std::string Dataset::feature_type_string() const {
  return images ? fmt::format("{}{}", dtype_name(DType::f32), shape_to_string(images->shape))
                : features.type_string();
}

void check_dataset(const Dataset& d, const std::string& name) {
  if (d.feature_shape().empty() || d.labels.rank() == 0)
    throw Error(fmt::format("{}: features {} and labels {} must both have an example dimension",
                            name, d.feature_type_string(), d.labels.type_string()));
  if (d.labels.dtype() != DType::i64)
    throw Error(fmt::format("{}: labels are {}, expected i64", name, d.labels.type_string()));
  if (d.images && static_cast<int64_t>(d.images->data.size()) != shape_numel(d.images->shape))
    throw Error(fmt::format("{}: {} bytes of images for features {}", name,
                            d.images->data.size(), d.feature_type_string()));
  if (d.size() != d.labels.shape()[0])
    throw Error(
        fmt::format("{}: {} feature rows but {} labels", name, d.size(), d.labels.shape()[0]));
}

Tensor byte_images_to_f32(const ByteImages& images) {
  Tensor t = Tensor::uninitialized(DType::f32, images.shape);
  auto v = t.values<float>();
  for (size_t i = 0; i < images.data.size(); ++i)
    v[i] = static_cast<float>(images.data[i]) / 255.0f;
  return t;
}

void materialize_features(Dataset& d) {
  if (!d.images) return;
  d.features = byte_images_to_f32(*d.images);
  d.images.reset();
}

int64_t row_bytes(const Tensor& t) {
  if (t.rank() == 0) throw Error(fmt::format("tensor {} has no rows", t.type_string()));
  return t.shape()[0] == 0 ? 0 : t.nbytes() / t.shape()[0];
}

void gather_rows(const Tensor& src, std::span<const int64_t> indices, Tensor& dst,
                 int64_t dst_begin) {
  int64_t rb = row_bytes(src);
  if (dst.dtype() != src.dtype() || dst.rank() != src.rank() ||
      !std::equal(src.shape().begin() + 1, src.shape().end(), dst.shape().begin() + 1))
    throw Error(
        fmt::format("gather_rows: rows of {} do not fit {}", src.type_string(), dst.type_string()));
  int64_t n = static_cast<int64_t>(indices.size());
  if (dst_begin < 0 || dst_begin + n > dst.shape()[0])
    throw Error(
        fmt::format("gather_rows: {} rows at {} do not fit {}", n, dst_begin, dst.type_string()));
  const auto* s = static_cast<const std::byte*>(src.data());
  auto* d = static_cast<std::byte*>(dst.data());
  for (int64_t i = 0; i < n; ++i) {
    int64_t r = indices[i];
    if (r < 0 || r >= src.shape()[0])
      throw Error(fmt::format("gather_rows: row {} out of range for {}", r, src.type_string()));
    if (rb > 0) std::memcpy(d + (dst_begin + i) * rb, s + r * rb, static_cast<size_t>(rb));
  }
}

void gather_features(const Dataset& d, std::span<const int64_t> indices, Tensor& dst,
                     int64_t dst_begin) {
  if (!d.images) return gather_rows(d.features, indices, dst, dst_begin);
  const Shape& shape = d.images->shape;
  if (dst.dtype() != DType::f32 || dst.rank() != shape.size() ||
      !std::equal(shape.begin() + 1, shape.end(), dst.shape().begin() + 1))
    throw Error(fmt::format("gather_features: rows of {} do not fit {}", d.feature_type_string(),
                            dst.type_string()));
  int64_t n = static_cast<int64_t>(indices.size());
  if (dst_begin < 0 || dst_begin + n > dst.shape()[0])
    throw Error(fmt::format("gather_features: {} rows at {} do not fit {}", n, dst_begin,
                            dst.type_string()));
  int64_t row = shape[0] == 0 ? 0 : shape_numel(shape) / shape[0];
  const uint8_t* s = d.images->data.data();
  float* out = dst.values<float>().data() + dst_begin * row;
  for (int64_t i = 0; i < n; ++i) {
    int64_t r = indices[i];
    if (r < 0 || r >= shape[0])
      throw Error(
          fmt::format("gather_features: row {} out of range for {}", r, d.feature_type_string()));
    const uint8_t* p = s + r * row;
    float* o = out + i * row;
    for (int64_t j = 0; j < row; ++j) o[j] = static_cast<float>(p[j]) / 255.0f;
  }
}

Tensor take_rows(const Tensor& src, std::span<const int64_t> indices) {
  Shape shape = src.shape();
  shape.at(0) = static_cast<int64_t>(indices.size());
  Tensor out = Tensor::uninitialized(src.dtype(), std::move(shape));
  gather_rows(src, indices, out);
  return out;
}

Dataset subset(const Dataset& d, std::span<const int64_t> indices) {
  if (!d.images) return {take_rows(d.features, indices), take_rows(d.labels, indices), {}};
  const Shape& shape = d.images->shape;
  ByteImages im{shape, {}};
  im.shape.at(0) = static_cast<int64_t>(indices.size());
  int64_t row = shape[0] == 0 ? 0 : shape_numel(shape) / shape[0];
  im.data.resize(static_cast<size_t>(shape_numel(im.shape)));
  for (size_t i = 0; i < indices.size(); ++i) {
    int64_t r = indices[i];
    if (r < 0 || r >= shape[0])
      throw Error(fmt::format("subset: row {} out of range for {}", r, d.feature_type_string()));
    std::copy_n(d.images->data.begin() + r * row, row, im.data.begin() + static_cast<int64_t>(i) * row);
  }
  return {Tensor(), take_rows(d.labels, indices), std::move(im)};
}

}  // namespace stag::rt
