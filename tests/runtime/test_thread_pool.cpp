// The thread pool: coverage, static partitioning, nesting, exceptions, resizing, idle CPU.
#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "runtime/error.h"
#include "runtime/thread_pool.h"

using namespace stag::rt;
using Catch::Matchers::Contains;

namespace {

struct Record {
  int64_t begin;
  std::vector<std::atomic<int>> hits;
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> chunks;
  explicit Record(int64_t b, int64_t n) : begin(b), hits(static_cast<size_t>(n)) {}
};

void record_body(void* ctx, int64_t lo, int64_t hi) {
  auto* r = static_cast<Record*>(ctx);
  for (int64_t i = lo; i < hi; ++i) r->hits[static_cast<size_t>(i - r->begin)].fetch_add(1);
  std::lock_guard lk(r->mu);
  r->chunks.emplace_back(lo, hi);
}

double cpu_seconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// Restores the default thread count when a test ends.
struct ThreadsGuard {
  ~ThreadsGuard() { stag_set_num_threads(0); }
};

}  // namespace

TEST_CASE("chunk formula", "[thread_pool]") {
  CHECK(parallel_num_chunks(0, 1, 4) == 0);
  CHECK(parallel_num_chunks(10, 1, 4) == 4);
  CHECK(parallel_num_chunks(10, 10, 4) == 1);
  CHECK(parallel_num_chunks(11, 10, 4) == 2);
  CHECK(parallel_num_chunks(10, 0, 4) == 4);
  CHECK(parallel_num_chunks(10, 3, 1) == 1);
  CHECK(parallel_chunk(0, 10, 4, 0) == std::pair<int64_t, int64_t>(0, 3));
  CHECK(parallel_chunk(0, 10, 4, 1) == std::pair<int64_t, int64_t>(3, 6));
  CHECK(parallel_chunk(0, 10, 4, 2) == std::pair<int64_t, int64_t>(6, 8));
  CHECK(parallel_chunk(0, 10, 4, 3) == std::pair<int64_t, int64_t>(8, 10));
}

TEST_CASE("every index is covered exactly once, in the documented chunks", "[thread_pool]") {
  ThreadsGuard g;
  for (int threads : {1, 2, 3, 4, 7}) {
    stag_set_num_threads(threads);
    REQUIRE(stag_get_num_threads() == threads);
    for (int64_t begin : {int64_t{0}, int64_t{-5}, int64_t{1} << 40}) {
      for (int64_t n : {0, 1, 2, 3, 7, 64, 1000, 1001}) {
        for (int64_t grain : {-1, 0, 1, 2, 5, 64, 1000, 5000}) {
          INFO("threads " << threads << " begin " << begin << " n " << n << " grain " << grain);
          Record r(begin, n);
          stag_parallel_for(begin, begin + n, grain, record_body, &r);
          for (auto& h : r.hits) REQUIRE(h.load() == 1);
          int64_t k = parallel_num_chunks(n, grain, threads);
          CHECK(stag_parallel_num_chunks(n, grain) == k);
          std::sort(r.chunks.begin(), r.chunks.end());
          REQUIRE(static_cast<int64_t>(r.chunks.size()) == k);
          for (int64_t i = 0; i < k; ++i) CHECK(r.chunks[i] == parallel_chunk(begin, begin + n, k, i));
        }
      }
    }
  }
}

TEST_CASE("reversed ranges do nothing", "[thread_pool]") {
  Record r(0, 1);
  stag_parallel_for(5, 3, 1, record_body, &r);
  CHECK(r.chunks.empty());
}

TEST_CASE("nested calls run serially with the same chunks", "[thread_pool]") {
  ThreadsGuard g;
  stag_set_num_threads(4);
  std::vector<std::atomic<int>> hits(16 * 100);
  std::atomic<int> inner_chunks{0};
  std::atomic<int> multi_thread_inner{0};  // Catch assertions are not thread-safe: count instead
  parallel_for(0, 16, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      std::set<std::thread::id> ids;
      parallel_for(0, 100, 1, [&](int64_t a, int64_t b) {
        ids.insert(std::this_thread::get_id());  // serial: no data race on ids
        ++inner_chunks;
        for (int64_t j = a; j < b; ++j) hits[static_cast<size_t>(i * 100 + j)]++;
      });
      if (ids.size() != 1) ++multi_thread_inner;
    }
  });
  for (auto& h : hits) REQUIRE(h.load() == 1);
  CHECK(inner_chunks.load() == 16 * 4);
  CHECK(multi_thread_inner.load() == 0);
}

