// Batch assembly and the prefetching iterator.
#include "runtime/data/loader.h"

#include <fmt/format.h>

#include <numeric>

#include "runtime/data/split.h"

namespace stag::rt {

StateMap LoaderState::save(const std::string& prefix) const {
  return {{prefix + "seed", std::to_string(seed)},
          {prefix + "epoch", std::to_string(epoch)},
          {prefix + "position", std::to_string(position)}};
}

LoaderState LoaderState::restore(const StateMap& m, const std::string& prefix) {
  LoaderState s;
  s.seed = parse_uint(state_get(m, prefix + "seed"), prefix + "seed");
  s.epoch = parse_int(state_get(m, prefix + "epoch"), prefix + "epoch");
  s.position = parse_int(state_get(m, prefix + "position"), prefix + "position");
  if (s.epoch < 0 || s.position < 0)
    throw Error(fmt::format("saved state '{}': negative epoch or position", prefix));
  return s;
}

BatchPlan::BatchPlan(const Dataset& data, std::vector<int64_t> indices, LoaderOptions options,
                     uint64_t seed)
    : data_(data), indices_(std::move(indices)), options_(options), seed_(seed) {
  check_dataset(data, "data loader");
  if (options_.batch_size < 1)
    throw Error(fmt::format("batch size must be >= 1, got {}", options_.batch_size));
  if (indices_.empty()) {
    indices_.resize(static_cast<size_t>(data.size()));
    std::iota(indices_.begin(), indices_.end(), int64_t{0});
  }
  for (int64_t i : indices_)
    if (i < 0 || i >= data.size())
      throw Error(fmt::format("data loader: example index {} out of range for {} examples", i,
                              data.size()));
  if (options_.balance_classes && data.labels.shape().size() != 1)
    throw Error(fmt::format("class-balanced sampling needs one class label per example, the labels are {}",
                            data.labels.type_string()));
  if (!options_.augment.identity() &&
      (data.feature_shape().size() != 4 || data.feature_dtype() != DType::f32))
    throw Error(fmt::format("data loader: augmentation needs f32 images [N,C,H,W], features are {}",
                            data.feature_type_string()));
}

int64_t BatchPlan::batches_per_epoch() const {
  int64_t n = examples(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> BatchPlan::order(int64_t epoch) const {
  if (options_.balance_classes) return balanced_order(epoch);
  if (!options_.shuffle) return indices_;
  auto perm = shuffled_indices(examples(), seed_, static_cast<uint64_t>(epoch));
  std::vector<int64_t> out(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) out[i] = indices_[perm[i]];
  return out;
}

std::vector<int64_t> BatchPlan::balanced_order(int64_t epoch) const {
  std::vector<int64_t> labels(indices_.size());
  auto all = data_.labels.values<int64_t>();
  for (size_t i = 0; i < indices_.size(); ++i) labels[i] = all[static_cast<size_t>(indices_[i])];
  auto draws = balanced_draws(labels, seed_, static_cast<uint64_t>(epoch));
  for (auto& d : draws) d = indices_[static_cast<size_t>(d)];
  return draws;
}

void BatchPlan::set_seed(uint64_t seed) {
  std::lock_guard lock(cache_mu_);
  seed_ = seed;
  cached_epoch_ = -1;
  cached_.reset();
}

std::shared_ptr<const std::vector<int64_t>> BatchPlan::cached_order(int64_t epoch) const {
  std::lock_guard lock(cache_mu_);
  if (cached_epoch_ != epoch || !cached_) {
    cached_ = std::make_shared<const std::vector<int64_t>>(order(epoch));
    cached_epoch_ = epoch;
  }
  return cached_;
}

Batch BatchPlan::make(int64_t epoch, int64_t b) const {
  if (b < 0 || b >= batches_per_epoch())
    throw Error(
        fmt::format("data loader: batch {} out of range ({} per epoch)", b, batches_per_epoch()));
  auto ord_ptr = cached_order(epoch);
  const auto& ord = *ord_ptr;
  int64_t B = options_.batch_size;
  int64_t lo = b * B, hi = std::min(lo + B, examples());
  Batch out;
  out.epoch = epoch;
  out.index = b;
  out.size = hi - lo;
  out.indices.assign(ord.begin() + lo, ord.begin() + hi);
  int64_t rows = options_.pad_last ? B : out.size;
  Shape fs = data_.feature_shape(), ls = data_.labels.shape();
  fs[0] = ls[0] = rows;
  out.features = Tensor(data_.feature_dtype(), fs);  // zeroed: padding rows stay 0
  out.labels = Tensor(data_.labels.dtype(), ls);
  gather_features(data_, out.indices, out.features);
  gather_rows(data_.labels, out.indices, out.labels);
  if (!options_.augment.identity())
    augment_batch(out.features, out.indices, options_.augment, seed_, epoch);
  return out;
}

BatchIterator::BatchIterator(const Dataset& data, std::vector<int64_t> indices,
                             LoaderOptions options, uint64_t seed, int prefetch)
    : plan_(data, std::move(indices), options, seed), prefetch_(prefetch) {
  if (prefetch < 0) throw Error(fmt::format("prefetch depth must be >= 0, got {}", prefetch));
  state_.seed = seed;
  start();
}

BatchIterator::~BatchIterator() { stop(); }

void BatchIterator::start() {
  if (prefetch_ == 0) return;
  stopping_ = false;
  worker_ = std::thread([this, from = state_] { produce(from); });
}

void BatchIterator::stop() {
  if (!worker_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  worker_.join();
  queue_.clear();
}

void BatchIterator::produce(LoaderState at) {
  for (;;) {
    Item item;
    try {
      if (at.position < plan_.batches_per_epoch())
        item.batch = plan_.make(at.epoch, at.position++);
      else
        at = {at.seed, at.epoch + 1, 0};
    } catch (...) {
      item.error = std::current_exception();
    }
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return stopping_ || static_cast<int>(queue_.size()) < prefetch_; });
    if (stopping_) return;
    bool failed = item.error != nullptr;
    queue_.push_back(std::move(item));
    lock.unlock();
    cv_.notify_all();
    if (failed) return;  // the consumer rethrows; nothing sensible follows an error
  }
}

std::optional<Batch> BatchIterator::next() {
  Item item;
  if (prefetch_ == 0) {
    if (state_.position < plan_.batches_per_epoch())
      item.batch = plan_.make(state_.epoch, state_.position);
  } else {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !queue_.empty(); });
    item = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    cv_.notify_all();
    if (item.error) {
      // Leave the iterator usable: restart production at the batch that failed.
      stop();
      start();
      std::rethrow_exception(item.error);
    }
  }
  if (item.batch)
    ++state_.position;
  else
    state_ = {state_.seed, state_.epoch + 1, 0};
  return std::move(item.batch);
}

int64_t BatchIterator::ready() const {
  std::lock_guard lock(mu_);
  return static_cast<int64_t>(queue_.size());
}

void BatchIterator::restore(const LoaderState& s) {
  if (s.epoch < 0 || s.position < 0 || s.position > plan_.batches_per_epoch())
    throw Error(
        fmt::format("data loader: cannot resume at epoch {} batch {} ({} batches per epoch)",
                    s.epoch, s.position, plan_.batches_per_epoch()));
  stop();
  if (s.seed != plan_.seed()) plan_.set_seed(s.seed);
  state_ = s;
  start();
}

}  // namespace stag::rt
