// rt::Collective over MPI: the averaged gradients (an all-reduce), rank 0's decisions (a
// broadcast) and the replica hashes (an all-gather), each non-blocking and waited for with a
// deadline, since a blocking MPI call waits forever for a process that stopped answering.

#include <mpi.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <map>
#include <memory>
#include <thread>

#include "runtime/dist/dist.h"
#include "runtime/error.h"

namespace stag::dist {

namespace {

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// Polls `req` until it completes or `timeout` seconds pass; then ends the job. Polling drives
// MPI's progress: a non-blocking all-reduce of megabytes takes many rounds, each posted by a test,
// so a sleep between tests would stretch every round (4 MB ran 9x slower than MPI_Allreduce
// with 200 us sleeps). It yields the core between tests for a second (a step's all-reduce takes
// microseconds to milliseconds), then sleeps, to leave the core to a rank 0 busy validating.
void wait_for(MPI_Request& req, double timeout, const char* what) {
  using Clock = std::chrono::steady_clock;
  auto start = Clock::now();
  for (int done = 0;;) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (done) return;
    double waited = std::chrono::duration<double>(Clock::now() - start).count();
    if (waited > timeout) {
      fmt::print(stderr, "stag: error: rank {}: no answer from the other processes for {:.0f} s during {} (a process died "
                         "or stopped answering; --dist-timeout sets the limit); ending the job\n", world_rank(), waited, what);
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (waited > 1.0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    else std::this_thread::yield();
  }
}

// In pieces of at most 2^30 elements: MPI counts are int.
void average(std::span<float> values, int ranks, double timeout) {
  constexpr size_t kPiece = size_t{1} << 30;
  for (size_t at = 0; at < values.size(); at += kPiece) {
    int n = static_cast<int>(std::min(kPiece, values.size() - at));
    MPI_Request req;
    MPI_Iallreduce(MPI_IN_PLACE, values.data() + at, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
    wait_for(req, timeout, "the gradients' all-reduce");
  }
  float scale = 1.0f / static_cast<float>(ranks);
  for (float& v : values) v *= scale;
}

// The sums start_sum began and finish_sum has not ended, by id: each in pieces of at most 2^30
// elements (MPI counts are int).
using Pending = std::map<int, std::vector<MPI_Request>>;

// Tests every pending sum once: Open MPI moves a non-blocking collective on only inside MPI
// calls, so each split point of the backward drives the buckets already under way.
void progress(Pending& pending) {
  int done = 0;
  for (auto& [id, reqs] : pending)
    for (MPI_Request& r : reqs) MPI_Test(&r, &done, MPI_STATUS_IGNORE);
}

// Not in place: Open MPI's non-blocking all-reduce then may take its ring (below).
void start_sum(Pending& pending, int id, std::span<const float> values, std::span<float> sum) {
  constexpr size_t kPiece = size_t{1} << 30;
  progress(pending);
  std::vector<MPI_Request>& reqs = pending[id];
  for (size_t at = 0; at < values.size(); at += kPiece) {
    int n = static_cast<int>(std::min(kPiece, values.size() - at));
    reqs.emplace_back();
    MPI_Iallreduce(values.data() + at, sum.data() + at, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &reqs.back());
  }
}

void finish_sum(Pending& pending, int id, double timeout) {
  auto it = pending.find(id);
  if (it == pending.end()) return;
  for (MPI_Request& r : it->second) wait_for(r, timeout, "a bucket of gradients' all-reduce");
  pending.erase(it);
}

void broadcast(std::string& text, double timeout) {
  auto size = static_cast<int64_t>(text.size());
  MPI_Request req;
  MPI_Ibcast(&size, 1, MPI_INT64_T, 0, MPI_COMM_WORLD, &req);
  wait_for(req, timeout, "rank 0's broadcast of its decisions");
  text.resize(static_cast<size_t>(size));
  MPI_Ibcast(text.data(), static_cast<int>(size), MPI_CHAR, 0, MPI_COMM_WORLD, &req);
  wait_for(req, timeout, "rank 0's broadcast of its decisions");
}

std::vector<uint64_t> gather(uint64_t value, int ranks, double timeout) {
  std::vector<uint64_t> all(static_cast<size_t>(ranks));
  MPI_Request req;
  MPI_Iallgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD, &req);
  wait_for(req, timeout, "the replicas' hash comparison");
  return all;
}

}  // namespace

bool available() { return true; }

Session::Session(double timeout_seconds) : timeout_(timeout_seconds) {
  int provided = 0;
  // Open MPI's non-blocking all-reduce (libnbc) sends everything to one rank and back under 4
  // processes; its ring (a reduce-scatter, then an all-gather) moves half as much through each
  // link: 1.5-2x the bandwidth of 2 processes on loopback (tools/bench/mpi). A user's choice stays.
  setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0);
  // Only the main thread calls MPI; the data loader's and the kernels' threads never do.
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &collective_.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &collective_.ranks);
  int ranks = collective_.ranks;
  double t = timeout_;
  collective_.average = [ranks, t](std::span<float> v) { average(v, ranks, t); };
  collective_.broadcast = [t](std::string& text) { broadcast(text, t); };
  collective_.gather = [ranks, t](uint64_t v) { return gather(v, ranks, t); };
  auto pending = std::make_shared<Pending>();
  collective_.start_sum = [pending](int id, std::span<const float> v, std::span<float> sum) { start_sum(*pending, id, v, sum); };
  collective_.finish_sum = [pending, t](int id) { finish_sum(*pending, id, t); };
}

Session::~Session() { MPI_Finalize(); }

void Session::abort(int code) const {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; this says so to the compiler
}

}  // namespace stag::dist
