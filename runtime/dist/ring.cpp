// A ring all-reduce over MPI_Isend/MPI_Irecv, in place, its reduce-scatter pipelined in chunks
// and each summed chunk of its last step passed on to the all-gather at once.

#include "runtime/dist/ring.h"

#include <algorithm>
#include <climits>

#include "runtime/error.h"

namespace stag::dist {

namespace {

// A chunk of the reduce-scatter: summed from a slot that is still in the cache (L2 holds two),
// and large enough that a message's handshake (rendezvous) is small beside its copy.
constexpr int kChunk = 1 << 16;  // floats: 256 KB
constexpr int kSlots = 2;
// Two ranks swap buffers up to this size (floats: 128 KB) instead of running the ring's two
// steps: one round of messages instead of two, for twice the additions. On loopback a message's
// handshake costs more than the extra additions below it, and less above: 64 KB swapped reached
// 0.61-0.63 of a ping-pong against the ring's 0.48-0.53, 256 KB 0.55-0.62 against 0.61-0.70.
constexpr size_t kSwapMax = 1 << 15;

int mod(int a, int n) { return ((a % n) + n) % n; }

bool all_done(std::vector<MPI_Request>& reqs) {
  int done = 0;
  MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &done, MPI_STATUSES_IGNORE);
  return done != 0;
}

}  // namespace

std::span<float> block_of(std::span<float> values, int index, int ranks) {
  size_t n = values.size(), per = (n + static_cast<size_t>(ranks) - 1) / static_cast<size_t>(ranks);
  per = (per + 15) / 16 * 16;
  size_t lo = std::min(n, per * static_cast<size_t>(index)), hi = std::min(n, lo + per);
  return values.subspan(lo, hi - lo);
}

RingAverage::RingAverage(std::span<float> values, int tag, std::vector<float>& scratch) : values_(values), tag_(tag), slots_(scratch) {
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks_);
  scale_ = 1.0f / static_cast<float>(ranks_);
  swap_ = ranks_ == 2 && values.size() <= kSwapMax;
  if (values.size() / static_cast<size_t>(ranks_) >= static_cast<size_t>(INT_MAX) - 64)
    throw rt::Error("a gradient all-reduce of more than 2^31 floats a process");
  if (ranks_ > 1) start_step();
}

// Requests still under way are left to MPI: the job is ending (an error ends it with MPI_Abort).
RingAverage::~RingAverage() = default;

RingAverage::Block RingAverage::block(int index) const {
  std::span<float> b = block_of(values_, index, ranks_);
  return {b.data(), static_cast<int>(b.size())};
}

int RingAverage::chunks(const Block& b) const { return (b.count + kChunk - 1) / kChunk; }

// Reduce-scatter step k sends block rank-k to the right and sums block rank-k-1 from the left;
// after ranks-1 steps rank r holds the sum of block r+1. All-gather step k then passes block
// r+1-k on, receiving block r-k in place. Two ranks with a small buffer instead swap it whole
// and both sum it (a + b is b + a, bit for bit), in one step.
void RingAverage::start_step() {
  int right = mod(rank_ + 1, ranks_), left = mod(rank_ - 1, ranks_);
  receives_.clear(), sends_.clear();
  if (step_ < ranks_ - 1) {
    send_ = block(mod(rank_ - step_, ranks_)), recv_ = block(mod(rank_ - step_ - 1, ranks_));
    if (swap_) send_ = recv_ = {values_.data(), static_cast<int>(values_.size())};
    summed_ = 0, gathers_posted_ = 0;
    gather_sends_.clear(), gather_receives_.clear();
    if (slots_.size() < static_cast<size_t>(kSlots) * kChunk) slots_.resize(static_cast<size_t>(kSlots) * kChunk);
    receives_.resize(kSlots, MPI_REQUEST_NULL);
    for (int c = 0; c < std::min(kSlots, chunks(recv_)); ++c) post_receive(c);
    for (int c = 0, n = chunks(send_); c < n; ++c) {
      sends_.emplace_back();
      MPI_Isend(send_.data + c * kChunk, std::min(kChunk, send_.count - c * kChunk), MPI_FLOAT, right, tag_, MPI_COMM_WORLD, &sends_.back());
    }
    return;
  }
  int k = step_ - (ranks_ - 1);
  send_ = block(mod(rank_ + 1 - k, ranks_)), recv_ = block(mod(rank_ - k, ranks_));
  receives_.emplace_back(), sends_.emplace_back();
  MPI_Irecv(recv_.data, recv_.count, MPI_FLOAT, left, tag_ + 1, MPI_COMM_WORLD, &receives_.back());
  MPI_Isend(send_.data, send_.count, MPI_FLOAT, right, tag_ + 1, MPI_COMM_WORLD, &sends_.back());
}

