// The profiling flags `stag run`, `stag train` and `stag step` share.

#include <fmt/format.h>

#include "runtime/profile.h"
#include "tools/cli.h"

namespace stag::cli {

void ProfileArgs::add_to(CLI::App& app) {
  app.add_flag("--profile", on, "Time every kernel and print a table per function: share of the time, GFLOP/s, GB/s");
  app.add_option("--profile-out", out, "Write the profile as Chrome trace JSON (chrome://tracing, ui.perfetto.dev)");
  app.add_option("--profile-top", top, "Kernels listed per function (the rest are summed on one line)")
      ->check(CLI::Range(1, 1000000));
}

void ProfileArgs::finish(const rt::Profiler& profiler) const {
  if (on) fmt::print("{}", profiler.report(top));
  if (!out.empty()) {
    write_output(out, profiler.trace_json());
    fmt::print("wrote the profile trace to {}\n", out);
  }
}

}  // namespace stag::cli
