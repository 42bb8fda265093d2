#pragma once
/// The optimizer: a pipeline of named passes over the graph IR, lowering (with fusion) and
/// passes over the kernel IR, with the dumps, checks, counters and timers of LLVM's pass
/// manager. Every command that compiles goes through `compile_program`.

#include <cstdint>
#include <iosfwd>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "compiler/lower/kernel_ir.h"
#include "ir/analysis.h"
#include "ir/graph.h"

namespace stag {

/// What a pass did, counted by what it names ("nodes removed": 12). A pass changed the IR
/// exactly when it counted something that changes it.
struct PassCounters {
  std::map<std::string, int64_t> counts;
  void add(const std::string& what, int64_t n = 1) { counts[what] += n; }
};

using GraphPassFn = bool (*)(Graph&, PassCounters&);
using KernelPassFn = bool (*)(kir::Program&, PassCounters&);

enum class PassLevel { Graph, Lowering, Kernels };

struct PassInfo {
  std::string name;
  std::string summary;
  PassLevel level;
  GraphPassFn graph = nullptr;     ///< Graph passes
  KernelPassFn kernels = nullptr;  ///< Kernel passes
};

/// Every pass, in the order of the default pipeline's first use.
const std::vector<PassInfo>& all_passes();
/// The pipeline every command runs unless `--passes` says otherwise.
const std::vector<std::string>& default_pipeline();

struct PassOptions {
  std::optional<std::vector<std::string>> passes;  ///< none: the default pipeline
  bool print_after_all = false;
  bool print_changed = false;  ///< with a print option: only passes that changed something
  bool verify_each = false;
  bool stats = false;
  bool time = false;
  std::vector<std::string> print_after, print_before;
  /// "f32" or "bf16" (--precision): set as every graph's `precision` attribute, which
  /// autocast-bf16 reads; empty: the graphs' own.
  std::string precision;
  /// --check-numerics: lowering adds a finiteness check after every kernel (LowerOptions).
  bool check_numerics = false;
  /// --scan-unroll N: every scan's body N steps a loop iteration (unroll-scan), set as every
  /// graph's `scan_unroll` attribute; 0: the graphs' own (none: 1).
  int64_t scan_unroll = 0;
};

/// A bad pipeline (unknown pass, graph pass after lowering) or a pass that broke the IR.
struct PassError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Checks the names and order of a pipeline; throws PassError naming the problem.
void check_pipeline(const PassOptions& options);

/// Runs the graph passes on copies of the functions' graphs, lowers them into one program
/// (fused when the pipeline has `fuse`) and runs the kernel passes. Dumps, statistics and
/// timings go to `log`. The optimized graphs are returned through `optimized` when asked, set
/// before lowering (so also when lowering throws NoLowering).
kir::Program compile_program(const std::vector<std::pair<std::string, const Graph*>>& functions, const PassOptions& options,
                             std::ostream& log, std::vector<std::unique_ptr<Graph>>* optimized = nullptr);

// The passes (one a file).
bool autocast_bf16(Graph& g, PassCounters& c);
bool simplify(Graph& g, PassCounters& c);
bool fold_transpose(Graph& g, PassCounters& c);
bool const_fold(Graph& g, PassCounters& c);
bool cse(Graph& g, PassCounters& c);
bool concat_pads(Graph& g, PassCounters& c);
bool merge_matmuls(Graph& g, PassCounters& c);
bool dce(Graph& g, PassCounters& c);
bool merge_scans(Graph& g, PassCounters& c);
bool hoist_scan(Graph& g, PassCounters& c);
bool unroll_scan(Graph& g, PassCounters& c);
bool plan_memory(kir::Program& p, PassCounters& c);
bool bucket_gradients(kir::Program& p, PassCounters& c);

}  // namespace stag