void RingAverage::post_receive(int chunk) {
  int left = mod(rank_ - 1, ranks_);
  float* slot = slots_.data() + static_cast<size_t>(chunk % kSlots) * kChunk;
  MPI_Irecv(slot, kChunk, MPI_FLOAT, left, tag_, MPI_COMM_WORLD, &receives_[static_cast<size_t>(chunk % kSlots)]);
}

// The last reduce-scatter step leaves the mean: (own + received) * 1/ranks, which for two ranks
// is bit for bit the sum MPI_Allreduce gives, then scaled.
void RingAverage::sum_chunk(int chunk) {
  const float* in = slots_.data() + static_cast<size_t>(chunk % kSlots) * kChunk;
  float* out = recv_.data + static_cast<size_t>(chunk) * kChunk;
  int n = std::min(kChunk, recv_.count - chunk * kChunk);
  if (step_ == ranks_ - 2) {
    float s = scale_;
    for (int i = 0; i < n; ++i) out[i] = (out[i] + in[i]) * s;
  } else {
    for (int i = 0; i < n; ++i) out[i] += in[i];
  }
}

// Sums the chunks that arrived, in order, each slot taking the next chunk once free. Swapping,
// a chunk is summed in place only once the other rank has it.
bool RingAverage::advance_reduce() {
  for (int n = chunks(recv_); summed_ < n;) {
    int done = 0;
    MPI_Test(&receives_[static_cast<size_t>(summed_ % kSlots)], &done, MPI_STATUS_IGNORE);
    if (done && swap_) MPI_Test(&sends_[static_cast<size_t>(summed_)], &done, MPI_STATUS_IGNORE);
    if (!done) break;
    sum_chunk(summed_);
    if (fused()) send_gathered(summed_);
    int next = summed_ + kSlots;
    ++summed_;
    if (next < n) post_receive(next);
  }
  return summed_ == chunks(recv_) && all_done(sends_);
}

// The last reduce-scatter step runs the first all-gather step with it, chunk by chunk: on
// loopback a process copies what it receives itself (Open MPI's single copy), so a chunk the left
// process summed is fetched while the rest are summed (likely still in that process's cache)
// instead of after the whole step (at 4 MB under load: 0.60 of a ping-pong against 0.39, docs/distributed.md).
bool RingAverage::fused() const { return !swap_ && step_ == ranks_ - 2; }

void RingAverage::send_gathered(int chunk) {
  int right = mod(rank_ + 1, ranks_);
  gather_sends_.emplace_back();
  MPI_Isend(recv_.data + static_cast<size_t>(chunk) * kChunk, std::min(kChunk, recv_.count - chunk * kChunk), MPI_FLOAT, right, tag_ + 1,
            MPI_COMM_WORLD, &gather_sends_.back());
}

// The first all-gather step lands in this rank's own block, which the first reduce-scatter step
// sent: with two ranks that is this very step, so chunk c's receive waits for its send.
void RingAverage::post_gathers() {
  int left = mod(rank_ - 1, ranks_);
  Block own = block(rank_);
  for (int n = chunks(own); gathers_posted_ < n; ++gathers_posted_) {
    int sent = 1;
    if (ranks_ == 2) MPI_Test(&sends_[static_cast<size_t>(gathers_posted_)], &sent, MPI_STATUS_IGNORE);
    if (!sent) return;
    size_t at = static_cast<size_t>(gathers_posted_) * kChunk;
    gather_receives_.emplace_back();
    MPI_Irecv(own.data + at, std::min(kChunk, own.count - static_cast<int>(at)), MPI_FLOAT, left, tag_ + 1, MPI_COMM_WORLD, &gather_receives_.back());
  }
}

bool RingAverage::advance_fused() {
  bool reduced = advance_reduce();
  post_gathers();
  return reduced && gathers_posted_ == chunks(block(rank_)) && all_done(gather_receives_) && all_done(gather_sends_);
}

bool RingAverage::advance_gather() { return all_done(receives_) && all_done(sends_); }

bool RingAverage::step_done() {
  if (fused()) return advance_fused();
  return step_ < ranks_ - 1 ? advance_reduce() : advance_gather();
}

bool RingAverage::advance() {
  for (int last = swap_ ? 1 : 2 * (ranks_ - 1); step_ < last;) {
    if (!step_done()) return false;
    step_ += fused() ? 2 : 1;  // the first all-gather step ran with the last reduce-scatter step
    if (step_ < last) start_step();
  }
  return true;
}

}  // namespace stag::dist
