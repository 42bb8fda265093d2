#pragma once
/// The mean of a float buffer over the ranks, in place, as a ring over MPI point-to-point messages
/// (the ring of Patarasuk and Yuan, as NCCL and Horovod run it): a reduce-scatter, after which
/// each rank holds the sum of one block of the buffer, then an all-gather of the blocks. The
/// reduce-scatter travels in chunks, and a chunk is summed (and, at the last step, scaled by
/// 1/ranks) as soon as it arrives, while the next one travels; a chunk of the last step goes on
/// to the all-gather as soon as it is summed, and the all-gather lands in the buffer itself. So
/// there is no staging copy, no separate scaling pass and no copy back, and every rank
/// ends with the same bits: each block is summed on one rank and copied to the others. Two ranks
/// swap a small buffer whole instead and both sum it (one round of messages, not two).

#include <mpi.h>

#include <span>
#include <vector>

#include "runtime/dist/average.h"

namespace stag::dist {

class RingAverage : public Averaging {
 public:
  /// Starts averaging `values` over the ranks of MPI_COMM_WORLD; every rank starts the same
  /// `tag` (one per exchange in flight) with a buffer of the same size. `values` stays alive
  /// and unread by the caller until advance() says done, and so does `scratch`, where chunks
  /// land (kept by the caller from one exchange to the next: a fresh buffer of this size would
  /// be fresh pages, each faulted in).
  RingAverage(std::span<float> values, int tag, std::vector<float>& scratch);
  ~RingAverage() override;
  RingAverage(const RingAverage&) = delete;
  RingAverage& operator=(const RingAverage&) = delete;

  /// Moves the exchange on as far as it can without waiting; true once every rank's mean is in
  /// `values`. Open MPI moves messages only inside MPI calls, so callers call this often.
  bool advance() override;

 private:
  struct Block {
    float* data;
    int count;
  };
  Block block(int index) const;
  int chunks(const Block& b) const;
  void start_step();
  void post_receive(int chunk);
  void sum_chunk(int chunk);
  bool advance_reduce();
  bool advance_gather();
  bool step_done();
  bool fused() const;
  void send_gathered(int chunk);
  void post_gathers();
  bool advance_fused();

  std::span<float> values_;
  int tag_, rank_, ranks_;
  float scale_;
  bool swap_;            ///< two ranks, a small buffer: one step, each sending and summing all of it
  int step_ = 0;         ///< 0 .. ranks-2: the reduce-scatter; ranks-1 .. 2(ranks-1)-1: the all-gather
  Block send_{}, recv_{};
  int summed_ = 0;       ///< chunks of recv_ summed so far (the reduce-scatter)
  std::vector<float>& slots_;  ///< the chunks in flight, kSlots of them
  std::vector<MPI_Request> receives_, sends_;
  int gathers_posted_ = 0;     ///< the first all-gather step's receives posted (the last reduce-scatter step)
  std::vector<MPI_Request> gather_sends_, gather_receives_;
};

}  // namespace stag::dist
