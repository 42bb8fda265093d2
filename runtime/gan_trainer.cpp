// The GAN training loop. An iteration is d_steps discriminator steps, each on the next real
// batch, then one generator step (with one D step, both are one compiled `pair_step` when the
// program has it); the noise of each step is drawn inside the compiled code from an i64 key, a
// pure function of the seed and the step number, so a resumed run draws the same. Under data
// parallelism each step is its gradients, on this process's rows of the global batch (and of the
// noise: the key, the rank), the average over the processes, then its update.

#include "runtime/gan_trainer.h"

#include "runtime/exchange.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <nlohmann/json.hpp>
#include <optional>

#include "runtime/data/loader.h"
#include "runtime/data/rng.h"
#include "runtime/error.h"
#include "runtime/image.h"
#include "runtime/progress.h"
#include "runtime/replicas.h"
#include "runtime/run_dir.h"
#include "runtime/safetensors.h"
#include "runtime/state_map.h"
#include "runtime/stop_signal.h"
#include "runtime/thread_pool.h"

namespace stag::rt {

namespace {

namespace fs = std::filesystem;

int index_of(const std::vector<BufferSpec>& specs, const std::string& name, const std::string& function) {
  for (size_t i = 0; i < specs.size(); ++i)
    if (specs[i].name == name) return static_cast<int>(i);
  throw Error(fmt::format("{} has no '{}': not a GAN program", function, name));
}

const FunctionSpec* find_function(const Manifest& m, const std::string& name) {
  for (const auto& f : m.functions)
    if (f.name == name) return &f;
  return nullptr;
}

/// Standard normal numbers by Box-Muller over the portable splitmix64 draws.
void fill_normal(std::span<float> out, uint64_t seed) {
  Rng rng(seed);
  for (size_t i = 0; i < out.size(); i += 2) {
    double u1 = 1.0 - rng.uniform01(), u2 = rng.uniform01();
    double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * std::numbers::pi * u2;
    out[i] = static_cast<float>(r * std::cos(a));
    if (i + 1 < out.size()) out[i + 1] = static_cast<float>(r * std::sin(a));
  }
}

/// Running means of one epoch's step outputs.
struct Means {
  std::vector<std::pair<std::string, double>> sums;
  int64_t count = 0;

  void add(const std::string& name, double v) {
    for (auto& [n, s] : sums)
      if (n == name) return (void)(s += v);
    sums.push_back({name, v});
  }
  double mean(const std::string& name) const {
    for (const auto& [n, s] : sums)
      if (n == name) return count ? s / static_cast<double>(count) : 0.0;
    return 0.0;
  }
};

/// A step's outputs by name.
using Outputs = std::map<std::string, Tensor>;

/// One run: the model, its two steps' argument slots, the data and where the run stands.
struct GanRun {
  GanRun(Model& m, const TrainSettings& settings, const GanSettings& gan, GanEpochHook hook, const Collective* collective)
      : model(m), s(settings), g(gan), on_epoch(std::move(hook)), dp(collective) {}

  Model& model;
  const TrainSettings& s;
  const GanSettings& g;
  GanEpochHook on_epoch;
  const Collective* dp;  ///< data parallelism: this process's rank and the others; null alone
  /// The pair step when compiled, else the discriminator's step and the generator's; split (data
  /// parallelism), their gradients, each followed by its update (d_update, g_update).
  const FunctionSpec* pair_fn = find_function(model.manifest(), "pair_step");
  bool split = find_function(model.manifest(), "d_gradients") != nullptr;
  const FunctionSpec& d_fn = pair_fn ? *pair_fn : model.manifest().function(split ? "d_gradients" : "d_step");
  const FunctionSpec* g_fn = pair_fn ? nullptr : &model.manifest().function(split ? "g_gradients" : "g_step");
  int64_t local_batch = d_fn.inputs[index_of(d_fn.inputs, "x", d_fn.name)].shape[0];  ///< the compiled steps'
  int64_t batch = local_batch * (dp ? dp->ranks : 1);  ///< the global batch, every process's rows
  Tensor rank = Tensor::from<int64_t>({}, {dp ? dp->rank : 0});
  std::vector<float> reduce_buf;
  /// Data parallelism with split points in the compiled steps (dp.bucket.N): the buckets' all-reduces.
  std::optional<BucketExchange> buckets = make_buckets(model, dp);
  /// Data parallelism: the signal some process was stopped by, as all agreed at the last
  /// all-reduce (0: none), so that every process stops after the same step.
  int stop_agreed = 0;
  Dataset data = load_example_split(s.data, false);
  std::optional<BatchIterator> loader;
  int64_t d_steps_done = 0;  ///< discriminator steps taken; the generator's are d_steps_done / d_steps
  Tensor key = Tensor::from<int64_t>({}, {0});
  Tensor lr_d = Tensor::from<float>({}, {static_cast<float>(g.lr_discriminator)});
  Tensor lr_g = Tensor::from<float>({}, {static_cast<float>(g.lr_generator)});
  std::optional<JsonLinesWriter> user_log, folder_log;
  std::optional<RunFolder> folder;
  Tensor fixed_z;
  int64_t saved_step = -1;

