// `stag export`: a model's inference graph as ONNX, with its weights (a checkpoint's, or the
// seeded initialisation `stag run` uses) as initializers.

#include <fmt/format.h>

#include <filesystem>

#include "compiler/jit/jit_model.h"
#include "frontend/onnx/export.h"
#include "runtime/error.h"
#include "runtime/run_dir.h"
#include "runtime/safetensors.h"
#include "tools/cli.h"

namespace stag::cli {

namespace {

struct ExportArgs {
  ModelArgs model;
  std::string output;
  std::string weights;
  int64_t seed = 0;
};

// The parameter values exactly as `stag run` would use them: the compiled init function from
// the seed (or the checkpoint's tensors, strictly by name), read back as bytes.
onnx_export::Weights weights_of(const Graph& g, const ExportArgs& args) {
  CompiledModel c = compile_jit(g, {.passes = args.model.passes});
  rt::Model& model = *c.model;
  try {
    if (!args.weights.empty()) {
      std::string file = rt::resolve_checkpoint(args.weights, rt::Prefer::best).string();
      if (file != args.weights && args.output != "-") fmt::print("weights: {}\n", file);  // stdout may be the model
      auto tensors = rt::read_safetensors(file).tensors;
      model.load_model_params(tensors, file);
    } else {
      init_params(model, args.seed);
    }
  } catch (const rt::Error& e) {
    throw Failure{kExitBadInput, e.what()};
  }
  onnx_export::Weights out;
  for (const auto& p : model.manifest().params) {
    const rt::Tensor& t = model.param(p.name);
    out[p.name].assign(static_cast<const char*>(t.data()), static_cast<size_t>(t.nbytes()));
  }
  return out;
}

int run_export(const ExportArgs& args) {
  auto graph = args.model.load();
  if (!args.weights.empty() && !std::filesystem::exists(args.weights)) throw Failure{kExitUsage, fmt::format("cannot open '{}'", args.weights)};
  onnx_export::Exported model;
  try {
    onnx_export::check_exportable(*graph);  // before compiling: an unsupported op fails fast
    model = onnx_export::export_model(*graph, weights_of(*graph, args));
  } catch (const onnx_export::ExportError& e) {
    throw Failure{kExitBadInput, e.what()};
  }
  write_output(args.output, model.bytes);
  if (args.output != "-")
    fmt::print("wrote {} (ONNX opset {}, {} bytes): {}\n", args.output, onnx_export::kOpset, model.bytes.size(), model.summary);
  return kExitOk;
}

}  // namespace

Command add_export_command(CLI::App& app) {
  auto args = std::make_shared<ExportArgs>();
  auto* cmd = app.add_subcommand("export", "Write a model's inference graph and weights as ONNX (opset 17)");
  args->model.add_to(*cmd);
  cmd->add_option("-o,--output", args->output, "The ONNX file to write ('-': standard output)")->required();
  cmd->add_option("--weights", args->weights, "Parameters from a safetensors checkpoint or a run folder (else initialised from --seed, as stag run)");
  cmd->add_option("--seed", args->seed, "Seed of the initialisation when there are no --weights");
  return {cmd, [args] { return run_export(*args); }};
}

}  // namespace stag::cli
