// `stag ir` prints a model at any stage of the pipeline; `stag ops` lists the op table.

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <stdexcept>
#include <nlohmann/json.hpp>

#include "compiler/autodiff/autodiff.h"
#include "compiler/jit/jit.h"
#include "compiler/lower/lower.h"
#include "compiler/passes/pass.h"
#include "ir/dot.h"
#include "ir/ops.h"
#include "ir/printer.h"
#include "tools/cli.h"
#include "tools/gan_program.h"

namespace stag::cli {

namespace {

struct IrArgs {
  ModelArgs model;
  std::string out = "-";
  std::string stage = "graph";
  bool dot = false;
  bool dot_full = false;  ///< every node, however large the graph
  std::string dot_scope;  ///< one layer in full
  bool step = false;    ///< the training step instead of inference
  std::string profile;  ///< a Chrome trace (--profile-out) giving the kernels' shares
  int processes = 1;    ///< above 1: the data-parallel step, gradients and update
  double bucket_mb = 25;
};

// The graph with the gradient of its `loss` output for every trainable parameter.
std::unique_ptr<Graph> differentiated(const Graph& g) {
  Diagnostics diags;
  auto ad = differentiate(g, "loss", diags);
  if (!ad) {
    fmt::print(stderr, "{}", diags.render());
    throw Failure{kExitBadInput, {}};
  }
  return ad;
}

// The graph `stag ir` shows: inference, its gradient, or a whole training step.
std::unique_ptr<Graph> staged_graph(const IrArgs& args) {
  if (args.step) {
    TrainProgramArgs program;
    program.model = args.model;
    return program.load().second;
  }
  auto graph = args.model.load();
  if (args.stage == "autodiff") graph = differentiated(*graph);
  return graph;
}

// Each kernel's share of `function`'s time in a Chrome trace written by --profile-out: its
// total over the run divided by the function's.
std::map<std::string, double> kernel_shares(const std::string& path, const std::string& function) {
  std::ifstream in(path);
  if (!in) throw Failure{kExitUsage, fmt::format("cannot open '{}'", path)};
  auto trace = nlohmann::json::parse(in, nullptr, false);
  if (trace.is_discarded() || !trace.contains("traceEvents"))
    throw Failure{kExitBadInput, fmt::format("'{}' is not a trace written by --profile-out", path)};
  const nlohmann::json* fn = nullptr;
  for (const auto& e : trace["traceEvents"])
    if (e.value("cat", "") == "function" && e.value("name", "") == function) fn = &e;
  if (!fn) throw Failure{kExitBadInput, fmt::format("'{}' has no profile of the function {}", path, function)};
  double total = (*fn)["args"].value("total_ms", 0.0);
  std::map<std::string, double> shares;
  for (const auto& e : trace["traceEvents"])
    if (e.value("cat", "") == "kernel" && e.value("tid", -1) == (*fn)["tid"] && total > 0)
      shares[e.value("name", "")] = e["args"].value("total_ms", 0.0) / total;
  return shares;
}

// The graph values a kernel computes; for the copy of an update, the parameter it writes.
std::vector<std::string> drawn_values(const kir::Kernel& k) {
  constexpr std::string_view kUpdate = "update %";
  if (k.nodes.empty() && k.origin.rfind(kUpdate, 0) == 0) return {k.origin.substr(kUpdate.size())};
  return k.nodes;
}

// A cluster per kernel of `function`, titled with its name and, from a profile, its share.
std::vector<DotCluster> kernel_clusters(const kir::Program& program, const std::string& function, const std::string& profile) {
  auto shares = profile.empty() ? std::map<std::string, double>{} : kernel_shares(profile, function);
  std::vector<DotCluster> clusters;
  for (const auto& f : program.functions)
    if (f.name == function)
      for (const auto& k : f.kernels) {
        auto it = shares.find(k.name);
        std::string share = it == shares.end() ? "" : fmt::format("\n{:.1f}% of {}", 100 * it->second, function);
        clusters.push_back({"kernel " + k.name + share, drawn_values(k), it == shares.end() ? 0 : it->second});
        if (it != shares.end()) shares.erase(it);
      }
  // A kernel the program lacks: the trace is of another model, or of other passes.
  if (!shares.empty())
    throw Failure{kExitBadInput, fmt::format("'{}' profiles a kernel {} that this {} does not have", profile,
                                             shares.begin()->first, function)};
  return clusters;
}

// The text of a compiled stage: kernels, LLVM IR or assembly.
std::string compiled_text(const IrArgs& args, const kir::Program& program) {
  if (args.dot)
    throw Failure{kExitUsage, fmt::format("--dot draws the graph stages (graph, autodiff, optimized, kernels), not {}", args.stage)};
  if (args.stage == "kernels") return kir::print(program);
  if (args.stage == "llvm") return llvm_ir_text(program, true);
  if (args.stage == "llvm-unoptimized") return llvm_ir_text(program, false);
  return assembly_text(program);
}

// Graphs up to this many nodes are drawn node by node; larger ones by their layers.
constexpr size_t kLargeGraph = 600;

// The picture --dot asks for: one layer, every node, or for a large graph its layers.
std::string dot_text(const IrArgs& args, const Graph& g, const std::vector<DotCluster>& clusters = {}) {
  if (!args.dot_scope.empty()) {
    try {
      return to_dot_scope(g, args.dot_scope, clusters);
    } catch (const std::invalid_argument& e) {
      throw Failure{kExitUsage, e.what()};
    }
  }
  if (args.dot_full || g.nodes.size() <= kLargeGraph) return to_dot(g, clusters);
  bool scoped = std::any_of(g.nodes.begin(), g.nodes.end(), [](const auto& n) { return n->op != Op::parameter && !n->loc.scope.empty(); });
  if (!scoped) {
    fmt::print(stderr, "{} has {} nodes but no layers (loc(... in \"LAYER\")): drawn node by node\n", g.name, g.nodes.size());
    return to_dot(g, clusters);
  }
  fmt::print(stderr, "{} has {} nodes: drawn by its layers ({}); --dot-scope LAYER draws one in full, --dot-full every node\n",
             g.name, g.nodes.size(), fmt::join(dot_layers(g), ", "));
  return to_dot_layers(g, clusters);
}

// One process's step of an N-process run: gradients and update, with their split points.
int run_parallel_ir(const IrArgs& args) {
  if (args.dot || (args.stage != "kernels" && args.stage != "llvm" && args.stage != "llvm-unoptimized" && args.stage != "asm"))
    throw Failure{kExitUsage, "--processes shows a compiled stage (kernels, llvm, llvm-unoptimized or asm), as text"};
  TrainProgramArgs program;
  program.model = args.model;
  program.bucket_mb = args.bucket_mb;
  SplitProgram split = program.load_split(args.processes);
  kir::Program compiled =
      compile_program({{"gradients", split.gradients.get()}, {"update", split.update.get()}}, args.model.passes, std::cerr);
  write_output(args.out, compiled_text(args, compiled));
  return kExitOk;
}

bool is_compiled_stage(const std::string& stage) {
  return stage == "kernels" || stage == "llvm" || stage == "llvm-unoptimized" || stage == "asm";
}

// A GAN's training program as `stag train` compiles it (--step: sampling and the pair step, or
// the two steps), or one process's of an N-process run (--processes: sampling, then each model's
// gradients and update); its step graphs one after another at the graph stages.
int run_gan_ir(const IrArgs& args, const fe::GanLookup& gan) {
  if (gan.kind == fe::GanLookup::Member) refuse_member(args.model, gan.spec);
  if (args.dot) throw Failure{kExitUsage, "--dot draws one graph; a GAN's steps are several (--model NAME draws one model)"};
  if (args.processes > 1 && !is_compiled_stage(args.stage))
    throw Failure{kExitUsage, "--processes shows a compiled stage (kernels, llvm, llvm-unoptimized or asm), as text"};
  TrainProgramArgs program;
  program.model = args.model;
  program.bucket_mb = args.bucket_mb;
  GanGraphs graphs = args.processes > 1 ? gan_split_graphs(program, gan.spec, args.processes) : gan_graphs(program, gan.spec);
  auto functions = args.processes > 1 ? gan_split_functions(graphs) : gan_functions(graphs, gan.spec, false);
  std::vector<std::unique_ptr<Graph>> optimized;
  std::string text;
  if (args.stage == "graph") {
    for (const auto& [name, g] : functions) text += (text.empty() ? "" : "\n") + print(*g);
  } else {
    kir::Program compiled = compile_program(functions, args.model.passes, std::cerr, &optimized);
    if (args.stage != "optimized") text = compiled_text(args, compiled);
    for (size_t i = 0; args.stage == "optimized" && i < optimized.size(); ++i) text += (i ? "\n" : "") + print(*optimized[i]);
  }
  write_output(args.out, text);
  return kExitOk;
}

int run_ir(const IrArgs& args) {
  if (args.step && args.stage == "autodiff") throw Failure{kExitUsage, "--step already holds the gradient; use --stage graph"};
  if (args.step || args.processes > 1)
    if (auto gan = find_gan(args.model)) return run_gan_ir(args, *gan);
  if (args.processes > 1) return run_parallel_ir(args);
  if (!args.profile.empty() && !(args.dot && args.stage == "kernels"))
    throw Failure{kExitUsage, "--profile labels the kernels of --stage kernels --dot"};
  auto graph = staged_graph(args);
  if (args.stage == "graph" || args.stage == "autodiff") {
    write_output(args.out, args.dot ? dot_text(args, *graph) : print(*graph));
    return kExitOk;
  }
  std::string function = args.step ? "train_step" : "forward";
  std::vector<std::unique_ptr<Graph>> optimized;
  kir::Program program;
  try {
    program = compile_program({{function, graph.get()}}, args.model.passes, std::cerr, &optimized);
  } catch (const NoLowering&) {
    if (args.stage != "optimized" || optimized.empty()) throw;  // the graph passes ran: their stage prints
  }
  std::string text;
  if (args.stage == "optimized") text = args.dot ? dot_text(args, *optimized[0]) : print(*optimized[0]);
  else if (args.stage == "kernels" && args.dot) text = dot_text(args, *optimized[0], kernel_clusters(program, function, args.profile));
  else text = compiled_text(args, program);
  write_output(args.out, text);
  return kExitOk;
}

// The op table as users see it: operands, and attributes with their kinds and defaults.
int run_ops() {
  for (const auto& info : all_ops()) {
    std::string operands = info.min_operands == info.max_operands ? std::to_string(info.min_operands)
                           : info.max_operands < 0 ? fmt::format("{}+", info.min_operands)
                                                   : fmt::format("{}-{}", info.min_operands, info.max_operands);
    std::vector<std::string> attrs;
    for (const auto& a : info.attrs) {
      std::string kind(kind_name(a.kind));
      if (!a.choices.empty()) kind = fmt::format("{}", fmt::join(a.choices, "|"));
      attrs.push_back(a.default_value ? fmt::format("{}: {} = {}", a.name, kind, to_string(*a.default_value))
                                      : fmt::format("{}: {} (required)", a.name, kind));
    }
    fmt::print("{:<18} operands {:<4} {}\n", info.name, operands, fmt::join(attrs, ", "));
  }
  return kExitOk;
}

}  // namespace

Command add_ir_command(CLI::App& app) {
  auto args = std::make_shared<IrArgs>();
  auto* cmd = app.add_subcommand("ir", "Read a model or IR file, verify it and print it at a stage of the pipeline");
  args->model.add_to(*cmd);
  cmd->add_option("-o,--output", args->out, "Write here instead of stdout");
  cmd->add_option("--stage", args->stage,
                  "graph: the graph IR (reads back); autodiff: with the gradient of the output `loss` for every trainable "
                  "parameter (outputs grad.NAME); optimized: the graph after the optimizer's graph passes; kernels: the "
                  "kernel IR (fused, memory planned); llvm: LLVM IR after O3 for this CPU; llvm-unoptimized: before it; "
                  "asm: the host assembly")
      ->check(CLI::IsMember({"graph", "autodiff", "optimized", "kernels", "llvm", "llvm-unoptimized", "asm"}));
  cmd->add_flag("--dot", args->dot,
                "Write Graphviz (dot) instead of text: the graph of the stage; for kernels, the optimized graph with "
                "the nodes of each fused kernel drawn as a cluster (render with: dot -Tsvg); a graph of over 600 nodes by its "
                "layers, a box for each layer's forward, backward and update");
  cmd->add_flag("--dot-full", args->dot_full,
                "Draw every node even of a large graph (implies --dot; over 600 nodes --dot draws by its layers)");
  cmd->add_option("--dot-scope", args->dot_scope,
                  "Draw one layer in full (implies --dot): h.0 or h.0.attn its forward and backward side by side, "
                  "h.0:forward, :backward or :update one phase, optimizer the optimizer's shared nodes; notes name the "
                  "values that cross its border")
      ->type_name("LAYER[:PHASE]");
  cmd->add_flag("--step", args->step,
                "The training step (forward, gradients and the optimizer update of the model's train section) instead of "
                "inference");
  cmd->add_option("--processes", args->processes,
                  "The step of one of N data-parallel processes (mpirun -np N stag train): its gradients and update "
                  "functions at 1/N of the batch, with the buckets' all-reduce split points (exchange start/wait)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--bucket-mb", args->bucket_mb, "With --processes: the gradients' bucket size in MB (0: one all-reduce after the backward)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--profile", args->profile,
                  "With --stage kernels --dot: a trace written by --profile-out (stag run, step or train); each kernel's "
                  "cluster gives its share of the function's time");
  return {cmd, [args] {
            if (args->dot_full && !args->dot_scope.empty()) throw Failure{kExitUsage, "--dot-full draws every node, --dot-scope one layer: not both"};
            args->dot = args->dot || args->dot_full || !args->dot_scope.empty();
            return run_ir(*args);
          }};
}

Command add_ops_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("ops", "List the op table: every op, its operands and attributes");
  return {cmd, [] { return run_ops(); }};
}

}  // namespace stag::cli
