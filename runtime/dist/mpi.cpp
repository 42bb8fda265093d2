// rt::Collective over MPI: the averaged gradients (a ring all-reduce, ring.h, or on one machine
// through shared memory, shared.h, for buffers that fit its slots), rank 0's decisions
// (a broadcast) and the replica hashes (an all-gather), each non-blocking and waited for with a
// deadline, since a blocking MPI call waits forever for a process that stopped answering.

#include <mpi.h>
#ifdef STAG_SANITIZED
#include <sanitizer/lsan_interface.h>
#endif

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
#include "runtime/dist/ring.h"
#include "runtime/dist/shared.h"
#include "runtime/error.h"

namespace stag::dist {

namespace {

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// Polls `done` until it says so or `timeout` seconds pass; then ends the job. Polling drives
// MPI's progress: a large exchange takes many messages, each moved on inside an MPI call, so a
// sleep between polls would stretch every one (4 MB ran 9x slower than MPI_Allreduce with 200 us
// sleeps). It spins for 10 ms (a step's all-reduce takes microseconds to milliseconds; on a busy
// machine each yield hands the core to another process for a time slice, as Open MPI's own
// blocking calls do not), then yields the core between polls up to a second, then sleeps, to
// leave the core to a rank 0 busy validating.
template <class Done>
void wait_until(Done done, double timeout, const char* what) {
  using Clock = std::chrono::steady_clock;
  auto start = Clock::now();
  while (!done()) {
    double waited = std::chrono::duration<double>(Clock::now() - start).count();
    if (waited > timeout) {
      fmt::print(stderr, "stag: error: rank {}: no answer from the other processes for {:.0f} s during {} (a process died "
                         "or stopped answering; --dist-timeout sets the limit); ending the job\n", world_rank(), waited, what);
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (waited > 1.0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    else if (waited > 0.01) std::this_thread::yield();
  }
}

void wait_for(MPI_Request& req, double timeout, const char* what) {
  wait_until([&req] {
    int done = 0;
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    return done != 0;
  }, timeout, what);
}

// The tags of the rings: one pair (reduce-scatter, all-gather) an exchange in flight.
int ring_tag(int id) { return 2 * (id + 1); }

}  // namespace

// The means start_average began and finish_average has not ended, by id (average's is -1), each
// id's scratch for the ring, and the shared memory when every process is on this machine.
struct Transport {
  std::map<int, std::unique_ptr<Averaging>> pending;
  std::map<int, std::vector<float>> scratch;
  std::unique_ptr<NodeMemory> node;
};

namespace {

// Moves every pending mean on: Open MPI moves messages only inside MPI calls, so each split
// point of the backward drives the buckets already under way.
void progress(Transport& t) {
  for (auto& [id, mean] : t.pending) mean->advance();
}

void start_average(Transport& t, int id, std::span<float> values) {
  progress(t);
  if (t.pending.contains(id)) throw rt::Error(fmt::format("bucket {} started twice", id));
  int slot = t.node ? t.node->slot(id, values.size()) : -1;
  if (slot >= 0) t.pending[id] = std::make_unique<SharedAverage>(values, *t.node, slot);
  else t.pending[id] = std::make_unique<RingAverage>(values, ring_tag(id), t.scratch[id]);
}

void finish_average(Transport& t, int id, double timeout, const char* what) {
  auto it = t.pending.find(id);
  if (it == t.pending.end()) return;
  Averaging& mean = *it->second;
  wait_until([&] {
    progress(t);  // the later buckets travel too
    return mean.advance();
  }, timeout, what);
  t.pending.erase(it);
}

void average(Transport& t, std::span<float> values, double timeout) {
  start_average(t, -1, values);
  finish_average(t, -1, timeout, "the gradients' all-reduce");
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

Session::Session(double timeout_seconds, bool node_memory) : timeout_(timeout_seconds) {
  int provided = 0;
  // Only the main thread calls MPI; the data loader's and the kernels' threads never do.
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &collective_.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &collective_.ranks);
  int ranks = collective_.ranks;
  double t = timeout_;
  transport_ = std::make_shared<Transport>();
  if (node_memory) transport_->node = NodeMemory::open();
  auto tr = transport_;
  collective_.average = [tr, t](std::span<float> v) { average(*tr, v, t); };
  collective_.broadcast = [t](std::string& text) { broadcast(text, t); };
  collective_.gather = [ranks, t](uint64_t v) { return gather(v, ranks, t); };
  collective_.start_average = [tr](int id, std::span<float> v) { start_average(*tr, id, v); };
  collective_.finish_average = [tr, t](int id) { finish_average(*tr, id, t, "a bucket of gradients' all-reduce"); };
}

// Under the sanitizers the leak check runs before MPI_Finalize, when stag has freed its own memory
// and Open MPI's is still reachable: the finalize unloads Open MPI's components (dlclose), whose
// globals held the last pointers to memory Open MPI never frees, and LeakSanitizer would report
// all of it with stacks in unloaded modules that no suppression can name. What Open MPI loses
// before this point is suppressed by library in tests/cli/lsan.supp.
Session::~Session() {
#ifdef STAG_SANITIZED
  __lsan_do_leak_check();
#endif
  transport_->node.reset();  // frees the shared window, a collective call, while MPI lives
  MPI_Finalize();
}

void Session::barrier() const {
  MPI_Request req;
  MPI_Ibarrier(MPI_COMM_WORLD, &req);
  wait_for(req, timeout_, "the processes' last barrier");
}

void Session::abort(int code) const {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; this says so to the compiler
}

}  // namespace stag::dist
