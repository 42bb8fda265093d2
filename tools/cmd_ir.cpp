// `stag ir` prints a model at any stage of the pipeline; `stag ops` lists the op table.

#include <fmt/format.h>

#include <iostream>

#include "compiler/autodiff/autodiff.h"
#include "compiler/jit/jit.h"
#include "compiler/lower/lower.h"
#include "compiler/passes/pass.h"
#include "ir/dot.h"
#include "ir/ops.h"
#include "ir/printer.h"
#include "tools/cli.h"

namespace stag::cli {

namespace {

struct IrArgs {
  ModelArgs model;
  std::string out = "-";
  std::string stage = "graph";
  bool dot = false;
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

int run_ir(const IrArgs& args) {
  auto graph = args.model.load();
  if (args.stage == "autodiff") graph = differentiated(*graph);
  std::string text;
  if (args.stage == "graph" || args.stage == "autodiff") {
    text = args.dot ? to_dot(*graph) : print(*graph);
    write_output(args.out, text);
    return kExitOk;
  }
  std::vector<std::unique_ptr<Graph>> optimized;
  kir::Program program = compile_program({{"forward", graph.get()}}, args.model.passes, std::cerr, &optimized);
  if (args.stage == "optimized") text = args.dot ? to_dot(*optimized[0]) : print(*optimized[0]);
  else if (args.stage == "kernels" && args.dot) {
    // The optimized graph with the nodes each kernel computes drawn together.
    std::vector<DotCluster> clusters;
    for (const auto& f : program.functions)
      if (f.name == "forward")
        for (const auto& k : f.kernels) clusters.push_back({k.name, k.nodes});
    text = to_dot(*optimized[0], clusters);
  } else if (args.dot)
    throw Failure{kExitUsage, fmt::format("--dot draws the graph stages (graph, autodiff, optimized, kernels), not {}", args.stage)};
  else if (args.stage == "kernels") text = kir::print(program);
  else if (args.stage == "llvm") text = llvm_ir_text(program, true);
  else if (args.stage == "llvm-unoptimized") text = llvm_ir_text(program, false);
  else text = assembly_text(program);
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
                "the nodes of each fused kernel drawn as a cluster");
  return {cmd, [args] { return run_ir(*args); }};
}

Command add_ops_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("ops", "List the op table: every op, its operands and attributes");
  return {cmd, [] { return run_ops(); }};
}

}  // namespace stag::cli
