#pragma once
/// Mean/std normalisation: statistics computed on the training examples only, then applied to
/// every split, so no validation or test information leaks into training.

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace stag::rt {

/// x' = (x - mean[c]) / std[c], c the index along dimension 1 (the channel of [N, C, H, W], the
/// column of [N, F]); one value for all when not per channel.
struct Normalizer {
  std::vector<double> mean;
  std::vector<double> std;
  bool per_channel = true;

  /// Statistics of f32 `features` over the rows `rows` (all rows when empty), accumulated in
  /// double. std is the population standard deviation (ddof 0, as scikit-learn's
  /// StandardScaler); a constant channel gets std 1 so it maps to 0 instead of NaN.
  static Normalizer fit(const Tensor& features, std::span<const int64_t> rows = {},
                        bool per_channel = true);
  /// Normalises f32 features in place; the channel count must match.
  void apply(Tensor& features) const;
  /// As strings (e.g. checkpoint metadata under `prefix`), 17 significant digits: exact.
  std::map<std::string, std::string> save(const std::string& prefix = "normalize.") const;
  static Normalizer restore(const std::map<std::string, std::string>& state,
                            const std::string& prefix = "normalize.");
};

}  // namespace stag::rt