  void log(const LogRecord& rec) {
    if (user_log) user_log->write(rec);
    if (folder_log) folder_log->write(rec);
  }

  int64_t key_of(int64_t d_step) const { return static_cast<int64_t>(s.seed) * (int64_t{1} << 40) + d_step; }

  void check_data() {
    const BufferSpec& x = d_fn.inputs[index_of(d_fn.inputs, "x", d_fn.name)];
    if (data.feature_dtype() != DType::f32 || Shape(x.shape.begin() + 1, x.shape.end()) !=
                                                  Shape(data.feature_shape().begin() + 1, data.feature_shape().end()))
      throw Error(fmt::format("the discriminator takes images {}{}, but the data has rows of {}", dtype_name(x.dtype),
                              shape_to_string(x.shape), data.feature_type_string()));
  }

  /// The tensor a step's input `name` takes: the real batch, the key, the rank, a model's
  /// learning rate.
  const Tensor* argument(const FunctionSpec& f, const std::string& name, const Tensor* x) {
    if (name == "x") return x;
    if (name == "key") return &key;
    if (name == "dp.rank") return &rank;
    if (name == "lr_g" || (name == "lr" && f.name.starts_with("g_"))) return &lr_g;
    if (name == "lr") return &lr_d;
    throw Error(fmt::format("{} takes an input '{}' the GAN trainer does not know", f.name, name));
  }

  static std::optional<BucketExchange> make_buckets(Model& m, const Collective* dp) {
    std::vector<BucketSpec> specs = bucket_specs(m.manifest());
    if (!dp || specs.empty()) return std::nullopt;
    return std::optional<BucketExchange>(std::in_place, *dp, std::move(specs), m.manifest().functions);
  }

  /// `f`'s outputs; with buckets, a gradients function writes its averaged values into their
  /// block, where its update finds their means.
  Outputs run(const FunctionSpec& f, const Tensor* x) {
    std::vector<const Tensor*> args;
    for (const auto& in : f.inputs) args.push_back(argument(f, in.name, x));
    std::vector<Tensor> values;
    if (buckets && split) {
      values = buckets->outputs(f);
      model.run(f.name, args, values);
    } else {
      values = model.run(f.name, args);
    }
    Outputs out;
    for (size_t i = 0; i < values.size(); ++i) out[f.outputs[i].name] = std::move(values[i]);
    return out;
  }

  /// A split step: `gradients` on this process's rows; the loss, the other scalars (D's
  /// accuracies) and the gradients averaged over the processes, with the stop votes; then the
  /// update, whose `nonfinite` joins the outputs.
  Outputs run_split(const FunctionSpec& gradients, const std::string& update, const Tensor* x) {
    if (buckets) buckets->rider = stop_vote(stop_signal());
    Outputs out = run(gradients, x);
    if (!buckets) average(out);
    const FunctionSpec& u = model.manifest().function(update);
    std::vector<const Tensor*> args;
    for (const auto& in : u.inputs) {
      auto it = out.find(in.name);
      args.push_back(it != out.end() ? &it->second : argument(u, in.name, x));
    }
    out["nonfinite"] = std::move(model.run(update, args)[0]);
    if (buckets) stop_agreed = agreed_stop(buckets->rider, dp->ranks);
    return out;
  }

  /// The loss, the other scalars (D's accuracies) and the gradients averaged through one buffer
  /// after the backward, with the stop votes.
  void average(Outputs& out) {
    std::vector<Tensor*> shared;
    for (auto& [name, t] : out)
      if (name.starts_with("grad.") || (t.dtype() == DType::f32 && t.shape().empty())) shared.push_back(&t);
    stop_agreed = agreed_stop(average_over_ranks(*dp, shared, stop_vote(stop_signal()), reduce_buf), dp->ranks);
  }

  Outputs run_step(const FunctionSpec& f, const Tensor* x) {
    if (!split) return run(f, x);
    return run_split(f, &f == &d_fn ? "d_update" : "g_update", x);
  }

