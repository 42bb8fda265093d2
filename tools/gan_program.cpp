// Finds a model file's GAN and compiles it: both models lowered in training mode, each with the
// optimizer of its own train section, assembled into three functions over shared parameters.

#include "tools/gan_program.h"

#include <fmt/format.h>

#include "compiler/train/gan.h"
#include "compiler/train/train_step.h"
#include "frontend/load.h"
#include "runtime/data/dataset.h"
#include "runtime/gan_trainer.h"
#include "runtime/run_dir.h"
#include "runtime/safetensors.h"
#include "runtime/trainer.h"

namespace stag::cli {

namespace {

[[noreturn]] void fail_with(const Diagnostics& diags) {
  fmt::print(stderr, "{}", diags.render());
  throw Failure{kExitBadInput, {}};
}

std::unique_ptr<Graph> load_member(const ModelArgs& args, const std::string& name) {
  ModelArgs member = args;
  member.model = name;
  member.train = true;
  return member.load();
}

OptimizerConfig optimizer_for(const TrainProgramArgs& program, const Graph& g) {
  OptimizerConfig opt = optimizer_from_attrs(g);
  if (!program.optimizer.empty()) opt.kind = program.optimizer;
  if (program.weight_decay >= 0) opt.weight_decay = program.weight_decay;
  if (program.momentum >= 0) opt.momentum = program.momentum;
  if (program.grad_clip >= 0) opt.clip_norm = program.grad_clip;
  return opt;
}

/// The settings the runtime reads from the manifest: the first function's graph attributes.
void set_run_attrs(Graph& sample, const Graph& gen, const Graph& disc, const fe::GanSpec& spec) {
  sample.attrs.clear();
  for (const auto& [k, v] : gen.attrs)
    if (k == "batch" || k == "train.epochs" || k == "train.data" || k == "train.seed") sample.set_attr(k, v);
  if (spec.epochs) sample.set_attr("train.epochs", *spec.epochs);
  if (spec.data) sample.set_attr("train.data", *spec.data);
  if (const Attr* lr = gen.attr("train.lr")) sample.set_attr("gan.generator.lr", *lr);
  if (const Attr* lr = disc.attr("train.lr")) sample.set_attr("gan.discriminator.lr", *lr);
  sample.set_attr("gan.d_steps", spec.d_steps);
  sample.set_attr("gan.loss", spec.loss);
  sample.set_attr("gan.real_range", Floats{spec.real_low, spec.real_high});
  sample.set_attr("gan.generator", spec.generator);
  sample.set_attr("gan.discriminator", spec.discriminator);
}

}  // namespace

std::optional<fe::GanLookup> find_gan(const ModelArgs& args) {
  if (!args.file.ends_with(".stag")) return std::nullopt;
  std::string error;
  auto text = read_source(args.file, error);
  if (!text) throw Failure{kExitUsage, error};
  Diagnostics diags;
  diags.add_source(args.file, *text);
  auto found = fe::find_gan(*text, args.file, args.model, diags);
  if (!found) fail_with(diags);
  if (found->kind == fe::GanLookup::None) return std::nullopt;
  return found;
}

void refuse_member(const ModelArgs& args, const fe::GanSpec& spec) {
  Diagnostics diags;
  std::string error;
  if (auto text = read_source(args.file, error)) diags.add_source(args.file, *text);
  bool gen = args.model == spec.generator;
  diags.error(spec.loc, fmt::format("'{}' is the {} of gan '{}' and does not train alone; `stag train {}` trains the pair",
                                    args.model, gen ? "generator" : "discriminator", spec.name, args.file));
  fail_with(diags);
}

namespace {

GanGraphs build_graphs(const TrainProgramArgs& program, const fe::GanSpec& spec, bool split) {
  auto gen = load_member(program.model, spec.generator);
  auto disc = load_member(program.model, spec.discriminator);
  GanOptions o{spec.name, spec.loss, spec.real_low, spec.real_high, optimizer_for(program, *gen), optimizer_for(program, *disc), split};
  Diagnostics diags;
  std::string error;
  if (auto text = read_source(program.model.file, error)) diags.add_source(program.model.file, *text);
  auto graphs = build_gan(*gen, *disc, o, spec.loc, diags);
  if (!graphs) fail_with(diags);
  set_run_attrs(*graphs->sample, *gen, *disc, spec);
  graphs->sample->name = spec.name;
  return std::move(*graphs);
}

}  // namespace

GanGraphs gan_graphs(const TrainProgramArgs& program, const fe::GanSpec& spec) { return build_graphs(program, spec, false); }

GanGraphs gan_split_graphs(const TrainProgramArgs& program, const fe::GanSpec& spec, int processes) {
  TrainProgramArgs local = program;
  int64_t global = program.model.batch;
  if (global <= 0) {
    std::unique_ptr<Graph> generator = load_member(program.model, spec.generator);  // owns `batch`
    const Attr* batch = generator->attr("batch");
    if (!batch) throw Failure{kExitUsage, "training across processes splits the batch: give --batch or a `batch` in the generator"};
    global = std::get<int64_t>(*batch);
  }
  if (global % processes != 0)
    throw Failure{kExitUsage, fmt::format("the batch {} does not split evenly over {} processes", global, processes)};
  local.model.batch = global / processes;
  GanGraphs g = build_graphs(local, spec, true);
  g.sample->set_attr("dp.processes", int64_t{processes});
  g.sample->set_attr("dp.bucket_bytes", static_cast<int64_t>(program.bucket_mb * 1024 * 1024));
  return g;
}

std::vector<std::pair<std::string, const Graph*>> gan_split_functions(const GanGraphs& g) {
  return {{"forward", g.sample.get()}, {"d_gradients", g.d_step.get()}, {"d_update", g.d_update.get()},
          {"g_gradients", g.g_step.get()}, {"g_update", g.g_update.get()}};
}

std::vector<std::pair<std::string, const Graph*>> gan_functions(GanGraphs& g, const fe::GanSpec& spec, bool separate) {
  if (spec.d_steps != 1 || separate) return {{"forward", g.sample.get()}, {"d_step", g.d_step.get()}, {"g_step", g.g_step.get()}};
  g.pair_step = build_pair_step(*g.d_step, *g.g_step);
  return {{"forward", g.sample.get()}, {"pair_step", g.pair_step.get()}};
}

size_t gan_step_kernels(const kir::Program& p) {
  size_t n = 0;
  for (const auto& f : p.functions)
    if (f.name != "forward") n += f.kernels.size();
  return n;
}

CompiledModel compile_gan(const TrainProgramArgs& program, const fe::GanSpec& spec, bool profile, bool separate) {
  GanGraphs g = gan_graphs(program, spec);
  return compile_jit(gan_functions(g, spec, separate), {.profile = profile, .passes = program.model.passes});
}

CompiledModel compile_gan_sampler(const ModelArgs& model, const fe::GanSpec& spec) {
  TrainProgramArgs program;
  program.model = model;
  GanGraphs g = gan_graphs(program, spec);
  return compile_jit({{"forward", g.sample.get()}}, {.passes = model.passes});
}

void ScoreArgs::add_to(CLI::App& app) {
  app.add_option("--classifier", model, "A classifier (.stag with `logits` and `features` outputs) to score generated images");
  app.add_option("--classifier-weights", weights, "Its trained weights (safetensors), or its run folder (best.safetensors)");
  app.add_option("--score-count", count, "Generated images to score (default 10000)")->check(CLI::Range(int64_t{2}, int64_t{1000000}));
}

GanScorer::GanScorer(const ScoreArgs& args, const std::string& data, double low, double high)
    : count_(args.count), low_(low), high_(high) {
  if (args.weights.empty()) throw Failure{kExitUsage, "--classifier needs --classifier-weights"};
  ModelArgs m;
  m.file = args.model;
  classifier_ = compile_jit(*m.load());
  std::string path = rt::resolve_checkpoint(args.weights, rt::Prefer::best).string();
  auto file = rt::read_safetensors(path);
  classifier_.model->load_model_params(file.tensors, path);
  rt::Dataset test = rt::load_example_split(data, true);
  rt::materialize_features(test);
  test_ = std::move(test.features);
  real_ = rt::classify(*classifier_.model, test_, test_.shape().at(0));
}

GanScorer::Scores GanScorer::images(const rt::Tensor& images01, int64_t n) {
  auto v = rt::classify(*classifier_.model, images01, n);
  return {rt::classifier_score(v), rt::frechet_distance(v, real_)};
}

GanScorer::Scores GanScorer::generator(rt::Model& gan, uint64_t seed) {
  rt::Tensor images = rt::generate_images(gan, rt::gan_noise(gan.manifest(), count_, seed));
  for (float& x : images.values<float>()) x = static_cast<float>((x - low_) / (high_ - low_));
  return this->images(images, count_);
}

}  // namespace stag::cli
