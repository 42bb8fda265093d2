#pragma once
/// The thread pool generated code runs its loops on, behind one C entry point.
///
/// `stag_parallel_for(begin, end, grain, body, ctx)` splits [begin, end) into
/// k = min(num_threads, ceil((end - begin) / grain)) chunks and calls body(ctx, lo, hi) once per
/// chunk. Chunk i (0-based) is [begin + i*q + min(i, r), begin + (i+1)*q + min(i+1, r)) with
/// q = n / k and r = n % k, n = end - begin: the boundaries depend only on (begin, end, grain,
/// num_threads), never on timing, so a reduction that keeps one partial result per chunk and
/// combines them in chunk order is bit-for-bit reproducible at a given thread count.
///
/// - The calling thread runs chunks too; k == 1 (a range no longer than grain, or one thread)
///   calls body inline with no synchronisation at all.
/// - A call made from inside a body (nested), or while another thread's call occupies the pool,
///   runs its k chunks serially on the calling thread, in chunk order, with the same boundaries:
///   no deadlock, no oversubscription, same results.
/// - Idle workers sleep on a condition variable after a short bounded spin: an idle pool uses no
///   CPU.
/// - Exceptions: a C++ exception thrown by a body (e.g. stag::rt::Error from a runtime helper) is
///   caught on the worker, the remaining chunks are skipped, and once every started chunk has
///   finished the first exception is rethrown from stag_parallel_for in the calling thread. It
///   propagates through generated code's frames like any exception (they have unwind tables).
///
/// Workers start lazily on the first call that needs them.

#include <cstdint>
#include <type_traits>
#include <utility>

extern "C" {

/// A loop body: process indices [lo, hi) using the caller's context.
typedef void (*stag_parallel_body)(void* ctx, int64_t lo, int64_t hi);

/// Runs body over [begin, end) in parallel as described above. grain < 1 counts as 1; an empty
/// range does nothing.
void stag_parallel_for(int64_t begin, int64_t end, int64_t grain, stag_parallel_body body,
                       void* ctx);

/// Sets the number of threads (the caller included) that later calls use; n <= 0 restores the
/// default: the CPUs this process may run on. Waits for a running parallel_for to finish. Throws
/// stag::rt::Error when called from inside a parallel body.
void stag_set_num_threads(int n);

/// The current number of threads (>= 1).
int stag_get_num_threads(void);

/// The number of chunks stag_parallel_for(0, n, grain, ...) uses at the current thread count, so
/// that generated reductions can size their per-chunk partial results.
int64_t stag_parallel_num_chunks(int64_t n, int64_t grain);
}

namespace stag::rt {

/// Chunk count for n indices, a grain and a thread count (the formula above).
int64_t parallel_num_chunks(int64_t n, int64_t grain, int threads);
/// Bounds [lo, hi) of chunk i of k over [begin, end).
std::pair<int64_t, int64_t> parallel_chunk(int64_t begin, int64_t end, int64_t k, int64_t i);

/// C++ convenience over stag_parallel_for: f(lo, hi) for each chunk.
template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, F&& f) {
  stag_parallel_for(
      begin, end, grain,
      [](void* ctx, int64_t lo, int64_t hi) { (*static_cast<std::remove_reference_t<F>*>(ctx))(lo, hi); },
      const_cast<void*>(static_cast<const void*>(&f)));
}

}  // namespace stag::rt
