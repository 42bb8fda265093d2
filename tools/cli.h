#pragma once
/// What the `stag` subcommands share: exit codes, how a model file is named on the command
/// line and loaded, and safe output writing.

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compiler/jit/jit.h"
#include "compiler/passes/pass.h"
#include "ir/graph.h"
#include "runtime/model.h"

namespace stag::rt {
class Profiler;
}

namespace stag::cli {

constexpr int kExitOk = 0;
constexpr int kExitBadInput = 1;  ///< the file was read but is not a valid model, or its data is bad
constexpr int kExitUsage = 2;     ///< bad flags, or a file that cannot be read or written

/// A user error found after the command line parsed: printed as `stag: error: ...`.
struct Failure {
  int exit_code;
  std::string message;
};

/// The model a command works on and how to lower it.
struct ModelArgs {
  std::string file;
  int64_t batch = 0;
  bool train = false;
  bool decode = false;   ///< lower the single-token decode step (LoadOptions::decode)
  bool prefill = false;  ///< lower the forward that also gives the decode step's cache (LoadOptions::prefill)
  bool unroll = false;   ///< recurrent layers unrolled, not scans (LoadOptions::unroll)
  std::string model;
  std::vector<std::string> dims;  ///< --dim NAME=N: an ONNX model's symbolic dimensions
  std::string loss;               ///< --loss KIND:OUTPUT:LABEL: an ONNX model's loss
  PassOptions passes;  ///< the optimizer's pipeline and its dumps

  void add_to(CLI::App& app);
  /// Reads, parses and verifies the model; prints diagnostics and throws Failure on error.
  std::unique_ptr<Graph> load() const;
};

/// Fills the parameters by their init schemes from `seed`, then, for a model imported from
/// ONNX (the manifest's `onnx` attribute), takes every parameter its initializers hold.
void init_params(rt::Model& model, int64_t seed);

/// The ONNX file a model was imported from (the manifest's `onnx` attribute), if it was.
std::optional<std::string> onnx_source(const rt::Model& model);
/// An ONNX file's float initializers encoded as safetensors (what a built trainer starts from).
std::string initializers_as_safetensors(const std::string& onnx_path);

/// `--init-from FILE`: the float initializers of an ONNX file (FILE.onnx), else the tensors of a
/// safetensors file, by name (rt::init_from's rule). Throws rt::Error.
void init_from_file(rt::Model& model, const std::string& path);

/// A training run's starting weights after the seed's init: an ONNX model's own initializers,
/// then `--init-from` (empty: none), each reported. Throws rt::Error.
void init_training(rt::Model& model, const std::string& init_from);

/// The optimizer's flags (--passes, --print-after-all, ...), for commands that compile.
void add_pass_options(CLI::App& app, PassOptions& o);

/// A model's training program: the inference graph and the train step (autodiff and the
/// optimizer), from the model's train section and the flags that change the compiled code.
/// Data parallelism: the inference graph and the train step split into gradients and update
/// (build_split_train_step), for one process's share of the batch.
struct SplitProgram {
  std::unique_ptr<Graph> eval, gradients, update;
};

struct TrainProgramArgs {
  ModelArgs model;
  std::string optimizer;
  double weight_decay = -1, momentum = -1, grad_clip = -1;
  std::vector<std::string> freeze;
  double bucket_mb = 25;  ///< data parallelism: the gradients' bucket size (bucket-gradients)

  void add_to(CLI::App& app);
  /// --bucket-mb, for the commands that compile a data-parallel step (train, build).
  void add_bucket_option(CLI::App& app);
  /// (inference graph, train step graph); prints diagnostics and throws Failure on error.
  std::pair<std::unique_ptr<Graph>, std::unique_ptr<Graph>> load() const;
  /// The program of one of `processes` data-parallel processes: the batch (--batch, else the
  /// model's) is the global one, each process's graphs take its share; gradients carries the
  /// attribute dp.processes. Throws Failure when the batch does not split evenly.
  SplitProgram load_split(int processes) const;
};

/// `--profile`, `--profile-out FILE.json`, `--profile-top N`: compile with instrumented kernels
/// and report the time of each after the run (runtime/profile.h).
struct ProfileArgs {
  bool on = false;
  std::string out;
  int top = 25;

  void add_to(CLI::App& app);
  bool enabled() const { return on || !out.empty(); }
  /// Prints the report (with --profile) and writes the trace (with --profile-out).
  void finish(const rt::Profiler& profiler) const;
};

/// Writes `text` to `path` ("-" is stdout) through a temporary file and a rename, so a failed
/// write never leaves half a file where a good one was. Throws Failure.
void write_output(const std::string& path, const std::string& text);

/// ", 2 of 2 parts from the JIT cache" when the object cache served any part, else "".
std::string cache_note(const CompileTimes& times);

/// Deterministic random data for a function input: standard normal floats, integers in
/// [0, bound) where the graph bounds them (embedding rows, class count), else [0, 10).
rt::Tensor random_input(const Graph& g, const Value* v, const rt::BufferSpec& spec, int64_t seed, int64_t stream);

/// A subcommand: registered on the app, run when parsed.
/// The command line stag was started with, word by word (run.json records it).
std::vector<std::string>& command_line();

struct Command {
  CLI::App* app;
  std::function<int()> run;
};

Command add_ir_command(CLI::App& app);
Command add_ops_command(CLI::App& app);
Command add_run_command(CLI::App& app);
Command add_compile_command(CLI::App& app);
Command add_train_command(CLI::App& app);
Command add_eval_command(CLI::App& app);
Command add_build_command(CLI::App& app);
Command add_grad_command(CLI::App& app);
Command add_predict_command(CLI::App& app);
Command add_step_command(CLI::App& app);
Command add_bench_command(CLI::App& app);
Command add_sample_command(CLI::App& app);
Command add_plot_command(CLI::App& app);
Command add_export_command(CLI::App& app);

}  // namespace stag::cli
