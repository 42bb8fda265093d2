// Fitting and applying mean/std normalisation.
#include "runtime/data/normalize.h"

#include <fmt/format.h>

#include <cmath>

#include "runtime/state_map.h"

namespace stag::rt {

namespace {

// Channel count and the (outer, channels, inner) view of a row-major [N, C, ...] tensor.
struct View {
  int64_t n, c, inner;
};

View view_of(const Tensor& t) {
  if (t.dtype() != DType::f32)
    throw Error(fmt::format("normalize: features are {}, expected f32", t.type_string()));
  if (t.rank() < 2)
    throw Error(fmt::format("normalize: features {} need a channel dimension", t.type_string()));
  int64_t n = t.shape()[0], c = t.shape()[1];
  int64_t inner = (n == 0 || c == 0) ? 0 : t.numel() / (n * c);
  return {n, c, inner};
}

}  // namespace

Normalizer Normalizer::fit(const Tensor& x, std::span<const int64_t> rows, bool per_channel) {
  View v = view_of(x);
  int64_t groups = per_channel ? v.c : 1;
  std::vector<double> sum(groups), sq(groups);
  std::vector<int64_t> count(groups);
  auto data = x.values<float>();
  auto for_each_row = [&](auto&& f) {
    if (rows.empty())
      for (int64_t r = 0; r < v.n; ++r) f(r);
    else
      for (int64_t r : rows) f(r);
  };
  for_each_row([&](int64_t r) {
    if (r < 0 || r >= v.n) throw Error(fmt::format("normalize: row {} out of range", r));
    for (int64_t c = 0; c < v.c; ++c) {
      int64_t g = per_channel ? c : 0;
      const float* p = data.data() + (r * v.c + c) * v.inner;
      for (int64_t i = 0; i < v.inner; ++i) sum[g] += p[i];
      count[g] += v.inner;
    }
  });
  Normalizer nz;
  nz.per_channel = per_channel;
  for (int64_t g = 0; g < groups; ++g) nz.mean.push_back(count[g] ? sum[g] / count[g] : 0.0);
  // Second pass around the mean: the one-pass formula loses digits when mean >> std.
  for_each_row([&](int64_t r) {
    for (int64_t c = 0; c < v.c; ++c) {
      int64_t g = per_channel ? c : 0;
      const float* p = data.data() + (r * v.c + c) * v.inner;
      for (int64_t i = 0; i < v.inner; ++i) sq[g] += (p[i] - nz.mean[g]) * (p[i] - nz.mean[g]);
    }
  });
  for (int64_t g = 0; g < groups; ++g) {
    double sd = count[g] ? std::sqrt(sq[g] / count[g]) : 0.0;
    nz.std.push_back(sd > 0 ? sd : 1.0);
  }
  return nz;
}

void Normalizer::apply(Tensor& x) const {
  View v = view_of(x);
  size_t want = per_channel ? static_cast<size_t>(v.c) : 1;
  if (mean.size() != want || std.size() != want)
    throw Error(fmt::format("normalize: statistics for {} channels applied to {}", mean.size(),
                            x.type_string()));
  auto data = x.values<float>();
  for (int64_t r = 0; r < v.n; ++r)
    for (int64_t c = 0; c < v.c; ++c) {
      size_t g = per_channel ? static_cast<size_t>(c) : 0;
      float* p = data.data() + (r * v.c + c) * v.inner;
      for (int64_t i = 0; i < v.inner; ++i) p[i] = static_cast<float>((p[i] - mean[g]) / std[g]);
    }
}

std::map<std::string, std::string> Normalizer::save(const std::string& prefix) const {
  return {{prefix + "mean", format_doubles(mean)},
          {prefix + "std", format_doubles(std)},
          {prefix + "per_channel", per_channel ? "1" : "0"}};
}

Normalizer Normalizer::restore(const std::map<std::string, std::string>& s,
                               const std::string& prefix) {
  Normalizer nz;
  nz.mean = parse_doubles(state_get(s, prefix + "mean"), prefix + "mean");
  nz.std = parse_doubles(state_get(s, prefix + "std"), prefix + "std");
  nz.per_channel = state_get(s, prefix + "per_channel") == "1";
  if (nz.mean.size() != nz.std.size())
    throw Error(fmt::format("{}: mean and std have different lengths", prefix));
  return nz;
}

}  // namespace stag::rt
