// The pass pipeline: runs the passes in order, with LLVM-style dumps, verification,
// counters and timers.

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ostream>

#include "compiler/lower/lower.h"
#include "compiler/passes/pass.h"
#include "ir/printer.h"
#include "ir/verifier.h"

namespace stag {

const std::vector<PassInfo>& all_passes() {
  static const std::vector<PassInfo> passes = {
      {"autocast-bf16", "matmuls and convolutions of a graph whose precision is bf16 multiply in bf16", PassLevel::Graph, autocast_bf16},
      {"simplify", "algebraic identities from a table of rewrite rules", PassLevel::Graph, simplify},
      {"fold-transpose", "transposes of the last two dims folded into matmul flags", PassLevel::Graph, fold_transpose},
      {"const-fold", "nodes of constants evaluated at compile time by the reference interpreter", PassLevel::Graph, const_fold},
      {"cse", "identical nodes on identical operands computed once", PassLevel::Graph, cse},
      {"merge-scans", "scans over the same operands whose carries agree run as one loop (a gradient's re-run of the forward)", PassLevel::Graph, merge_scans},
      {"hoist-scan", "a scan's accumulating carries summed after its loop, products of stacked steps as one product", PassLevel::Graph, hoist_scan},
      {"unroll-scan", "with --scan-unroll N, a scan's body N steps a loop iteration", PassLevel::Graph, unroll_scan},
      {"concat-pads", "a sum of zero pads placing pieces side by side along one axis turned into their concat", PassLevel::Graph, concat_pads},
      {"merge-matmuls", "a sum of matmuls, or of a batched matmul over its batch, merged into one matmul", PassLevel::Graph, merge_matmuls},
      {"dce", "nodes nothing reads removed", PassLevel::Graph, dce},
      {"fuse", "elementwise chains, broadcasts and epilogues lowered into the kernels that use them", PassLevel::Lowering},
      {"plan-memory", "temporaries placed in one arena by liveness, reusing dead space", PassLevel::Kernels, nullptr, plan_memory},
      {"bucket-gradients", "data parallelism: gradients all-reduced in buckets started during the backward, awaited by the update",
       PassLevel::Kernels, nullptr, bucket_gradients},
  };
  return passes;
}

const std::vector<std::string>& default_pipeline() {
  // merge-matmuls is left out: the products it merges read A transposed, the GEMM's slower
  // layout, so it gains nothing yet (docs/optimizer.md, Measurements). After concat-pads is
  // its place when that layout catches up.
  static const std::vector<std::string> names = {"autocast-bf16", "simplify", "fold-transpose", "const-fold", "cse", "merge-scans", "hoist-scan", "unroll-scan", "concat-pads",
                                                 "simplify",      "dce",      "fuse",           "plan-memory", "bucket-gradients"};
  return names;
}

namespace {

const PassInfo* find_pass(const std::string& name) {
  for (const auto& p : all_passes())
    if (p.name == name) return &p;
  return nullptr;
}

// A graph pass over a graph and, first, over the bodies of its loops (their inputs and outputs
// are the loop's interface, which no pass removes).
bool run_graph_pass(GraphPassFn pass, Graph& g, PassCounters& c) {
  bool changed = false;
  for (auto& n : g.nodes)
    if (n->body) changed |= run_graph_pass(pass, *n->body, c);
  return pass(g, c) || changed;
}

std::vector<std::string> pipeline_of(const PassOptions& o) { return o.passes ? *o.passes : default_pipeline(); }

bool contains(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

std::string known_passes() {
  std::vector<std::string> names;
  for (const auto& p : all_passes()) names.push_back(p.name);
  return fmt::format("{}", fmt::join(names, ", "));
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

void check_pipeline(const PassOptions& o) {
  auto names = pipeline_of(o);
  bool lowered = false;
  for (const auto& n : names) {
    const PassInfo* p = find_pass(n);
    if (!p) throw PassError(fmt::format("unknown pass '{}' (passes: {})", n, known_passes()));
    if (p->level == PassLevel::Graph && lowered)
      throw PassError(fmt::format("graph pass '{}' cannot run after lowering ('fuse' and 'plan-memory' work on kernels)", n));
    if (p->level != PassLevel::Graph) lowered = true;
  }
  for (const auto* list : {&o.print_after, &o.print_before})
    for (const auto& n : *list)
      if (!find_pass(n)) throw PassError(fmt::format("unknown pass '{}' (passes: {})", n, known_passes()));
}

kir::Program compile_program(const std::vector<std::pair<std::string, const Graph*>>& functions, const PassOptions& o,
                             std::ostream& log, std::vector<std::unique_ptr<Graph>>* optimized) {
  check_pipeline(o);
  auto names = pipeline_of(o);
  // The test suite turns the verifier on for every compile it makes.
  const char* env = std::getenv("STAG_VERIFY_EACH");
  bool verify_each = o.verify_each || (env && std::string(env) == "1");
  std::vector<std::unique_ptr<Graph>> graphs;
  for (const auto& f : functions) graphs.push_back(f.second->clone());
  if (!o.precision.empty())
    for (auto& g : graphs) g->set_attr("precision", o.precision);
  if (o.scan_unroll > 0)
    for (auto& g : graphs) g->set_attr("scan_unroll", o.scan_unroll);

  struct Stat {
    std::string pass;
    std::map<std::string, int64_t> counts;
    double seconds = 0;
  };
  std::vector<Stat> stats;
  auto wants_print = [&](const std::string& pass, bool after) {
    return after ? o.print_after_all || contains(o.print_after, pass) : contains(o.print_before, pass);
  };
  auto dump_graphs = [&](const std::string& when, const std::string& pass) {
    for (size_t i = 0; i < graphs.size(); ++i)
      fmt::print(log, "// -----// IR Dump {} {} (function {}) //----- //\n{}\n", when, pass, functions[i].first, print(*graphs[i]));
  };
  auto dump_kernels = [&](const std::string& when, const std::string& pass, const kir::Program& p) {
    fmt::print(log, "// -----// IR Dump {} {} (kernels) //----- //\n{}\n", when, pass, kir::print(p));
  };

  size_t i = 0;
  // Graph passes, each over every function.
  for (; i < names.size() && find_pass(names[i])->level == PassLevel::Graph; ++i) {
    const PassInfo& p = *find_pass(names[i]);
    if (wants_print(p.name, false)) dump_graphs("Before", p.name);
    Stat s{p.name, {}, 0};
    auto t0 = Clock::now();
    bool changed = false;
    for (size_t f = 0; f < graphs.size(); ++f) {
      PassCounters c;
      changed |= run_graph_pass(p.graph, *graphs[f], c);
      for (const auto& [k, v] : c.counts) s.counts[k] += v;
      if (verify_each) {
        Diagnostics diags;
        if (!verify(*graphs[f], diags))
          throw PassError(fmt::format("the graph of function '{}' is invalid after pass '{}':\n{}", functions[f].first, p.name,
                                      diags.render()));
      }
    }
    s.seconds = seconds_since(t0);
    stats.push_back(std::move(s));
    if (wants_print(p.name, true) && (!o.print_changed || changed)) dump_graphs("After", p.name);
  }

  // The optimized graphs are handed out before lowering, so that `--stage optimized` has them
  // even when a node has no lowering yet (NoLowering).
  if (optimized) {
    optimized->clear();
    for (const auto& g : graphs) optimized->push_back(g->clone());
  }

  // Lowering, fused or not.
  LowerOptions lo;
  lo.fuse = i < names.size() && names[i] == "fuse";
  lo.check_numerics = o.check_numerics;
  if (lo.fuse && wants_print("fuse", false)) dump_graphs("Before", "fuse");
  std::vector<std::pair<std::string, const Graph*>> lowered;
  for (size_t f = 0; f < graphs.size(); ++f) lowered.emplace_back(functions[f].first, graphs[f].get());
  auto t0 = Clock::now();
  LowerStats ls;
  kir::Program program = lower(lowered, lo, &ls);
  Stat low{lo.fuse ? "fuse" : "lower", {}, seconds_since(t0)};
  low.counts["kernels"] = ls.kernels;
  if (lo.fuse) {
    low.counts["values computed inside their consumers"] = ls.inlined;
    low.counts["ops fused into matmul/conv epilogues"] = ls.epilogue_ops;
    low.counts["reductions sharing another's pass"] = ls.sibling_reductions;
    ++i;
  }
  low.counts["workspace bytes"] = program.workspace_bytes;
  stats.push_back(std::move(low));
  if (lo.fuse && wants_print("fuse", true) && (!o.print_changed || ls.inlined + ls.epilogue_ops + ls.sibling_reductions > 0))
    dump_kernels("After", "fuse", program);

  for (; i < names.size(); ++i) {
    const PassInfo& p = *find_pass(names[i]);
    if (p.level != PassLevel::Kernels)
      throw PassError(fmt::format("pass '{}' must come right after the graph passes", p.name));
    if (wants_print(p.name, false)) dump_kernels("Before", p.name, program);
    PassCounters c;
    auto t1 = Clock::now();
    bool changed = p.kernels(program, c);
    if (verify_each) {
      std::string problem = kir::verify_memory(program);
      if (!problem.empty()) throw PassError(fmt::format("the kernels are invalid after pass '{}': {}", p.name, problem));
    }
    stats.push_back({p.name, c.counts, seconds_since(t1)});
    if (wants_print(p.name, true) && (!o.print_changed || changed)) dump_kernels("After", p.name, program);
  }

  if (o.stats) {
    fmt::print(log, "===-------------------------------------------------------------------------===\n");
    fmt::print(log, "                          ... Pass statistics report ...\n");
    fmt::print(log, "===-------------------------------------------------------------------------===\n");
    for (const auto& s : stats)
      for (const auto& [k, v] : s.counts) fmt::print(log, "{:>12}  {:<16} - {}\n", v, s.pass, k);
  }
  if (o.time) {
    double total = 0;
    for (const auto& s : stats) total += s.seconds;
    fmt::print(log, "===-------------------------------------------------------------------------===\n");
    fmt::print(log, "                      ... Pass execution timing report ...\n");
    fmt::print(log, "===-------------------------------------------------------------------------===\n");
    fmt::print(log, "  Total Execution Time: {:.4f} seconds\n\n   ---Wall Time---  --- Name ---\n", total);
    for (const auto& s : stats)
      fmt::print(log, "   {:.4f} ({:5.1f}%)  {}\n", s.seconds, total > 0 ? 100 * s.seconds / total : 0.0, s.pass);
  }
  return program;
}

}  // namespace stag
