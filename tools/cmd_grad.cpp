// `stag grad` writes the loss and every trainable parameter's gradient for given weights and
// inputs, for parity checks by anyone; `stag step` runs N compiled train steps and writes the
// parameters after them.

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <span>

#include "compiler/autodiff/autodiff.h"
#include "compiler/jit/jit_model.h"
#include "ir/ops.h"
#include "runtime/trainer.h"
#include "runtime/error.h"
#include "runtime/npy.h"
#include "runtime/profile.h"
#include "runtime/safetensors.h"
#include "runtime/thread_pool.h"
#include "tools/cli.h"

namespace stag::cli {

namespace {

struct FeedArgs {
  std::string weights;
  std::vector<std::string> inputs;
  std::string out;
  int64_t seed = 0;
  int threads = 0;

  void add_to(CLI::App& cmd) {
    cmd.add_option("--weights", weights, "Parameters (safetensors; else initialised from --seed)");
    cmd.add_option("--input", inputs, "NAME=FILE.npy for each data input")->required();
    cmd.add_option("-o,--output", out, "The safetensors file to write")->required();
    cmd.add_option("--seed", seed, "Seed of the initialisation when no --weights");
    cmd.add_option("--threads", threads, "Threads (default: all cores)")->check(CLI::Range(1, 1024));
  }
};

// Reads NAME=FILE.npy arguments into tensors for a function's inputs; `extra` fills the
// inputs the user does not give (the learning rate, the step).
std::vector<rt::Tensor> read_inputs(const rt::FunctionSpec& spec, const std::vector<std::string>& given,
                                    const std::map<std::string, rt::Tensor*>& extra) {
  std::map<std::string, std::string> files;
  for (const auto& g : given) {
    auto eq = g.find('=');
    if (eq == std::string::npos || eq == 0) throw Failure{kExitUsage, fmt::format("--input takes NAME=FILE.npy, got '{}'", g)};
    files[g.substr(0, eq)] = g.substr(eq + 1);
  }
  std::vector<rt::Tensor> out;
  for (const auto& in : spec.inputs) {
    if (extra.count(in.name)) {
      out.push_back(extra.at(in.name)->clone());
      continue;
    }
    auto it = files.find(in.name);
    if (it == files.end()) throw Failure{kExitUsage, fmt::format("missing --input {}=FILE.npy ({}{})", in.name, rt::dtype_name(in.dtype), rt::shape_to_string(in.shape))};
    if (!std::filesystem::is_regular_file(it->second)) throw Failure{kExitUsage, fmt::format("cannot open '{}'", it->second)};
    rt::Tensor t = rt::read_npy(it->second);
    if (t.dtype() != in.dtype || t.shape() != in.shape)
      throw Failure{kExitBadInput, fmt::format("{}: input '{}' must be {}{}, the file holds {}", it->second, in.name,
                                               rt::dtype_name(in.dtype), rt::shape_to_string(in.shape), t.type_string())};
    out.push_back(std::move(t));
    files.erase(it);
  }
  if (!files.empty()) throw Failure{kExitBadInput, fmt::format("the model has no input '{}'", files.begin()->first)};
  return out;
}

void load_weights(rt::Model& m, const FeedArgs& args, bool whole_state) {
  if (args.weights.empty()) {
    m.init(args.seed);
    return;
  }
  if (!std::filesystem::is_regular_file(args.weights)) throw Failure{kExitUsage, fmt::format("cannot open '{}'", args.weights)};
  auto file = rt::read_safetensors(args.weights);
  if (whole_state) {
    // A checkpoint carries the optimizer state; with plain weights it starts from its init.
    // Whatever the file holds must have the model's types: the compiled code trusts them.
    m.init(args.seed);
    for (auto& [name, t] : file.tensors) {
      if (m.param_index(name) < 0) continue;
      rt::Tensor& p = m.param(name);
      if (t.dtype() != p.dtype() || t.shape() != p.shape())
        throw Failure{kExitBadInput, fmt::format("{}: parameter '{}' is {} in the file, the model needs {}", args.weights,
                                                 name, t.type_string(), p.type_string())};
      p = std::move(t);
    }
  } else {
    m.load_model_params(file.tensors, args.weights);
  }
}

struct GradArgs {
  ModelArgs model;
  FeedArgs feed;
};

int run_grad(const GradArgs& args) {
  auto graph = args.model.load();
  if (args.feed.threads > 0) stag_set_num_threads(args.feed.threads);
  Diagnostics diags;
  auto dg = differentiate(*graph, "loss", diags);
  if (!dg) {
    fmt::print(stderr, "{}", diags.render());
    throw Failure{kExitBadInput, {}};
  }
  CompiledModel c = compile_jit(*dg, {.passes = args.model.passes});
  try {
    load_weights(*c.model, args.feed, false);
    const auto& spec = c.model->manifest().function("forward");
    auto inputs = read_inputs(spec, args.feed.inputs, {});
    std::vector<const rt::Tensor*> ptrs;
    for (const auto& t : inputs) ptrs.push_back(&t);
    auto outputs = c.model->run("forward", ptrs);
    std::vector<rt::NamedTensor> tensors;
    for (size_t i = 0; i < outputs.size(); ++i) {
      const std::string& name = spec.outputs[i].name;
      if (name == "loss") tensors.push_back({"loss", &outputs[i]});
      else if (name.starts_with("grad.")) tensors.push_back({name, &outputs[i]});
    }
    rt::write_safetensors(args.feed.out, tensors);
    for (size_t i = 0; i < outputs.size(); ++i)
      if (spec.outputs[i].name == "loss") fmt::print("loss {}\n", outputs[i].values<float>()[0]);
    fmt::print("wrote the loss and {} gradients to {}\n", tensors.size() - 1, args.feed.out);
  } catch (const rt::Error& e) {
    throw Failure{kExitBadInput, e.what()};
  }
  return kExitOk;
}

struct StepArgs {
  TrainProgramArgs program;
  FeedArgs feed;
  int64_t steps = 1;
  double lr = -1;
  ProfileArgs profile;
};

int run_step(const StepArgs& args) {
  auto [eval, step] = args.program.load();
  if (args.feed.threads > 0) stag_set_num_threads(args.feed.threads);
  CompiledModel c = compile_jit({{"train_step", step.get()}}, {.profile = args.profile.enabled(), .passes = args.program.model.passes});
  try {
    load_weights(*c.model, args.feed, true);
    double lr = args.lr;
    if (lr < 0) {
      lr = rt::settings_from_manifest(c.model->manifest()).lr;
    }
    rt::Tensor lr_t = rt::Tensor::from<float>({}, {static_cast<float>(lr)});
    rt::Tensor step_t = rt::Tensor::from<int64_t>({}, {0});
    const auto& spec = c.model->manifest().function("train_step");
    auto inputs = read_inputs(spec, args.feed.inputs, {{"lr", &lr_t}, {"step", &step_t}});
    int step_index = -1, loss_index = -1, nonfinite_index = -1;
    for (size_t i = 0; i < spec.inputs.size(); ++i)
      if (spec.inputs[i].name == "step") step_index = static_cast<int>(i);
    for (size_t i = 0; i < spec.outputs.size(); ++i)
      if (spec.outputs[i].name == "loss") loss_index = static_cast<int>(i);
      else if (spec.outputs[i].name == "nonfinite") nonfinite_index = static_cast<int>(i);
    std::optional<rt::Profiler> profiler;
    if (args.profile.enabled()) profiler.emplace(c.model->manifest(), std::vector<std::string>{"train_step"});
    for (int64_t s = 0; s < args.steps; ++s) {
      if (step_index >= 0) inputs[step_index].values<int64_t>()[0] = s;
      std::vector<const rt::Tensor*> ptrs;
      for (const auto& t : inputs) ptrs.push_back(&t);
      auto out = c.model->run("train_step", ptrs);
      if (loss_index >= 0) fmt::print("step {} loss {}\n", s + 1, out[loss_index].values<float>()[0]);
      auto flags = nonfinite_index >= 0 ? out[nonfinite_index].values<float>() : std::span<const float>{};
      if (std::any_of(flags.begin(), flags.end(), [](float v) { return v != 0; }))
        fmt::print("step {} was not applied: the loss or a gradient is not finite\n", s + 1);
    }
    std::vector<rt::NamedTensor> tensors;
    for (size_t i = 0; i < c.model->params().size(); ++i) tensors.push_back({c.model->manifest().params[i].name, &c.model->params()[i]});
    rt::write_safetensors(args.feed.out, tensors);
    fmt::print("wrote the parameters and optimizer state after {} steps to {}\n", args.steps, args.feed.out);
    if (profiler) args.profile.finish(*profiler);
  } catch (const rt::Error& e) {
    throw Failure{kExitBadInput, e.what()};
  }
  return kExitOk;
}

}  // namespace

Command add_grad_command(CLI::App& app) {
  auto args = std::make_shared<GradArgs>();
  auto* cmd = app.add_subcommand("grad", "Write the loss and every trainable parameter's gradient (safetensors)");
  args->model.add_to(*cmd);
  args->feed.add_to(*cmd);
  return {cmd, [args] { return run_grad(*args); }};
}

Command add_step_command(CLI::App& app) {
  auto args = std::make_shared<StepArgs>();
  auto* cmd = app.add_subcommand("step", "Run N compiled train steps on one batch and write the parameters after them");
  args->program.add_to(*cmd);
  args->feed.add_to(*cmd);
  cmd->add_option("--steps", args->steps, "Train steps to run")->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  cmd->add_option("--lr", args->lr, "Learning rate (default: the model's)")->check(CLI::PositiveNumber);
  args->profile.add_to(*cmd);
  return {cmd, [args] { return run_step(*args); }};
}

}  // namespace stag::cli
