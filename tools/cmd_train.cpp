// `stag train` compiles a model's inference pass and training step in process and trains it;
// `stag eval` scores a checkpoint on the test data.

#include <fmt/format.h>

#include <chrono>
#include <functional>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <regex>

#include "compiler/jit/jit_model.h"
#include "compiler/train/train_step.h"
#include "frontend/onnx/onnx.h"
#include "ir/ops.h"
#include "ir/train_config.h"
#include "runtime/error.h"
#include "runtime/npy.h"
#include "runtime/profile.h"
#include "runtime/run_dir.h"
#include "runtime/safetensors.h"
#include "runtime/dist/dist.h"
#include "runtime/stop_signal.h"
#include "runtime/trainer.h"
#include "runtime/gan_trainer.h"
#include "tools/cli.h"
#include "tools/gan_program.h"

namespace stag::cli {

namespace {

// `--freeze 'conv*'`: a shell-style pattern over parameter names.
std::regex glob_regex(const std::string& glob) {
  std::string re;
  for (char c : glob) {
    if (c == '*') re += ".*";
    else if (c == '?') re += '.';
    else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') re += c;
    else re += std::string("\\") + c;
  }
  return std::regex(re);
}

// An imported ONNX model's parameters have IR names (`onnx::MatMul_12` is `onnx__MatMul_12`):
// its patterns may spell the ONNX names.
std::string ir_glob(const Graph& g, const std::string& glob) {
  if (!g.attr(onnx_import::kSourceAttr)) return glob;
  std::string out;
  for (char c : glob) out += c == '*' || c == '?' ? c : onnx_import::ir_name(std::string(1, c)).back();
  return !out.empty() && std::isdigit(static_cast<unsigned char>(out[0])) ? "_" + out : out;
}

void freeze_params(Graph& g, const std::vector<std::string>& patterns) {
  for (const auto& pattern : patterns) {
    std::regex re = glob_regex(ir_glob(g, pattern));
    std::vector<std::string> names;
    int matched = 0;
    for (auto& n : g.nodes) {
      if (n->op != Op::parameter) continue;
      names.push_back(n->result()->name);
      if (!std::regex_match(n->result()->name, re)) continue;
      n->attrs[static_cast<size_t>(n->info().attr_index("trainable"))] = false;
      ++matched;
    }
    constexpr size_t kShown = 12;
    std::string more = names.size() > kShown ? fmt::format(" and {} more", names.size() - kShown) : "";
    names.resize(std::min(names.size(), kShown));
    if (matched == 0)
      throw Failure{kExitBadInput, fmt::format("--freeze '{}' matches no parameter of {} (its parameters: {}{})", pattern, g.name,
                                               fmt::join(names, ", "), more)};
  }
}

// The training-mode graph (--freeze applied) and the optimizer the flags and the model ask for.
std::pair<std::unique_ptr<Graph>, OptimizerConfig> training_program(const TrainProgramArgs& args) {
  ModelArgs train_args = args.model;
  train_args.train = true;
  auto training = train_args.load();
  freeze_params(*training, args.freeze);
  OptimizerConfig opt = optimizer_from_attrs(*training);
  if (!args.optimizer.empty()) opt.kind = args.optimizer;
  if (args.weight_decay >= 0) opt.weight_decay = args.weight_decay;
  if (args.momentum >= 0) opt.momentum = args.momentum;
  if (args.grad_clip >= 0) opt.clip_norm = args.grad_clip;
  return {std::move(training), opt};
}

}  // namespace

void TrainProgramArgs::add_to(CLI::App& app) {
  model.add_to(app);
  app.add_option("--optimizer", optimizer, "sgd, adam, adamw, adamax, adagrad or rmsprop")
      ->check(CLI::IsMember({"sgd", "adam", "adamw", "adamax", "adagrad", "rmsprop"}));
  app.add_option("--weight-decay", weight_decay, "L2 weight decay (decoupled for adamw)")->check(CLI::NonNegativeNumber);
  app.add_option("--momentum", momentum, "Momentum (sgd, rmsprop)")->check(CLI::NonNegativeNumber);
  app.add_option("--grad-clip", grad_clip, "Clip gradients to this global norm")->check(CLI::NonNegativeNumber);
  app.add_option("--freeze", freeze, "Freeze parameters whose names match (e.g. 'conv*'): no gradient, no update");
}

void TrainProgramArgs::add_bucket_option(CLI::App& app) {
  app.add_option("--bucket-mb", bucket_mb,
                 "Across processes: gradients all-reduced in buckets of at most this many MB (the first at most 1), each "
                 "started while the backward runs on (0: all at once after the backward)")
      ->check(CLI::NonNegativeNumber);
}

std::pair<std::unique_ptr<Graph>, std::unique_ptr<Graph>> TrainProgramArgs::load() const {
  ModelArgs eval_args = model;
  eval_args.train = false;
  auto eval = eval_args.load();
  auto [training, opt] = training_program(*this);
  Diagnostics diags;
  auto step = build_train_step(*training, opt, diags);
  if (!step) {
    fmt::print(stderr, "{}", diags.render());
    throw Failure{kExitBadInput, {}};
  }
  return {std::move(eval), std::move(step)};
}

namespace {

// The global batch a data-parallel run splits: --batch, else the model's own.
int64_t global_batch(const ModelArgs& model) {
  if (model.batch > 0) return model.batch;
  std::unique_ptr<Graph> graph = model.load();  // owns `batch`
  const Attr* batch = graph->attr("batch");
  if (!batch) throw Failure{kExitUsage, "training across processes splits the batch: give --batch or a `batch` in the model"};
  return std::get<int64_t>(*batch);
}

}  // namespace

SplitProgram TrainProgramArgs::load_split(int processes) const {
  TrainProgramArgs program = *this;
  int64_t global = global_batch(model);
  if (global % processes != 0)
    throw Failure{kExitUsage, fmt::format("the batch {} does not split evenly over {} processes", global, processes)};
  program.model.batch = global / processes;
  ModelArgs eval_args = program.model;
  eval_args.train = false;
  SplitProgram split{eval_args.load(), nullptr, nullptr};
  auto [training, opt] = training_program(program);
  Diagnostics diags;
  std::tie(split.gradients, split.update) = build_split_train_step(*training, opt, diags);
  if (!split.gradients) {
    fmt::print(stderr, "{}", diags.render());
    throw Failure{kExitBadInput, {}};
  }
  split.gradients->set_attr("dp.processes", int64_t{processes});
  split.gradients->set_attr("dp.bucket_bytes", static_cast<int64_t>(bucket_mb * 1024 * 1024));
  return split;
}

namespace {

struct TrainArgs {
  TrainProgramArgs program;
  rt::TrainSettings given;
  ProfileArgs profile;
  ScoreArgs score;  ///< GANs only
  bool separate_steps = false;  ///< GANs only: d_step and g_step even when one pair_step would do
};

// The data set a run will read: --data, else the model's train section, else the default. Only a
// guess for preloading: train() checks it against the settings it ends up with.
std::string data_source(const TrainArgs& args, const CLI::App& cmd, const Graph& g) {
  if (cmd.get_option("--data")->count() > 0) return args.given.data;
  return train_config(g).data.value_or(rt::TrainSettings{}.data);
}

// What run.json says about the model and the command line.
void record_start(const std::string& model_file, rt::TrainSettings& s) {
  std::ifstream in(model_file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  s.command = command_line();
  s.model_hash = "sha256:" + rt::sha256_hex(text);
  s.model_hash_of = model_file;
}

// Runs a training loop, profiled when asked: the exit status, 130/143 when a signal stopped it.
int run_profiled(const ProfileArgs& profile, rt::Model& model, std::vector<std::string> functions,
                 const std::function<void()>& loop) {
  try {
    std::optional<rt::Profiler> profiler;
    if (profile.enabled()) profiler.emplace(model.manifest(), std::move(functions));
    loop();
    if (profiler) profile.finish(*profiler);
  } catch (const rt::StopRequested& stop) {
    fmt::print(stderr, "stag: {}\n", stop.what());
    return stop.exit_code;
  } catch (const rt::Error& e) {
    throw Failure{kExitBadInput, e.what()};
  }
  return kExitOk;
}

// "logits f32[4,10], loss f32[]": values with their types, for errors that list what a model has.
std::string typed_names(const std::vector<std::pair<std::string, const Value*>>& values) {
  std::vector<std::string> parts;
  for (const auto& [name, v] : values) parts.push_back(fmt::format("{} {}", name, to_string(v->type)));
  return fmt::format("{}", fmt::join(parts, ", "));
}

bool is_onnx(const ModelArgs& model) { return model.file.ends_with(".onnx"); }

// An ONNX file holds no loss: training, scoring and predicting need the output --loss names,
// and its label input.
void require_onnx_loss(const ModelArgs& model) {
  if (!is_onnx(model) || !model.loss.empty()) return;
  auto g = model.load();
  std::vector<std::pair<std::string, const Value*>> outputs;
  for (const auto& o : g->outputs) outputs.emplace_back(o.name, o.value);
  throw Failure{kExitUsage, fmt::format("{} has no loss: give --loss KIND:OUTPUT:LABEL, as --loss cross_entropy:{}:y "
                                        "(KIND cross_entropy, mse, huber or bce_with_logits; the model's outputs: {})",
                                        model.file, outputs.at(0).first, typed_names(outputs))};
}

// Nor a data set: without --data an ONNX model would train on whatever the default is.
void require_onnx_flags(const TrainArgs& args, const CLI::App& cmd) {
  require_onnx_loss(args.program.model);
  if (is_onnx(args.program.model) && cmd.get_option("--data")->count() == 0)
    throw Failure{kExitUsage, fmt::format("{} names no data set: give --data fashion-mnist, a directory of IDX files, "
                                          "FEATURES.npy,LABELS.npy or a .csv file", args.program.model.file)};
}

// The training loop feeds one input the examples and one their labels. In an imported model the
// label is the input --loss added last; the data input is the one the ONNX graph has.
void check_onnx_feed(const TrainArgs& args, const Graph& g) {
  if (!is_onnx(args.program.model)) return;
  std::vector<std::pair<std::string, const Value*>> inputs;
  for (Value* v : g.inputs()) inputs.emplace_back(v->name, v);
  if (inputs.size() != 2)
    throw Failure{kExitBadInput, fmt::format("{}: stag train feeds an ONNX model one data input (the examples of --data) and "
                                             "the label input of --loss; the model has {} input{} beside the label: {}",
                                             args.program.model.file, inputs.size() - 1, inputs.size() == 2 ? "" : "s",
                                             typed_names({inputs.begin(), inputs.end() - 1}))};
  fmt::print("onnx: input {} takes the examples of {}, input {} their labels\n", typed_names({inputs[0]}), args.given.data,
             typed_names({inputs[1]}));
}

// The parameters start from an ONNX model's initializers (not the seed's random values), then
// take --init-from, which may be an ONNX file too.
void set_starting_weights(rt::TrainSettings& s) {
  s.initialize = [from = s.init_from](rt::Model& m) { init_training(m, from); };
}

// A GAN's training on one process, or (`dp`) on one of several: each step compiled as its
// gradients and its update, with the processes' average between them.
int run_gan_train(const TrainArgs& args, const CLI::App& cmd, const fe::GanSpec& spec, const rt::Collective* dp = nullptr) {
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  CompiledModel c;
  if (dp) {
    GanGraphs g = gan_split_graphs(args.program, spec, dp->ranks);
    c = compile_jit(gan_split_functions(g), {.profile = args.profile.enabled(), .passes = args.program.model.passes});
  } else {
    c = compile_gan(args.program, spec, args.profile.enabled(), args.separate_steps);
  }
  std::string where = dp ? fmt::format(" on each of {} processes", dp->ranks) : "";
  fmt::print("compiled gan {} (sampling, discriminator and generator steps, {} kernels{}) in {:.0f} ms{}\n", spec.name,
             gan_step_kernels(c.program), cache_note(c.code->times()),
             std::chrono::duration<double, std::milli>(Clock::now() - t0).count(), where);
  rt::TrainSettings settings = rt::settings_from_manifest(c.model->manifest());
  rt::merge_given(cmd, args.given, settings);
  record_start(args.program.model.file, settings);
  if (dp && cmd.get_option("--threads")->count() == 0) settings.threads = dist::threads_per_process();
  rt::GanSettings gan = rt::gan_settings_from_manifest(c.model->manifest());
  try {
    std::optional<GanScorer> scorer;
    if (args.score.enabled()) scorer.emplace(args.score, settings.data, gan.image_low, gan.image_high);
    auto scores = [&](int64_t, rt::LogRecord& rec, std::string& summary) {
      if (!scorer) return;
      auto sc = scorer->generator(*c.model, settings.seed + 1);
      rec.push_back({"classifier_score", sc.classifier_score});
      rec.push_back({"frechet_distance", sc.frechet_distance});
      summary += fmt::format("  classifier_score {:.3f}  frechet_distance {:.3f}", sc.classifier_score, sc.frechet_distance);
    };
    return run_profiled(args.profile, *c.model, {"pair_step", "d_step", "g_step", "d_gradients", "d_update", "g_gradients", "g_update", "forward"},
                        [&] { rt::train_gan(*c.model, settings, gan, scores, dp); });
  } catch (const rt::Error& e) {
    throw Failure{kExitBadInput, e.what()};
  }
}

// One process of a data-parallel run: its share of every global batch, compiled as gradients
// and update, trained with the others (runtime/dist).
int train_parallel(const TrainArgs& args, const CLI::App& cmd, const rt::Collective& dp) {
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  require_onnx_flags(args, cmd);
  auto split = args.program.load_split(dp.ranks);
  check_onnx_feed(args, *split.eval);
  std::unique_ptr<rt::DataPreload> preload = rt::preload_data(data_source(args, cmd, *split.gradients));
  CompiledModel c = compile_jit({{"forward", split.eval.get()}, {"gradients", split.gradients.get()}, {"update", split.update.get()}},
                                {.profile = args.profile.enabled(), .passes = args.program.model.passes});
  fmt::print("compiled {} (inference, gradients and update, {} kernels{}) in {:.0f} ms on each of {} processes\n",
             split.eval->name, c.program.functions[1].kernels.size() + c.program.functions[2].kernels.size() +
             c.program.functions[3].kernels.size(), cache_note(c.code->times()),
             std::chrono::duration<double, std::milli>(Clock::now() - t0).count(), dp.ranks);
  rt::TrainSettings settings = rt::settings_from_manifest(c.model->manifest());
  rt::merge_given(cmd, args.given, settings);
  record_start(args.program.model.file, settings);
  set_starting_weights(settings);
  // The machine's cores shared among its processes, unless --threads says otherwise.
  if (cmd.get_option("--threads")->count() == 0) settings.threads = dist::threads_per_process();
  return run_profiled(args.profile, *c.model, {"gradients", "update", "forward"},
                      [&] { rt::train(*c.model, settings, preload.get(), &dp); });
}

// Under mpirun: rank 0 alone prints; an error on any process ends them all, naming its rank.
int run_distributed(const TrainArgs& args, const CLI::App& cmd) {
  auto gan = find_gan(args.program.model);
  if (gan && gan->kind == fe::GanLookup::Member) refuse_member(args.program.model, gan->spec);
  if (!gan && args.score.enabled()) throw Failure{kExitUsage, "--classifier scores the images of a GAN; this model is not one"};
  try {
    return dist::run_job(args.given.dist_timeout, kExitBadInput, [&](const rt::Collective& dp) {
      try {
        return gan ? run_gan_train(args, cmd, gan->spec, &dp) : train_parallel(args, cmd, dp);
      } catch (const Failure& f) {
        throw dist::JobError(f.exit_code, f.message.empty() ? "see above" : f.message);
      }
    });
  } catch (const rt::Error& e) {  // this stag has no MPI (run_job ends the job on the body's errors)
    throw Failure{kExitUsage, e.what()};
  }
}

int run_train(const TrainArgs& args, const CLI::App& cmd) {
  if (dist::launched_ranks() > 1) return run_distributed(args, cmd);
  if (auto gan = find_gan(args.program.model)) {
    if (gan->kind == fe::GanLookup::Member) refuse_member(args.program.model, gan->spec);
    return run_gan_train(args, cmd, gan->spec);
  }
  if (args.score.enabled()) throw Failure{kExitUsage, "--classifier scores the images of a GAN; this model is not one"};
  require_onnx_flags(args, cmd);
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  auto [eval, step] = args.program.load();
  check_onnx_feed(args, *eval);
  // Reading the data set (gunzip, page faults) takes the other core while this one compiles.
  std::unique_ptr<rt::DataPreload> preload = rt::preload_data(data_source(args, cmd, *step));
  CompiledModel c = compile_jit({{"forward", eval.get()}, {"train_step", step.get()}}, {.profile = args.profile.enabled(), .passes = args.program.model.passes});
  fmt::print("compiled {} (inference and train step, {} kernels{}) in {:.0f} ms\n", eval->name,
             c.program.functions[1].kernels.size() + c.program.functions[2].kernels.size(), cache_note(c.code->times()),
             std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  rt::TrainSettings settings = rt::settings_from_manifest(c.model->manifest());
  rt::merge_given(cmd, args.given, settings);
  record_start(args.program.model.file, settings);
  set_starting_weights(settings);
  // Validation and test passes run the forward function: it gets a table of its own.
  return run_profiled(args.profile, *c.model, {"train_step", "forward"}, [&] { rt::train(*c.model, settings, preload.get()); });
}

// A checkpoint named by a file or a run folder (its best, else its last checkpoint), read.
rt::SafetensorsFile read_weights(const std::string& path) {
  std::string file = rt::resolve_checkpoint(path, rt::Prefer::best).string();
  if (file != path) fmt::print("weights: {}\n", file);
  return rt::read_safetensors(file);
}

struct EvalArgs {
  ModelArgs model;
  std::string weights;
  std::string data = "fashion-mnist";
  std::string plots;  ///< a folder for the ROC, precision-recall and confusion pictures
  ScoreArgs score;    ///< GANs: the classifier that scores the generator
};

int run_eval(const EvalArgs& args) {
  if (auto gan = find_gan(args.model)) {
    if (gan->kind == fe::GanLookup::Pair && !args.plots.empty())
      throw Failure{kExitUsage, "--plots draws a classifier's ROC and confusion pictures; this model is a GAN"};
    if (gan->kind == fe::GanLookup::Pair) return run_gan_eval(args.model, args.weights, args.data, args.score, gan->spec);
  }
  require_onnx_loss(args.model);
  auto graph = args.model.load();
  CompiledModel c = compile_jit(*graph, {.passes = args.model.passes});
  try {
    auto file = read_weights(args.weights);
    c.model->load_model_params(file.tensors, args.weights);
    rt::evaluate(*c.model, args.data, 0, rt::StateMap(file.metadata.begin(), file.metadata.end()), args.plots);
  } catch (const rt::Error& e) {
    throw Failure{kExitBadInput, e.what()};
  }
  return kExitOk;
}

struct PredictArgs {
  ModelArgs model;
  std::string weights;
  std::string data = "fashion-mnist";
  std::string out_dir = ".";
};

int run_predict(const PredictArgs& args) {
  require_onnx_loss(args.model);
  auto graph = args.model.load();
  CompiledModel c = compile_jit(*graph, {.passes = args.model.passes});
  try {
    auto file = read_weights(args.weights);
    c.model->load_model_params(file.tensors, args.weights);
    auto [classes, probs] = rt::predict(*c.model, args.data, rt::StateMap(file.metadata.begin(), file.metadata.end()));
    std::filesystem::create_directories(args.out_dir);
    rt::write_npy(std::filesystem::path(args.out_dir) / "predictions.npy", classes);
    rt::write_npy(std::filesystem::path(args.out_dir) / "probabilities.npy", probs);
    fmt::print("wrote predictions.npy ({}) and probabilities.npy ({}) to {}\n", classes.type_string(), probs.type_string(),
               args.out_dir);
  } catch (const rt::Error& e) {
    throw Failure{kExitBadInput, e.what()};
  }
  return kExitOk;
}

}  // namespace

Command add_predict_command(CLI::App& app) {
  auto args = std::make_shared<PredictArgs>();
  auto* cmd = app.add_subcommand("predict", "Write a model's predictions on the test data as .npy (classes and probabilities)");
  args->model.add_to(*cmd);
  cmd->add_option("--weights", args->weights, "Checkpoint or weights (safetensors), or a run folder: its best.safetensors, else last.safetensors")->required();
  cmd->add_option("--data", args->data, "fashion-mnist, a directory of IDX files, FEATURES.npy,LABELS.npy or a .csv file");
  cmd->add_option("--out-dir", args->out_dir, "Where to write predictions.npy and probabilities.npy");
  return {cmd, [args] { return run_predict(*args); }};
}

Command add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Compile a model's training step and train it (defaults: the model's train section)");
  args->program.add_to(*cmd);
  args->program.add_bucket_option(*cmd);
  rt::add_train_flags(*cmd, args->given);
  args->profile.add_to(*cmd);
  args->score.add_to(*cmd);
  cmd->add_flag("--separate-steps", args->separate_steps,
                "GANs: compile the discriminator's and the generator's steps apart, not as one pair step (same results)");
  return {cmd, [args, cmd] { return run_train(*args, *cmd); }};
}

Command add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Score a model's weights (a checkpoint) on the test data");
  args->model.add_to(*cmd);
  cmd->add_option("--weights", args->weights, "Checkpoint or weights (safetensors), or a run folder: its best.safetensors, else last.safetensors")->required();
  cmd->add_option("--data", args->data, "fashion-mnist, or a directory of IDX files");
  cmd->add_option("--plots", args->plots,
                  "Draw roc.svg, precision_recall.svg and confusion.svg of a classifier into this folder (created if missing)");
  args->score.add_to(*cmd);
  return {cmd, [args] { return run_eval(*args); }};
}

}  // namespace stag::cli
