#pragma once
/// Data-parallel training's split points in compiled code (kir::Exchange): a gradients function
/// calls stag_exchange to start a bucket's all-reduce as soon as its last gradient is computed,
/// so that it travels while the rest of the backward runs; the update function calls it to wait
/// for the bucket before its first read. The calls go to the active BucketExchange; without one
/// they do nothing (the values stay this process's own).

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/model.h"
#include "runtime/tensor.h"

extern "C" {
/// op 0 starts, op 1 waits for, the all-reduce of bucket `bucket`: the f32 buffers
/// buffers[0..n), of counts[i] elements each. Called on the thread that runs the function.
void stag_exchange(int64_t op, int64_t bucket, float* const* buffers, const int64_t* counts, int64_t n);
}

namespace stag::rt {

struct Collective;

/// A bucket of a compiled program: the function computing its values, and their names in the
/// order its split point lists them.
struct BucketSpec {
  std::string function;
  std::vector<std::string> values;
};

/// The buckets the bucket-gradients pass recorded in the manifest (the attributes dp.bucket.N,
/// "FUNCTION VALUE VALUE ..."), by number; none when it made none.
std::vector<BucketSpec> bucket_specs(const Manifest& m);

/// The buckets of data-parallel steps, active for the object's life. Every bucket's values lie
/// side by side in one block it owns: the gradients functions write them there (run them with
/// outputs()), a start averages the bucket's part of the block over the ranks in place, and a
/// wait only waits; no copy in or out, and the 1/ranks scale happens in the all-reduce's sum.
class BucketExchange {
 public:
  /// Lays out `buckets`, whose values are outputs of `functions`, in order: each value at a
  /// multiple of 64 bytes (a tensor's alignment; the gaps are zeros, and their mean stays zero),
  /// and the bucket holding a function's `loss` one more element, the rider.
  BucketExchange(const Collective& dp, std::vector<BucketSpec> buckets, const std::vector<FunctionSpec>& functions);
  ~BucketExchange();
  BucketExchange(const BucketExchange&) = delete;
  BucketExchange& operator=(const BucketExchange&) = delete;

  /// Tensors for all outputs of `f`, to run it into: its buckets' values are views into the block.
  std::vector<Tensor> outputs(const FunctionSpec& f);

  /// One more value riding on each bucket that holds a loss (the stop vote): set before the
  /// gradients function, its mean over the ranks once its update waited for that bucket.
  float rider = 0;

  /// A split point's call: throws Error when the buffers are not the block's (the function did
  /// not run into outputs()), since the mean would then land where update does not read it.
  void start(int bucket, std::span<float* const> buffers, std::span<const int64_t> counts);
  void wait(int bucket, std::span<float* const> buffers, std::span<const int64_t> counts);

 private:
  struct Placed {
    std::vector<size_t> offsets;  ///< of the values, in the block
    size_t begin = 0, end = 0;    ///< the bucket's part of the block
    int64_t rider = -1;           ///< the rider's offset, or -1
  };
  bool holds(const Placed& p, const float* at) const;

  const Collective& dp_;
  std::vector<BucketSpec> buckets_;
  std::vector<Placed> placed_;  ///< by bucket
  Tensor block_;
};

}  // namespace stag::rt
