// `stag run`: compile a model in process and run its forward function on given or random data.

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>

#include "compiler/jit/jit_model.h"
#include "ir/ops.h"
#include "runtime/error.h"
#include "runtime/npy.h"
#include "runtime/profile.h"
#include "runtime/safetensors.h"
#include "runtime/thread_pool.h"
#include "tools/cli.h"

namespace stag::cli {

namespace {

struct RunArgs {
  ModelArgs model;
  std::string weights;
  std::vector<std::string> inputs;
  std::string out_dir;
  std::string save_inputs;
  int64_t seed = 0;
  int threads = 0;
  int repeat = 1;
  ProfileArgs profile;
};

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

std::string summary(const rt::Tensor& t) {
  double lo = INFINITY, hi = -INFINITY, sum = 0;
  int64_t n = t.numel(), nonfinite = 0;
  for (int64_t i = 0; i < n; ++i) {
    double v = 0;
    switch (t.dtype()) {
      case rt::DType::f32: v = t.values<float>()[i]; break;
      case rt::DType::f64: v = t.values<double>()[i]; break;
      case rt::DType::i32: v = t.values<int32_t>()[i]; break;
      case rt::DType::i64: v = static_cast<double>(t.values<int64_t>()[i]); break;
      case rt::DType::b8: v = t.values<bool>()[i]; break;
    }
    if (!std::isfinite(v)) {
      ++nonfinite;
      continue;
    }
    lo = std::min(lo, v), hi = std::max(hi, v), sum += v;
  }
  std::string s = fmt::format("min {:.6g}  max {:.6g}  mean {:.6g}", lo, hi, sum / static_cast<double>(std::max<int64_t>(1, n - nonfinite)));
  if (nonfinite) s += fmt::format("  ({} not finite)", nonfinite);
  return s;
}

int run_run(const RunArgs& args) {
  auto graph = args.model.load();
  if (args.threads > 0) stag_set_num_threads(args.threads);
  // Inputs named on the command line, checked against the model before compiling.
  std::map<std::string, std::string> files;
  std::vector<std::string> input_names;
  for (const auto& n : graph->nodes)
    if (n->op == Op::input) input_names.push_back(n->result()->name);
  for (const auto& spec : args.inputs) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      throw Failure{kExitUsage, fmt::format("--input takes NAME=FILE.npy, got '{}'", spec)};
    std::string name = spec.substr(0, eq);
    if (std::find(input_names.begin(), input_names.end(), name) == input_names.end()) {
      auto hint = closest_name(name, input_names);
      throw Failure{kExitBadInput, fmt::format("model {} has no input '{}'{}; its inputs: {}", graph->name, name,
                                               hint ? fmt::format(" (did you mean '{}'?)", *hint) : "",
                                               fmt::join(input_names, ", "))};
    }
    if (!files.emplace(name, spec.substr(eq + 1)).second) throw Failure{kExitUsage, fmt::format("input '{}' is given twice", name)};
  }

  // A file that is not there is a usage error, like a missing model file.
  for (const auto& path : files)
    if (!std::filesystem::is_regular_file(path.second)) throw Failure{kExitUsage, fmt::format("cannot open '{}'", path.second)};
  if (!args.weights.empty() && !std::filesystem::is_regular_file(args.weights))
    throw Failure{kExitUsage, fmt::format("cannot open '{}'", args.weights)};

