#pragma once
/// Batches for a static-shape training step, and the prefetching iterator that assembles the next
/// batch on a background thread while the current step runs.
///
/// Batch b of epoch e holds the examples order(e)[b*B, (b+1)*B) where order(e) is the subset's
/// indices permuted by shuffled_indices(n, seed, e) (or left in order without shuffling, or drawn
/// class-balanced by balanced_draws(labels, seed, e)), then
/// augmented with (seed, e, example index). So a batch is a pure function of (seed, epoch, b): the
/// prefetching iterator yields exactly what the synchronous one does, whatever the timing, and a
/// saved LoaderState (seed, epoch, position) resumes exactly.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "runtime/data/augment.h"
#include "runtime/data/dataset.h"
#include "runtime/state_map.h"

namespace stag::rt {

struct LoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = true;
  /// Instead of a shuffle, draw each epoch's examples with replacement so that every class is
  /// equally likely (balanced_draws); needs class labels [N].
  bool balance_classes = false;
  /// Drop the last partial batch (the compiled step's batch size is static). When false, the last
  /// batch has fewer rows — or, with pad_last, batch_size rows of which only Batch::size are real
  /// and the rest zero (for a static-shape evaluation function).
  bool drop_last = true;
  bool pad_last = false;
  /// Augmentation of image features [N, C, H, W]; identity by default.
  AugmentOptions augment;
};

/// Where an iterator stands: the next batch it returns is batch `position` of epoch `epoch`.
struct LoaderState {
  uint64_t seed = 0;
  int64_t epoch = 0;
  int64_t position = 0;
  bool operator==(const LoaderState&) const = default;
  /// As strings under `prefix` (checkpoint metadata).
  StateMap save(const std::string& prefix = "loader.") const;
  static LoaderState restore(const StateMap& m, const std::string& prefix = "loader.");
};

/// One batch.
struct Batch {
  Tensor features;
  Tensor labels;
  std::vector<int64_t> indices;  ///< data-set row of each real example
  int64_t epoch = 0;
  int64_t index = 0;  ///< batch number within the epoch
  int64_t size = 0;   ///< real examples (< rows only for a padded last batch)
};

/// The batches of a data set (or of the subset `indices` of it) — the pure function above.
class BatchPlan {
 public:
  /// `indices` empty means every example. The data set must outlive the plan.
  BatchPlan(const Dataset& data, std::vector<int64_t> indices, LoaderOptions options,
            uint64_t seed);
  /// Batches in each epoch.
  int64_t batches_per_epoch() const;
  /// Examples in the subset.
  int64_t examples() const { return static_cast<int64_t>(indices_.size()); }
  /// The example order of an epoch.
  std::vector<int64_t> order(int64_t epoch) const;
  /// Assembles batch b of epoch e.
  Batch make(int64_t epoch, int64_t b) const;
  const LoaderOptions& options() const { return options_; }
  uint64_t seed() const { return seed_; }
  void set_seed(uint64_t seed);

 private:
  std::shared_ptr<const std::vector<int64_t>> cached_order(int64_t epoch) const;
  std::vector<int64_t> balanced_order(int64_t epoch) const;

  const Dataset& data_;
  std::vector<int64_t> indices_;
  LoaderOptions options_;
  uint64_t seed_;
  // The last epoch's order, so that make() does not reshuffle for every batch.
  mutable std::mutex cache_mu_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::shared_ptr<const std::vector<int64_t>> cached_;
};

/// Iterates batches epoch after epoch. With prefetch > 0, a background thread keeps up to
/// `prefetch` batches ready (a bounded queue: memory stays at prefetch + 1 batches); with
/// prefetch == 0 batches are made on the calling thread. Not thread-safe itself: one consumer.
class BatchIterator {
 public:
  BatchIterator(const Dataset& data, std::vector<int64_t> indices, LoaderOptions options,
                uint64_t seed, int prefetch = 2);
  ~BatchIterator();
  BatchIterator(const BatchIterator&) = delete;
  BatchIterator& operator=(const BatchIterator&) = delete;

  /// The next batch of the current epoch, or nullopt when the epoch is over — after which the
  /// iterator stands at the start of the next epoch. An Error raised while assembling a batch
  /// (on the background thread) is rethrown here.
  std::optional<Batch> next();
  /// The position of the next batch; save it with the checkpoint.
  LoaderState state() const { return state_; }
  /// Continues from a saved state (the seed too); queued batches are discarded.
  void restore(const LoaderState& s);
  const BatchPlan& plan() const { return plan_; }
  /// Batches (and end-of-epoch marks) assembled and waiting: at most `prefetch`.
  int64_t ready() const;

 private:
  struct Item {
    std::optional<Batch> batch;  ///< nullopt: end of epoch
    std::exception_ptr error;
  };
  void start();
  void stop();
  void produce(LoaderState from);

  BatchPlan plan_;
  int prefetch_;
  LoaderState state_;
  std::thread worker_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopping_ = false;
};

}  // namespace stag::rt
