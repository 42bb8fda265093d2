// Seeded shuffles, splits and folds.
#include "runtime/data/split.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "runtime/data/rng.h"
#include "runtime/error.h"

namespace stag::rt {

namespace {

std::vector<int64_t> permutation(int64_t n, uint64_t state) {
  if (n < 0) throw Error(fmt::format("shuffle: negative example count {}", n));
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), int64_t{0});
  Rng rng(state);
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(p[i], p[static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1))]);
  return p;
}

}  // namespace

std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed, uint64_t epoch) {
  return permutation(n, derive_seed(seed, RngStream::shuffle, epoch));
}

std::vector<int64_t> balanced_draws(const std::vector<int64_t>& labels, uint64_t seed, uint64_t epoch) {
  std::vector<std::vector<int64_t>> members;  // the positions of each class present
  std::vector<int64_t> slot;                  // class label -> its index in members, or -1
  for (size_t i = 0; i < labels.size(); ++i) {
    int64_t c = labels[i];
    if (c < 0) throw Error(fmt::format("class-balanced sampling: label {} at example {} is negative", c, i));
    if (static_cast<size_t>(c) >= slot.size()) slot.resize(static_cast<size_t>(c) + 1, -1);
    if (slot[static_cast<size_t>(c)] < 0) {
      slot[static_cast<size_t>(c)] = static_cast<int64_t>(members.size());
      members.emplace_back();
    }
    members[static_cast<size_t>(slot[static_cast<size_t>(c)])].push_back(static_cast<int64_t>(i));
  }
  Rng rng(derive_seed(seed, RngStream::balance, epoch));
  std::vector<int64_t> out(labels.size());
  for (auto& o : out) {
    const auto& m = members[rng.below(members.size())];
    o = m[rng.below(m.size())];
  }
  return out;
}

Split train_validation_split(int64_t n, double fraction, uint64_t seed) {
  if (!(fraction >= 0 && fraction < 1))
    throw Error(fmt::format("validation fraction must be in [0, 1), got {}", fraction));
  auto p = permutation(n, derive_seed(seed, RngStream::split, 0));
  auto nv = static_cast<int64_t>(std::llround(static_cast<double>(n) * fraction));
  Split s;
  s.validation.assign(p.begin(), p.begin() + nv);
  s.train.assign(p.begin() + nv, p.end());
  std::sort(s.validation.begin(), s.validation.end());
  std::sort(s.train.begin(), s.train.end());
  return s;
}

std::vector<Split> kfold(int64_t n, int64_t k, uint64_t seed) {
  if (k < 2 || k > n)
    throw Error(fmt::format("k-fold: k must be in [2, {}] for {} examples, got {}", n, n, k));
  auto p = permutation(n, derive_seed(seed, RngStream::kfold, 0));
  std::vector<Split> folds(static_cast<size_t>(k));
  int64_t start = 0;
  for (int64_t i = 0; i < k; ++i) {
    int64_t len = n / k + (i < n % k ? 1 : 0);
    for (int64_t j = 0; j < n; ++j)
      (j >= start && j < start + len ? folds[i].validation : folds[i].train).push_back(p[j]);
    std::sort(folds[i].validation.begin(), folds[i].validation.end());
    std::sort(folds[i].train.begin(), folds[i].train.end());
    start += len;
  }
  return folds;
}

}  // namespace stag::rt