  auto t0 = Clock::now();
  CompiledModel c = compile_jit(*graph, {.profile = args.profile.enabled(), .passes = args.model.passes});
  const CompileTimes& ct = c.code->times();
  fmt::print("compiled {} in {:.0f} ms (codegen {:.0f}, optimize {:.0f}, machine code {:.0f}{}); {} kernels, workspace {} bytes\n",
             graph->name, ms_since(t0), ct.codegen_ms, ct.optimize_ms, ct.machine_ms, cache_note(ct),
             c.program.functions.back().kernels.size(), c.program.workspace_bytes);
  rt::Model& model = *c.model;
  try {
    if (!args.weights.empty()) {
      // A training checkpoint also holds the optimizer's state, which inference leaves aside.
      auto file = rt::read_safetensors(args.weights);
      model.load_model_params(file.tensors, args.weights);
    } else {
      model.init(args.seed);
    }
    const auto& spec = model.manifest().function("forward");
    std::vector<rt::Tensor> inputs;
    for (size_t i = 0; i < spec.inputs.size(); ++i) {
      const auto& in = spec.inputs[i];
      auto it = files.find(in.name);
      if (it == files.end()) {
        inputs.push_back(random_input(*graph, graph->find(in.name), in, args.seed, static_cast<int64_t>(i) + 1));
        continue;
      }
      rt::Tensor t = rt::read_npy(it->second);
      if (t.dtype() != in.dtype || t.shape() != in.shape)
        throw Failure{kExitBadInput, fmt::format("{}: input '{}' must be {}{}, the file holds {}", it->second, in.name,
                                                 rt::dtype_name(in.dtype), rt::shape_to_string(in.shape), t.type_string())};
      inputs.push_back(std::move(t));
    }
    if (!args.save_inputs.empty()) {
      std::filesystem::create_directories(args.save_inputs);
      for (size_t i = 0; i < inputs.size(); ++i)
        rt::write_npy(std::filesystem::path(args.save_inputs) / (spec.inputs[i].name + ".npy"), inputs[i]);
    }
    std::vector<const rt::Tensor*> ptrs;
    for (auto& t : inputs) ptrs.push_back(&t);
    std::vector<rt::Tensor> outputs;
    std::vector<double> times;
    std::optional<rt::Profiler> profiler;
    if (args.profile.enabled()) profiler.emplace(model.manifest(), std::vector<std::string>{"forward"});
    for (int r = 0; r < std::max(1, args.repeat); ++r) {
      auto t1 = Clock::now();
      outputs = model.run("forward", ptrs);
      times.push_back(ms_since(t1));
    }
    std::sort(times.begin(), times.end());
    fmt::print("forward on {} thread{}: {:.3f} ms{}\n", stag_get_num_threads(), stag_get_num_threads() == 1 ? "" : "s",
               times[times.size() / 2], times.size() > 1 ? fmt::format(" (median of {})", times.size()) : "");
    if (!args.out_dir.empty()) std::filesystem::create_directories(args.out_dir);
    for (size_t i = 0; i < outputs.size(); ++i) {
      std::string where;
      if (!args.out_dir.empty()) {
        auto path = std::filesystem::path(args.out_dir) / (spec.outputs[i].name + ".npy");
        rt::write_npy(path, outputs[i]);
        where = "  -> " + path.string();
      }
      fmt::print("  {:<12} {:<16} {}{}\n", spec.outputs[i].name, outputs[i].type_string(), summary(outputs[i]), where);
    }
    if (profiler) args.profile.finish(*profiler);
  } catch (const rt::Error& e) {
    throw Failure{kExitBadInput, e.what()};
  } catch (const std::filesystem::filesystem_error& e) {
    throw Failure{kExitUsage, e.what()};
  }
  return kExitOk;
}

}  // namespace

Command add_run_command(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "Compile a model to native code and run its forward function");
  args->model.add_to(*cmd);
  cmd->add_option("--weights", args->weights, "Parameters from a safetensors file (else initialised from --seed)");
  cmd->add_option("--input", args->inputs, "NAME=FILE.npy for an input (others are random from --seed)");
  cmd->add_option("--out-dir", args->out_dir, "Write each output here as NAME.npy");
  cmd->add_option("--save-inputs", args->save_inputs, "Write the inputs used (given or random) here as NAME.npy");
  cmd->add_option("--seed", args->seed, "Seed of the initialisation and the random inputs");
  cmd->add_option("--threads", args->threads, "Threads to run on (default: all)")->check(CLI::Range(1, 1024));
  cmd->add_option("--repeat", args->repeat, "Run the forward function this many times and report the median")
      ->check(CLI::Range(1, 100000));
  args->profile.add_to(*cmd);
  return {cmd, [args] { return run_run(*args); }};
}

}  // namespace stag::cli
