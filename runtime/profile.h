#pragma once
/// The kernel profiler. A program compiled with profiling on brackets each entry function with
/// stag_profile_enter/leave(function index) and each kernel call with stag_profile_begin/end(
/// kernel id), where kernel ids count through the manifest's functions in order (the first
/// kernel of the second function follows the last of the first). The calls go to the active
/// Profiler, which accumulates time per kernel and per function on a steady clock; without one
/// they return at once.
///
/// Entry functions are called from one thread at a time, and each kernel call is timed as a
/// whole around its stag_parallel_for, so the counters need no locking.

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/model.h"

extern "C" {
void stag_profile_enter(int64_t function);
void stag_profile_leave(int64_t function);
void stag_profile_begin(int64_t kernel);
void stag_profile_end(int64_t kernel);
}

namespace stag::rt {

class Profiler {
 public:
  /// Profiles the functions of `m` named in `functions` (others, e.g. init, are not counted),
  /// and becomes the active profiler until destroyed. Throws Error if another one is active,
  /// or if the manifest has no kernel table.
  Profiler(const Manifest& m, const std::vector<std::string>& functions);
  ~Profiler();
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  /// The perf-report-like tables: per profiled function that ran, its time per call, then its
  /// kernels by total time (the `top` largest, and one line for the rest) with calls, total ms,
  /// share of the function's time, µs per call, flops per call, GFLOP/s and GB/s.
  std::string report(int top = 25) const;
  /// The same counters as Chrome trace JSON (chrome://tracing, ui.perfetto.dev): the last call
  /// of each profiled function as a timeline of its kernels, one track per function, each
  /// event carrying its kernel's totals over the whole run.
  std::string trace_json() const;

  // Called by the C entry points above.
  void enter(int64_t function);
  void leave(int64_t function);
  void begin(int64_t kernel);
  void end(int64_t kernel);

 private:
  struct KernelRow {
    const KernelSpec* spec;
    int function;
    int64_t calls = 0;
    int64_t total_ns = 0;
    int64_t last_start_ns = -1, last_ns = 0;  ///< the latest call, for the trace
  };
  struct FunctionRow {
    const FunctionSpec* spec;
    bool profiled = false;
    int64_t calls = 0;
    int64_t total_ns = 0;
    int64_t last_start_ns = -1, last_ns = 0;
  };

  Manifest manifest_;  ///< a copy: the rows point into it
  std::vector<KernelRow> kernels_;
  std::vector<FunctionRow> functions_;
  int64_t origin_ns_ = 0;  ///< the clock when profiling began; trace times count from it
  int64_t function_start_ns_ = 0, kernel_start_ns_ = 0;
};

}  // namespace stag::rt
