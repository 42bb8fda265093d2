// The bandwidth of stag's gradient all-reduce against a plain MPI ping-pong, on whatever links
// mpirun gives (loopback on one machine):
//   mpirun -np 2 build/tools/stag_allreduce_bench [MAX_MB] [REPS] [MIN_KB]
// (sizes MIN_KB, 4x that, ... up to MAX_MB; defaults 16 KB to 64 MB).
// Ping-pong: rank 0 sends B bytes to rank 1, which sends them back; bandwidth B / (round trip / 2).
// All-reduce: one bucket of B bytes through BucketExchange, as a step's split points drive it
// (the gradient written into the exchange's block, the in-place ring with its 1/N scale); its bus
// bandwidth is 2(N-1)/N * B / time, the rate each link carries in a ring (NCCL's busbw). Open
// MPI's blocking MPI_Allreduce of the same buffer is printed beside it. The three alternate
// repetition by repetition, so that a machine's load weighs on them alike, and each reads the
// median of its repetitions; the ratio is of the medians, and beside it the ratio of the fastest
// repetitions (on a shared machine, the closest to what each does undisturbed).
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

// The seconds `body` takes, every rank starting together, as the slowest rank saw it: a
// collective ends when every rank is done.
template <class F>
double seconds(F body) {
  MPI_Barrier(MPI_COMM_WORLD);
  auto t0 = Clock::now();
  body();
  double t = std::chrono::duration<double>(Clock::now() - t0).count(), slowest = 0;
  MPI_Allreduce(&t, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return slowest;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

void ping_pong(std::vector<char>& buf, int rank) {
  int n = static_cast<int>(buf.size());
  if (rank == 0) {
    MPI_Send(buf.data(), n, MPI_CHAR, 1, 0, MPI_COMM_WORLD);
    MPI_Recv(buf.data(), n, MPI_CHAR, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  } else if (rank == 1) {
    MPI_Recv(buf.data(), n, MPI_CHAR, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Send(buf.data(), n, MPI_CHAR, 0, 0, MPI_COMM_WORLD);
  }
}

struct Row {
  double ping_pong, stag, plain;  ///< GB/s from the median times
  double best_ratio;              ///< stag's bus bandwidth over the ping-pong's, from the fastest times
};

// One size, the three measurements alternating `reps` times.
Row measure(const stag::rt::Collective& dp, size_t bytes, int reps) {
  std::vector<char> msg(bytes, 1);
  std::vector<float> plain(bytes / sizeof(float), 1.0f);
  stag::rt::FunctionSpec grads{.name = "gradients", .inputs = {}, .outputs = {{.name = "grad.w", .dtype = stag::rt::DType::f32, .shape = {static_cast<int64_t>(plain.size())}, .trainable = false}}, .kernels = {}};
  stag::rt::BucketExchange exchange(dp, {{"gradients", {"grad.w"}}}, {grads});
  std::vector<stag::rt::Tensor> out = exchange.outputs(grads);
  std::fill_n(out[0].values<float>().data(), plain.size(), 1.0f);
  float* buffers[] = {out[0].values<float>().data()};
  int64_t counts[] = {static_cast<int64_t>(plain.size())};
  std::vector<double> pp, ar, pl;
  for (int r = 0; r < reps; ++r) {
    pp.push_back(seconds([&] { ping_pong(msg, dp.rank); }) / 2);
    ar.push_back(seconds([&] {
      exchange.start(0, buffers, counts);
      exchange.wait(0, buffers, counts);
    }));
    pl.push_back(seconds([&] { MPI_Allreduce(MPI_IN_PLACE, plain.data(), static_cast<int>(plain.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); }));
  }
  double bus = 2.0 * (dp.ranks - 1) / dp.ranks * static_cast<double>(bytes);
  double best = bus / *std::min_element(ar.begin(), ar.end()) / (static_cast<double>(bytes) / *std::min_element(pp.begin(), pp.end()));
  return {static_cast<double>(bytes) / median(pp) / 1e9, bus / median(ar) / 1e9, bus / median(pl) / 1e9, best};
}

}  // namespace

int main(int argc, char** argv) {
  double max_mb = argc > 1 ? std::atof(argv[1]) : 64;
  int reps = argc > 2 ? std::atoi(argv[2]) : 0;
  double min_kb = argc > 3 ? std::atof(argv[3]) : 16;
  stag::dist::Session session(60);
  const stag::rt::Collective& dp = session.collective();
  if (dp.ranks < 2) {
    fmt::print(stderr, "run under mpirun -np 2 (or more)\n");
    return 2;
  }
  if (dp.rank == 0)
    fmt::print("{:>10}  {:>14}  {:>20}  {:>6}  {:>14}  {:>18}\n", "bytes", "ping-pong GB/s", "stag all-reduce GB/s", "ratio", "ratio of bests", "MPI_Allreduce GB/s");
  for (auto bytes = static_cast<size_t>(min_kb * (1 << 10)); bytes <= static_cast<size_t>(max_mb * (1 << 20)); bytes *= 4) {
    Row row = measure(dp, bytes, reps > 0 ? reps : bytes < (4 << 20) ? 201 : 21);
    if (dp.rank == 0)
      fmt::print("{:>10}  {:>14.2f}  {:>20.2f}  {:>6.2f}  {:>14.2f}  {:>18.2f}\n", bytes, row.ping_pong, row.stag, row.stag / row.ping_pong,
                 row.best_ratio, row.plain);
  }
  return 0;
}