  // A step's `nonfinite` flags (compiler/train/train_step.h; `flags` names them): the compiled
  // step kept the old state when one is set. A non-finite loss (the first flag) is left to
  // scalar()'s message.
  void check_applied(const Outputs& out, const std::string& flags_name, const char* step_name) const {
    auto it = out.find(flags_name);
    if (it == out.end()) return;
    auto flags = it->second.values<float>();
    if (flags.empty() || flags[0] != 0) return;
    if (std::any_of(flags.begin(), flags.end(), [](float v) { return v != 0; }))
      throw Error(fmt::format("a gradient of {} was not finite at step {}; the step was not applied; lower the learning rate",
                              step_name, d_steps_done));
  }

  double scalar(const FunctionSpec& f, const Outputs& out, const std::string& name) {
    auto it = out.find(name);
    if (it == out.end()) throw Error(fmt::format("{} has no '{}': not a GAN program", f.name, name));
    double v = it->second.values<float>()[0];
    if (!std::isfinite(v))
      throw Error(fmt::format("the {} of {} became {} at step {}; lower the learning rate", name, f.name, v, d_steps_done));
    return v;
  }

  /// A discriminator step on `real` (this process's rows of it), and the generator's step when an
  /// iteration is complete.
  void step(const Tensor& real, Means& m, LogRecord& rec) {
    key.values<int64_t>()[0] = key_of(d_steps_done);
    Tensor rows = dp ? rows_of(real, dp->rank * local_batch, local_batch) : Tensor();
    auto d = run_step(d_fn, dp ? &rows : &real);
    check_applied(d, "nonfinite", "d_step");
    for (const char* name : {"loss", "d_real_accuracy", "d_fake_accuracy", "d_real", "d_fake"}) {
      double v = scalar(d_fn, d, name);
      std::string key_name = std::string(name) == "loss" ? "loss_d" : name;
      m.add(key_name, v);
      rec.push_back({key_name, v});
    }
    ++d_steps_done;
    if (d_steps_done % g.d_steps != 0) return;
    double loss_g = pair_fn ? generator_loss(*pair_fn, d, "_g") : generator_loss(*g_fn, run_step(*g_fn, nullptr), "");
    m.add("loss_g", loss_g * static_cast<double>(g.d_steps));
    rec.push_back({"loss_g", loss_g});
  }

  /// The generator step's loss from the outputs of `f`, whose names carry `suffix`.
  double generator_loss(const FunctionSpec& f, const Outputs& out, const std::string& suffix) {
    check_applied(out, "nonfinite" + suffix, "g_step");
    return scalar(f, out, "loss" + suffix);
  }

  bool lead() const { return !dp || dp->rank == 0; }
  bool stopping() const { return dp ? stop_agreed != 0 : stop_requested(); }

  StateMap state() const {
    StateMap st = loader->state().save();
    st["step"] = std::to_string(d_steps_done);
    st["model"] = model.manifest().model;
    return st;
  }

  void checkpoint() {
    saved_step = d_steps_done;
    if (!lead()) return;
    std::vector<NamedTensor> tensors;
    for (size_t i = 0; i < model.params().size(); ++i) tensors.push_back({model.manifest().params[i].name, &model.params()[i]});
    StateMap st = state();
    if (folder) write_safetensors(folder->last(), tensors, st);
    if (!s.checkpoint.empty()) write_safetensors(s.checkpoint, tensors, st);
    saved_step = d_steps_done;
  }

  std::string saved_where() const {
    if (folder) return fmt::format("checkpoint: {}; continue with --resume {}", folder->last().string(), folder->dir.string());
    if (!s.checkpoint.empty()) return fmt::format("checkpoint: {}; continue with --resume {}", s.checkpoint, s.checkpoint);
    return "nothing saved (--no-save and no --checkpoint)";
  }

  // Under data parallelism every process stops after the same step, rank 0 saving; a process the
  // signal has not reached yet stops by the others'.
  void stop() {
    if (saved_step != d_steps_done) checkpoint();
    int signal = stop_signal() != 0 ? stop_signal() : stop_agreed;
    throw_stop(d_steps_done, lead() ? saved_where() : "rank 0 saves the checkpoint", signal);
  }

  void open_folder() {
    if (!s.save || !lead()) return;
    if (!s.run_dir.empty()) folder = RunFolder::open(s.run_dir);
    else if (!s.resume.empty() && fs::is_directory(s.resume)) folder = RunFolder{s.resume};
    else folder = RunFolder::create_next("runs", model.manifest().model);
    LogRecord settings = train_settings_record(s);
    settings.push_back({"ranks", int64_t{dp ? dp->ranks : 1}});
    settings.push_back({"d_steps", g.d_steps});
    settings.push_back({"lr_generator", g.lr_generator});
    settings.push_back({"lr_discriminator", g.lr_discriminator});
    folder->write_run_json({s.command, model.manifest().model, s.model_hash, s.model_hash_of, s.seed, stag_get_num_threads(), settings});
    folder_log.emplace(folder->log(), s.resume.empty());
  }

