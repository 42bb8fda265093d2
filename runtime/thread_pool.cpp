// The process-wide thread pool behind stag_parallel_for.
#include "runtime/thread_pool.h"

#include <fmt/format.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "runtime/error.h"

namespace stag::rt {

namespace {

// True on pool workers always, and on a caller while it runs a parallel_for: a parallel_for
// started there runs serially instead of waiting for workers that are busy running its parent.
thread_local bool t_in_parallel = false;

struct InParallel {
  bool saved = t_in_parallel;
  InParallel() { t_in_parallel = true; }
  ~InParallel() { t_in_parallel = saved; }
};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

int default_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

struct Job {
  stag_parallel_body body;
  void* ctx;
  int64_t begin, end, k;
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex err_mu;
  std::exception_ptr err;
};

// Chunks are claimed dynamically (whoever is free takes the next index) but their boundaries are
// fixed by the job, so which thread runs a chunk never changes what it computes.
void run_chunks(Job& job) {
  for (;;) {
    int64_t i = job.next.fetch_add(1, std::memory_order_relaxed);
    if (i >= job.k) return;
    if (job.failed.load(std::memory_order_relaxed)) continue;
    auto [lo, hi] = parallel_chunk(job.begin, job.end, job.k, i);
    try {
      job.body(job.ctx, lo, hi);
    } catch (...) {
      std::lock_guard lk(job.err_mu);
      if (!job.err) job.err = std::current_exception();
      job.failed.store(true, std::memory_order_relaxed);
    }
  }
}

class Pool {
 public:
  Pool() : threads_(default_threads()) {}

  int num_threads() const { return threads_.load(std::memory_order_relaxed); }

  // Serialises whole parallel_for calls from different threads and resizes.
  std::mutex submit_mu;

  // Caller holds submit_mu.
  void set_num_threads(int n) {
    stop_workers();
    threads_.store(n <= 0 ? default_threads() : n, std::memory_order_relaxed);
  }

  // Caller holds submit_mu.
  void run(Job& job) {
    ensure_workers();
    {
      std::lock_guard lk(mu_);
      job_ = &job;
      ++gen_;
      gen_atomic_.store(gen_, std::memory_order_release);
    }
    cv_work_.notify_all();
    run_chunks(job);
    // The workers' last chunks end about when ours do: poll before sleeping, since waking a
    // sleeping thread costs tens of microseconds on a virtual machine (more than many kernels).
    for (int s = 0; s < kSpin && active_.load(std::memory_order_acquire) != 0; ++s) cpu_relax();
    {
      // A worker that registered (active_ > 0) may still be in a chunk; one that has not yet
      // registered will find job_ cleared and skip this job, so `job` may die after this block.
      std::unique_lock lk(mu_);
      cv_done_.wait(lk, [&] { return active_ == 0; });
      job_ = nullptr;
    }
    if (job.err) std::rethrow_exception(job.err);
  }

 private:
  // About 200 microseconds of polling before sleeping (a pause takes 10-20 ns): back-to-back
  // kernels of one step, with serial ones between them, then reuse awake workers, while an idle
  // pool sleeps almost at once.
  static constexpr int kSpin = 10000;

  void ensure_workers() {
    size_t want = static_cast<size_t>(num_threads() - 1);
    if (workers_.size() == want) return;
    stop_workers();
    uint64_t start_gen;
    {
      std::lock_guard lk(mu_);
      start_gen = gen_;
    }
    try {
      for (size_t i = 0; i < want; ++i) workers_.emplace_back([this, start_gen] { loop(start_gen); });
    } catch (const std::system_error& e) {
      // Fewer workers only means fewer hands: the caller still runs every chunk not taken.
      if (workers_.empty())
        throw Error(fmt::format("thread pool: cannot start worker threads: {}", e.what()));
    }
  }

  void stop_workers() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_work_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    std::lock_guard lk(mu_);
    stop_ = false;
  }

  void loop(uint64_t seen) {
    t_in_parallel = true;
    for (;;) {
      for (int s = 0; s < kSpin && gen_atomic_.load(std::memory_order_acquire) == seen; ++s)
        cpu_relax();
      std::unique_lock lk(mu_);
      cv_work_.wait(lk, [&] { return stop_ || gen_ != seen; });
      if (stop_) return;
      seen = gen_;
      Job* job = job_;
      if (job == nullptr) continue;
      active_.fetch_add(1, std::memory_order_relaxed);
      lk.unlock();
      run_chunks(*job);
      // The caller polls active_ before it waits; notify under the lock so it cannot miss it.
      if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        lk.lock();
        cv_done_.notify_one();
      }
    }
  }

  std::atomic<int> threads_;
  std::vector<std::thread> workers_;  // guarded by submit_mu
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  Job* job_ = nullptr;  // the running job, or null
  uint64_t gen_ = 0;    // bumped once per published job
  std::atomic<uint64_t> gen_atomic_{0};  // gen_, for spinning without the lock
  std::atomic<int> active_{0};  // workers inside the current job (joins under mu_)
  bool stop_ = false;
};

// Never destroyed: workers sleeping in it at exit are harmless, while destroying it during static
// destruction could race with late users.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

int64_t parallel_num_chunks(int64_t n, int64_t grain, int threads) {
  if (n <= 0) return 0;
  grain = std::max<int64_t>(grain, 1);
  int64_t by_grain = n / grain + (n % grain != 0);
  return std::max<int64_t>(1, std::min<int64_t>(std::max(threads, 1), by_grain));
}

std::pair<int64_t, int64_t> parallel_chunk(int64_t begin, int64_t end, int64_t k, int64_t i) {
  int64_t n = end - begin, q = n / k, r = n % k;
  return {begin + i * q + std::min(i, r), begin + (i + 1) * q + std::min(i + 1, r)};
}

}  // namespace stag::rt

using namespace stag::rt;

extern "C" void stag_parallel_for(int64_t begin, int64_t end, int64_t grain,
                                  stag_parallel_body body, void* ctx) {
  if (end <= begin) return;
  if (body == nullptr) throw Error("stag_parallel_for: null body");
  int64_t n;
  if (__builtin_sub_overflow(end, begin, &n))
    throw Error(fmt::format("stag_parallel_for: range [{}, {}) is too large", begin, end));
  int64_t k = parallel_num_chunks(n, grain, pool().num_threads());
  if (k == 1) {
    body(ctx, begin, end);
    return;
  }
  if (t_in_parallel) {
    for (int64_t i = 0; i < k; ++i) {
      auto [lo, hi] = parallel_chunk(begin, end, k, i);
      body(ctx, lo, hi);
    }
    return;
  }
  // Another thread's call (say a data loader's) may hold the pool; wait for it rather than run
  // more threads than asked for.
  std::lock_guard submit(pool().submit_mu);
  Job job;
  job.body = body;
  job.ctx = ctx;
  job.begin = begin;
  job.end = end;
  job.k = k;
  InParallel guard;
  pool().run(job);
}

extern "C" void stag_set_num_threads(int n) {
  if (t_in_parallel)
    throw Error("stag_set_num_threads: cannot change the thread count from inside a parallel body");
  std::lock_guard submit(pool().submit_mu);
  pool().set_num_threads(n);
}

extern "C" int stag_get_num_threads(void) { return pool().num_threads(); }

extern "C" int64_t stag_parallel_num_chunks(int64_t n, int64_t grain) {
  return parallel_num_chunks(n, grain, pool().num_threads());
}
