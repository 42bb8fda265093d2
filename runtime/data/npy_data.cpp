// Loading a features/labels pair of .npy files, with the dtype conversions a model expects.
#include "runtime/data/npy_data.h"

#include <fmt/format.h>

#include "runtime/npy.h"

namespace stag::rt {

namespace {

template <class To, class From>
Tensor convert(const Tensor& t) {
  Tensor out = Tensor::uninitialized(dtype_of_v<To>, t.shape());
  auto s = t.values<From>();
  auto d = out.values<To>();
  for (size_t i = 0; i < s.size(); ++i) d[i] = static_cast<To>(s[i]);
  return out;
}

}  // namespace

Dataset load_npy_dataset(const std::filesystem::path& features,
                         const std::filesystem::path& labels) {
  Tensor x = read_npy(features);
  Tensor y = read_npy(labels);
  switch (x.dtype()) {
    case DType::f32:
    case DType::i64: break;
    case DType::f64: x = convert<float, double>(x); break;
    case DType::i32: x = convert<int64_t, int32_t>(x); break;
    case DType::b8:
      throw Error(fmt::format("{}: features are bool; expected floats or integer token ids",
                              features.string()));
  }
  if (y.dtype() == DType::i32)
    y = convert<int64_t, int32_t>(y);
  else if (y.dtype() != DType::i64)
    throw Error(fmt::format("{}: labels are {}; expected integers (i32 or i64)", labels.string(),
                            dtype_name(y.dtype())));
  if (x.rank() == 0)
    throw Error(fmt::format("{}: features are a scalar, expected [N, ...]", features.string()));
  if (y.rank() == 0)
    throw Error(fmt::format("{}: labels are a scalar, expected [N]", labels.string()));
  if (x.shape()[0] != y.shape()[0])
    throw Error(fmt::format("{}: {} examples, but {} has {} labels", features.string(),
                            x.shape()[0], labels.string(), y.shape()[0]));
  return {std::move(x), std::move(y)};
}

}  // namespace stag::rt