  void report() const {
    if (!s.checkpoint.empty()) fmt::print("checkpoint: {}\n", s.checkpoint);
    if (folder)
      fmt::print("run folder {}: last.safetensors (step {}), samples/epoch-NNN.png, log.jsonl, run.json\n", folder->dir.string(),
                 d_steps_done);
  }

  /// Returns true when --max-steps (counted in discriminator steps) ends the run.
  bool epoch(int64_t e) {
    int64_t per_epoch = loader->plan().batches_per_epoch();
    ProgressBar bar(stdout, fmt::format("epoch {}/{}", e + 1, s.epochs), per_epoch * batch, progress_options_for(stdout));
    Means m;
    int64_t done = loader->state().position * batch;
    double t0 = steady_seconds();
    bool stop = false;
    while (auto b = loader->next()) {
      LogRecord rec = {{"event", std::string("step")}, {"step", d_steps_done + 1}, {"epoch", e + 1}};
      step(b->features, m, rec);
      ++m.count;
      done += b->size;
      bar.update(done, m.mean("loss_d"));
      log(rec);
      bool boundary = d_steps_done % g.d_steps == 0;
      if (boundary && dp && s.check_replicas > 0 && d_steps_done % s.check_replicas == 0) check_replicas(*dp, model, d_steps_done);
      if (boundary && s.checkpoint_every > 0 && d_steps_done % s.checkpoint_every == 0) checkpoint();
      if (boundary && stopping()) {
        bar.finish("(stopping)");
        this->stop();
      }
      if (boundary && s.max_steps > 0 && d_steps_done >= s.max_steps) {
        stop = true;
        break;
      }
    }
    end_epoch(e, m, steady_seconds() - t0, bar);
    return stop;
  }

  void end_epoch(int64_t e, const Means& m, double seconds, ProgressBar& bar) {
    LogRecord rec = {{"event", std::string("epoch")}, {"epoch", e + 1}, {"step", d_steps_done}, {"seconds", seconds}};
    std::string summary;
    for (const auto& [name, sum] : m.sums) {
      rec.push_back({name, m.mean(name)});
      summary += fmt::format("  {} {:.4f}", name, m.mean(name));
    }
    double rate = seconds > 0 ? static_cast<double>(m.count * batch) / seconds : 0.0;
    rec.push_back({"examples_per_second", rate});
    hook(e, rec, summary);
    bar.finish(summary.empty() ? summary : summary.substr(2));
    log(rec);
    if (folder) write_grid(e);
    checkpoint();
  }

  /// The generator's images of the fixed noise, as samples/epoch-NNN.png in the run folder.
  void write_grid(int64_t e) {
    Tensor images = generate_images(model, fixed_z);
    fs::create_directories(folder->dir / "samples");
    GridOptions o;
    o.scale = 2;
    o.low = static_cast<float>(g.image_low);
    o.high = static_cast<float>(g.image_high);
    write_image_grid((folder->dir / "samples" / fmt::format("epoch-{:03}.png", e + 1)).string(), images, o);
  }

  void hook(int64_t e, LogRecord& rec, std::string& summary) {
    if (on_epoch && lead()) on_epoch(e + 1, rec, summary);
  }

  void resume() {
    std::string path = resolve_checkpoint(s.resume, Prefer::last).string();
    auto file = read_safetensors(path);
    StateMap meta(file.metadata.begin(), file.metadata.end());
    if (meta.count("model") && meta.at("model") != model.manifest().model)
      throw Error(fmt::format("{} is a checkpoint of '{}', not of the GAN '{}'", path, meta.at("model"), model.manifest().model));
    model.load_params(file.tensors, path);
    d_steps_done = parse_int(state_get(meta, "step"), "step");
    loader->restore(LoaderState::restore(meta));
    fmt::print("resumed from {} at epoch {}, step {}\n", path, loader->state().epoch + 1, d_steps_done);
    saved_step = d_steps_done;
  }

