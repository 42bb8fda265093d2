// The bandwidth of stag's gradient all-reduce against a plain MPI ping-pong, on whatever links
// mpirun gives (loopback on one machine):
//   mpirun -np 2 build/tools/stag_allreduce_bench [MAX_MB]
// Ping-pong: rank 0 sends B bytes to rank 1, which sends them back; bandwidth B / (round trip / 2).
// All-reduce: one bucket of B bytes through BucketExchange (the staging copy, the collective's
// MPI_Iallreduce, the 1/N scale and the copy back: what a step's split points do); its bus
// bandwidth is 2(N-1)/N * B / time, the rate each link carries in a ring (NCCL's busbw). Open
// MPI's blocking MPI_Allreduce of the same buffer is printed beside it.

#include <mpi.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>

#include "runtime/dist/dist.h"
#include "runtime/exchange.h"

namespace {

using Clock = std::chrono::steady_clock;

// The best of `reps` timings of `body`, in seconds, every rank timing together.
template <class F>
double best_seconds(int reps, F body) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    MPI_Barrier(MPI_COMM_WORLD);
    auto t0 = Clock::now();
    body();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  double worst_best = 0;  // the slowest rank's best: a collective ends when every rank is done
  MPI_Allreduce(&best, &worst_best, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return worst_best;
}

double ping_pong(std::vector<char>& buf, int rank, int reps) {
  int n = static_cast<int>(buf.size());
  double rtt = best_seconds(reps, [&] {
    if (rank == 0) {
      MPI_Send(buf.data(), n, MPI_CHAR, 1, 0, MPI_COMM_WORLD);
      MPI_Recv(buf.data(), n, MPI_CHAR, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else if (rank == 1) {
      MPI_Recv(buf.data(), n, MPI_CHAR, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(buf.data(), n, MPI_CHAR, 0, 0, MPI_COMM_WORLD);
    }
  });
  return static_cast<double>(buf.size()) / (rtt / 2);
}

double bucket_all_reduce(const stag::rt::Collective& dp, std::vector<float>& grads, int reps) {
  stag::rt::BucketExchange exchange(dp);
  float* buffers[] = {grads.data()};
  int64_t counts[] = {static_cast<int64_t>(grads.size())};
  double t = best_seconds(reps, [&] {
    exchange.start(0, buffers, counts);
    exchange.wait(0, buffers, counts);
  });
  double bytes = static_cast<double>(grads.size() * sizeof(float));
  return 2.0 * (dp.ranks - 1) / dp.ranks * bytes / t;
}

// Open MPI's own blocking all-reduce of the same buffer, for reference.
double plain_all_reduce(int ranks, std::vector<float>& grads, int reps) {
  double t = best_seconds(reps, [&] {
    MPI_Allreduce(MPI_IN_PLACE, grads.data(), static_cast<int>(grads.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  });
  return 2.0 * (ranks - 1) / ranks * static_cast<double>(grads.size() * sizeof(float)) / t;
}

}  // namespace

int main(int argc, char** argv) {
  double max_mb = argc > 1 ? std::atof(argv[1]) : 64;
  stag::dist::Session session(60);
  const stag::rt::Collective& dp = session.collective();
  if (dp.ranks < 2) {
    fmt::print(stderr, "run under mpirun -np 2 (or more)\n");
    return 2;
  }
  if (dp.rank == 0)
    fmt::print("{:>10}  {:>14}  {:>20}  {:>6}  {:>22}\n", "bytes", "ping-pong GB/s", "stag all-reduce GB/s", "ratio", "MPI_Allreduce GB/s");
  for (size_t bytes = 64 << 10; bytes <= static_cast<size_t>(max_mb * (1 << 20)); bytes *= 4) {
    int reps = bytes < (4 << 20) ? 50 : 20;
    std::vector<char> msg(bytes, 1);
    std::vector<float> grads(bytes / sizeof(float), 1.0f);
    double pp = ping_pong(msg, dp.rank, reps);
    double ar = bucket_all_reduce(dp, grads, reps);
    double plain = plain_all_reduce(dp.ranks, grads, reps);
    if (dp.rank == 0) fmt::print("{:>10}  {:>14.2f}  {:>20.2f}  {:>6.2f}  {:>22.2f}\n", bytes, pp / 1e9, ar / 1e9, ar / pp, plain / 1e9);
  }
  return 0;
}
