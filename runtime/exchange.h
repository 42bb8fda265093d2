#pragma once
/// Data-parallel training's split points in compiled code (kir::Exchange): the gradients
/// function calls stag_exchange to start a bucket's all-reduce as soon as its last gradient is
/// computed, so that it travels while the rest of the backward runs; the update function calls
/// it to wait for the bucket before its first read. The calls go to the active BucketExchange;
/// without one they do nothing (the values stay this process's own).

#include <cstdint>
#include <span>
#include <vector>

extern "C" {
/// op 0 starts, op 1 waits for, the all-reduce of bucket `bucket`: the f32 buffers
/// buffers[0..n), of counts[i] elements each. Called on the thread that runs the function.
void stag_exchange(int64_t op, int64_t bucket, float* const* buffers, const int64_t* counts, int64_t n);
}

namespace stag::rt {

struct Collective;

/// The buckets of data-parallel steps, active for the object's life. A start copies a bucket of
/// several values into one buffer (small gradients travel together; a bucket of one tensor is
/// sent from where it is) and starts summing it over the ranks; a wait finishes the sum and
/// writes it times 1/ranks back: every rank then holds the mean, bit for bit what one
/// all-reduce of all values after the backward gives.
class BucketExchange {
 public:
  explicit BucketExchange(const Collective& dp);
  ~BucketExchange();
  BucketExchange(const BucketExchange&) = delete;
  BucketExchange& operator=(const BucketExchange&) = delete;

  /// One more value riding on bucket 0 (the stop vote): set before the step, its mean over the
  /// ranks after update waited for bucket 0.
  float rider = 0;

  void start(int bucket, std::span<float* const> buffers, std::span<const int64_t> counts);
  void wait(int bucket, std::span<float* const> buffers, std::span<const int64_t> counts);

 private:
  struct Staged {
    std::vector<float> values;  ///< a bucket of several tensors, then (bucket 0) the rider
    std::vector<float> sum;
  };
  const Collective& dp_;
  std::vector<Staged> staged_;  ///< by bucket
};

}  // namespace stag::rt
