// Data set consistency checks and row gathering.
#include "runtime/data/dataset.h"

#include <fmt/format.h>

#include <cstring>

namespace stag::rt {

void check_dataset(const Dataset& d, const std::string& name) {
  if (d.features.rank() == 0 || d.labels.rank() == 0)
    throw Error(fmt::format("{}: features {} and labels {} must both have an example dimension",
                            name, d.features.type_string(), d.labels.type_string()));
  if (d.labels.dtype() != DType::i64)
    throw Error(fmt::format("{}: labels are {}, expected i64", name, d.labels.type_string()));
  if (d.features.shape()[0] != d.labels.shape()[0])
    throw Error(fmt::format("{}: {} feature rows but {} labels", name, d.features.shape()[0],
                            d.labels.shape()[0]));
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

Tensor take_rows(const Tensor& src, std::span<const int64_t> indices) {
  Shape shape = src.shape();
  shape.at(0) = static_cast<int64_t>(indices.size());
  Tensor out = Tensor::uninitialized(src.dtype(), std::move(shape));
  gather_rows(src, indices, out);
  return out;
}

Dataset subset(const Dataset& d, std::span<const int64_t> indices) {
  return {take_rows(d.features, indices), take_rows(d.labels, indices)};
}

}  // namespace stag::rt