  void start() {
    if (pair_fn && g.d_steps != 1)
      throw Error(fmt::format("the program's pair_step takes one discriminator step per generator step, but d_steps is {}", g.d_steps));
    check_data();
    std::vector<int64_t> all(static_cast<size_t>(data.size()));
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
    LoaderOptions o;
    o.batch_size = batch;
    loader.emplace(data, std::move(all), o, s.seed);
    if (loader->plan().batches_per_epoch() < g.d_steps)
      throw Error(fmt::format("the data has {} examples, fewer than {} batches of {}", data.size(), g.d_steps, batch));
    model.init(static_cast<int64_t>(s.seed));
    if (!s.resume.empty()) resume();
    if (!s.log.empty() && lead()) user_log.emplace(s.log, s.resume.empty());
    open_folder();
    fixed_z = gan_noise(model.manifest(), g.grid_count, s.seed);
  }
};

}  // namespace

bool is_gan(const Manifest& m) {
  int found = 0;
  for (const auto& f : m.functions) found += f.name == "d_step" || f.name == "g_step";
  for (const auto& f : m.functions) found += f.name == "d_gradients" || f.name == "g_gradients";
  return found == 2 || find_function(m, "pair_step");
}

GanSettings gan_settings_from_manifest(const Manifest& m) {
  GanSettings g;
  auto get = [&](const char* key) -> std::optional<nlohmann::json> {
    auto it = m.attrs.find(key);
    if (it == m.attrs.end()) return std::nullopt;
    return nlohmann::json::parse(it->second);
  };
  if (auto v = get("gan.d_steps")) g.d_steps = v->get<int64_t>();
  if (auto v = get("gan.generator.lr")) g.lr_generator = v->get<double>();
  if (auto v = get("gan.discriminator.lr")) g.lr_discriminator = v->get<double>();
  if (auto v = get("gan.real_range")) {
    g.image_low = v->at(0).get<double>();
    g.image_high = v->at(1).get<double>();
  }
  return g;
}

Tensor gan_noise(const Manifest& m, int64_t rows, uint64_t seed) {
  const BufferSpec& z = m.function("forward").inputs.at(0);
  int64_t batch = z.shape.at(0), padded = (rows + batch - 1) / batch * batch;
  Shape shape = z.shape;
  shape[0] = padded;
  Tensor t(DType::f32, shape);
  // The first `rows` numbers do not depend on the padding.
  auto v = t.values<float>();
  fill_normal(v.subspan(0, v.size() / static_cast<size_t>(padded) * static_cast<size_t>(rows)), derive_seed(seed, RngStream::augment, 0x6a4e));
  return t;
}

Tensor generate_images(Model& model, const Tensor& z) {
  const FunctionSpec& f = model.manifest().function("forward");
  int64_t batch = f.inputs.at(0).shape.at(0), n = z.shape().at(0);
  Shape image = f.outputs.at(0).shape;
  Shape all = image;
  all[0] = n;
  Tensor out(DType::f32, all);
  Shape one = f.inputs[0].shape;
  size_t in_row = z.values<float>().size() / static_cast<size_t>(n), out_row = out.values<float>().size() / static_cast<size_t>(n);
  for (int64_t b = 0; b + batch <= n; b += batch) {
    auto zs = z.values<float>().subspan(static_cast<size_t>(b) * in_row, static_cast<size_t>(batch) * in_row);
    Tensor zb = Tensor::from<float>(one, zs);
    auto result = model.run("forward", {&zb});
    auto img = result[0].values<float>();
    std::copy(img.begin(), img.end(), out.values<float>().begin() + static_cast<ptrdiff_t>(static_cast<size_t>(b) * out_row));
  }
  return out;
}

void train_gan(Model& model, const TrainSettings& s, const GanSettings& g, const GanEpochHook& on_epoch, const Collective* dp) {
  StopSignalScope signals;
  if (s.threads > 0) stag_set_num_threads(s.threads);
  bool split = find_function(model.manifest(), "d_gradients") != nullptr;
  if (dp && !split)
    throw Error("training a GAN across processes needs its steps compiled as gradients and updates (d_gradients, g_gradients)");
  if (!dp && split) throw Error("this GAN program's steps are split for data parallelism: start it with mpirun");
  GanRun run(model, s, g, on_epoch, dp);
  run.start();
  std::string processes = dp ? fmt::format(", {} processes of {} examples each", dp->ranks, run.local_batch) : "";
  fmt::print("training GAN {} on {}: {} images, batch {}, {} discriminator step{} per generator step, {} threads{}\n",
             model.manifest().model, s.data, run.data.size(), run.batch, g.d_steps, g.d_steps == 1 ? "" : "s",
             stag_get_num_threads(), processes);
  bool stopped = false;
  for (int64_t e = run.loader->state().epoch; e < s.epochs && !stopped; ++e) stopped = run.epoch(e);
  if (run.saved_step != run.d_steps_done) run.checkpoint();
  run.report();
}

}  // namespace stag::rt
