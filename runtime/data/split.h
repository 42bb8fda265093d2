#pragma once
/// Seeded example orders: per-epoch shuffles, a train/validation split, k-fold cross-validation.
/// All are pure functions of their arguments (see rng.h), so a resumed run recomputes them.

#include <cstdint>
#include <vector>

namespace stag::rt {

/// A permutation of [0, n): Fisher-Yates from the last position down, j = below(i + 1), with the
/// generator Rng(derive_seed(seed, RngStream::shuffle, epoch)). Different every epoch.
std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed, uint64_t epoch);

/// An epoch of class-balanced draws, as PyTorch's WeightedRandomSampler with weights 1 / (count
/// of the example's class) and replacement: labels.size() positions into `labels`, each a class
/// drawn uniformly among those present, then one of its examples uniformly, with the generator
/// Rng(derive_seed(seed, RngStream::balance, epoch)). Rare classes are seen as often as common
/// ones, which is what a macro-averaged score rewards; negative labels are an Error.
std::vector<int64_t> balanced_draws(const std::vector<int64_t>& labels, uint64_t seed, uint64_t epoch);

/// Two disjoint index sets covering [0, n), each ascending.
struct Split {
  std::vector<int64_t> train;
  std::vector<int64_t> validation;
};

/// The validation side has round(n * fraction) examples, chosen by a shuffle with stream
/// RngStream::split; fraction must be in [0, 1).
Split train_validation_split(int64_t n, double validation_fraction, uint64_t seed);

/// k folds (2 <= k <= n): one seeded shuffle (stream RngStream::kfold), cut into k consecutive
/// parts whose sizes differ by at most one (the first n % k parts one larger, as scikit-learn's
/// KFold); fold i validates on part i and trains on the rest. Every index is validated exactly
/// once.
std::vector<Split> kfold(int64_t n, int64_t k, uint64_t seed);

}  // namespace stag::rt