TEST_CASE("exceptions from a body reach the caller", "[thread_pool]") {
  ThreadsGuard g;
  for (int threads : {1, 2, 4}) {
    stag_set_num_threads(threads);
    std::atomic<int> ran{0};
    auto body = [&](int64_t lo, int64_t hi) {
      ++ran;
      if (lo <= 37 && 37 < hi) throw std::runtime_error("index 37 is bad");
    };
    CHECK_THROWS_WITH(parallel_for(0, 1000, 1, body), "index 37 is bad");
    CHECK_THROWS_WITH(parallel_for(0, 50, 100, body), "index 37 is bad");  // inline path
    CHECK_THROWS_AS(parallel_for(0, 10, 1, [](int64_t, int64_t) { throw Error("runtime error"); }), Error);
    // The pool still works afterwards.
    std::atomic<int64_t> sum{0};
    parallel_for(0, 1000, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) sum += i;
    });
    CHECK(sum.load() == 999 * 1000 / 2);
  }
}

TEST_CASE("set_num_threads changes the parallelism", "[thread_pool]") {
  ThreadsGuard g;
  stag_set_num_threads(0);
  int def = stag_get_num_threads();
  CHECK(def >= 1);
  CHECK(def <= static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  for (int threads : {3, 1, 5, 2}) {
    stag_set_num_threads(threads);
    CHECK(stag_get_num_threads() == threads);
    std::mutex mu;
    std::set<std::thread::id> ids;
    int chunks = 0;
    parallel_for(0, 1000, 1, [&](int64_t, int64_t) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      std::lock_guard lk(mu);
      ids.insert(std::this_thread::get_id());
      ++chunks;
    });
    CHECK(chunks == threads);
    CHECK(static_cast<int>(ids.size()) <= threads);
  }
  stag_set_num_threads(-3);
  CHECK(stag_get_num_threads() == def);
  stag_set_num_threads(2);
  CHECK_THROWS_WITH(parallel_for(0, 10, 1, [](int64_t, int64_t) { stag_set_num_threads(1); }),
                    Contains("from inside a parallel body"));
  CHECK(stag_get_num_threads() == 2);
}

TEST_CASE("per-chunk reductions are bit-for-bit reproducible", "[thread_pool]") {
  ThreadsGuard g;
  stag_set_num_threads(3);
  std::vector<float> x(100003);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 1.0f / static_cast<float>(i + 1);
  auto reduce = [&] {
    int64_t n = static_cast<int64_t>(x.size());
    int64_t k = stag_parallel_num_chunks(n, 1000);
    std::vector<float> partial(static_cast<size_t>(k));
    parallel_for(0, n, 1000, [&](int64_t lo, int64_t hi) {
      // Chunk index from the documented boundaries.
      int64_t c = 0;
      while (parallel_chunk(0, n, k, c).first != lo) ++c;
      float s = 0;
      for (int64_t i = lo; i < hi; ++i) s += x[static_cast<size_t>(i)];
      partial[static_cast<size_t>(c)] = s;
    });
    float total = 0;
    for (float p : partial) total += p;
    return total;
  };
  float first = reduce();
  for (int i = 0; i < 50; ++i) REQUIRE(reduce() == first);
}

TEST_CASE("concurrent callers from several threads", "[thread_pool]") {
  ThreadsGuard g;
  stag_set_num_threads(3);
  auto work = [] {
    for (int rep = 0; rep < 200; ++rep) {
      std::vector<std::atomic<int>> hits(257);
      parallel_for(0, 257, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) hits[static_cast<size_t>(i)]++;
      });
      for (auto& h : hits)
        if (h.load() != 1) return false;
    }
    return true;
  };
  bool ok1 = false, ok2 = false;
  std::thread a([&] { ok1 = work(); });
  std::thread b([&] { ok2 = work(); });
  a.join();
  b.join();
  CHECK(ok1);
  CHECK(ok2);
}

TEST_CASE("an idle pool uses no CPU", "[thread_pool]") {
  ThreadsGuard g;
  stag_set_num_threads(4);  // more workers than cores: any spinning would show
  std::atomic<int64_t> sum{0};
  parallel_for(0, 1000, 1, [&](int64_t lo, int64_t hi) { sum += hi - lo; });
  REQUIRE(sum.load() == 1000);
  double before = cpu_seconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  double used = cpu_seconds() - before;
  INFO("CPU seconds while idle: " << used);
  CHECK(used < 0.05);
}

TEST_CASE("workers really take chunks", "[thread_pool]") {
  ThreadsGuard g;
  stag_set_num_threads(4);
  std::mutex mu;
  std::set<std::thread::id> ids;
  parallel_for(0, 4, 1, [&](int64_t, int64_t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::lock_guard lk(mu);
    ids.insert(std::this_thread::get_id());
  });
  // Sleeping bodies overlap even on one core; a worker would need 150 ms to wake to miss them all.
  CHECK(ids.size() >= 2);
}
