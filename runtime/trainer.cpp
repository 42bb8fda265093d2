// The training loop. Every step is a call of the compiled train_step; the loop only moves
// data, picks the learning rate, and keeps score. A run is a pure function of the settings,
// the seed and the thread count: data order, augmentation and dropout are all keyed by
// (seed, epoch, step), so a resumed run repeats the uninterrupted one bit for bit.

#include "runtime/trainer.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <future>
#include <limits>
#include <nlohmann/json.hpp>
#include <system_error>

#include "runtime/data/csv.h"
#include "runtime/data/idx.h"
#include "runtime/data/normalize.h"
#include "runtime/data/npy_data.h"
#include "runtime/data/text.h"
#include "runtime/data/loader.h"
#include "runtime/data/split.h"
#include "runtime/error.h"
#include "runtime/metrics.h"
#include "runtime/progress.h"
#include "runtime/safetensors.h"
#include "runtime/schedule.h"
#include "runtime/state_map.h"
#include "runtime/thread_pool.h"

namespace stag::rt {

namespace {

namespace fs = std::filesystem;

std::optional<nlohmann::json> attr(const Manifest& m, const std::string& key) {
  auto it = m.attrs.find(key);
  if (it == m.attrs.end()) return std::nullopt;
  return nlohmann::json::parse(it->second);
}

// The frontend's schedule (train.schedule and its fields) in parse_schedule's spelling.
std::string schedule_spelling(const Manifest& m) {
  auto kind = attr(m, "train.schedule");
  if (!kind) return "constant";
  auto field = [&](const std::string& name, double fallback) {
    auto v = attr(m, "train.schedule." + name);
    return v ? v->get<double>() : fallback;
  };
  std::string k = kind->get<std::string>();
  auto num = [](double v) { return format_double(v); };
  if (k == "step") return fmt::format("step:{}:{}", field("step_size", 1), num(field("gamma", 0.1)));
  if (k == "exponential") return fmt::format("exponential:{}", num(field("gamma", 0.1)));
  if (k == "cosine") return fmt::format("cosine:{}:{}", field("t_max", 1), num(field("eta_min", 0)));
  if (k == "warmup_cosine")
    return fmt::format("warmup:{}+cosine:{}:{}", field("warmup", 0), field("t_max", 1), num(field("eta_min", 0)));
  if (k == "multistep") {
    auto ms = attr(m, "train.schedule.milestones");
    std::vector<int64_t> milestones = ms ? ms->get<std::vector<int64_t>>() : std::vector<int64_t>{};
    return fmt::format("multistep:{}:{}", fmt::join(milestones, ","), num(field("gamma", 0.1)));
  }
  return k;
}

// Schedules whose t counts epochs (as StepLR and friends are used with PyTorch), the others
// count optimizer steps (warmup and cosine schedules of language models).
bool counts_epochs(const std::string& schedule) {
  for (const char* p : {"step:", "multistep:", "exponential:", "plateau"})
    if (schedule.starts_with(p)) return true;
  return false;
}

struct Data {
  Dataset train, test;
  bool has_test = false;
  std::vector<std::string> class_names;
  std::optional<CharTable> chars;  ///< a language model's token table
};

// A character-level corpus as token ids for a model with `vocab` symbols (CharTable::build).
std::vector<int64_t> tokenize(const std::string& text, const CharTable& table) {
  fmt::print("text: {} bytes, {} symbols{}\n", text.size(), table.bytes.size() + (table.other >= 0),
             table.other >= 0 ? fmt::format(" (the rarest bytes share id {})", table.other) : "");
  return table.encode(text);
}

// Text for a language model with inputs [B, T] of ids below `vocab`: sequences of T tokens,
// targets shifted by one.
Data load_text(const std::string& path, int64_t seq_len, int64_t vocab) {
  Data d;
  std::string text = read_text_corpus(path);
  d.chars = CharTable::build(text, vocab);
  auto tokens = tokenize(text, *d.chars);
  d.train = make_sequences(tokens, seq_len);
  return d;
}

// A model whose data input is token ids [B, T] reads text; others read examples.
bool reads_text(const BufferSpec& features) { return features.dtype == DType::i64 && features.shape.size() == 2; }

// The example data sets: the source names one without the model's help.
bool is_examples_source(const std::string& source) {
  fs::path dir = source;
  return source == "fashion-mnist" || (fs::is_directory(dir) && fs::exists(dir / "train-images-idx3-ubyte.gz")) ||
         (source.find(',') != std::string::npos && source.ends_with(".npy")) || source.ends_with(".csv");
}

Data load_examples(const std::string& source);

Data load_data(const std::string& source, const BufferSpec& features, int64_t vocab) {
  if (reads_text(features)) {
    std::string path = source == "fortunes" ? kFortunesDir : source;
    return load_text(path, features.shape[1], vocab);
  }
  return load_examples(source);
}

Data load_examples(const std::string& source) {
  Data d;
  if (source == "fashion-mnist") {
    d.train = load_fashion_mnist("train");
    d.test = load_fashion_mnist("test");
    d.has_test = true;
    d.class_names = fashion_mnist_classes();
    return d;
  }
  fs::path dir = source;
  if (fs::is_directory(dir) && fs::exists(dir / "train-images-idx3-ubyte.gz")) {
    d.train = load_fashion_mnist("train", dir);
    d.test = load_fashion_mnist("test", dir);
    d.has_test = true;
    return d;
  }
  if (auto comma = source.find(','); comma != std::string::npos && source.ends_with(".npy")) {
    d.train = load_npy_dataset(source.substr(0, comma), source.substr(comma + 1));
    return d;
  }
  if (source.ends_with(".csv")) {
    d.train = load_csv(source);
    return d;
  }
  throw Error(fmt::format("data '{}': expected \"fashion-mnist\", a directory of Fashion-MNIST-style IDX files "
                          "(train-images-idx3-ubyte.gz, ...), a .csv file, or for a language model \"fortunes\" or a "
                          "text file or directory", source));
}

// How the model's functions take their inputs: the data (features, then labels), the step
// number that keys dropout, and the learning rate.
struct Inputs {
  int features = -1, labels = -1, step = -1, lr = -1;
};

Inputs map_inputs(const FunctionSpec& f) {
  Inputs in;
  for (size_t i = 0; i < f.inputs.size(); ++i) {
    const std::string& n = f.inputs[i].name;
    int idx = static_cast<int>(i);
    if (n == "lr") in.lr = idx;
    else if (n == "step") in.step = idx;
    else if (in.features < 0) in.features = idx;
    else if (in.labels < 0) in.labels = idx;
    else throw Error(fmt::format("{}: input '{}': the training loop feeds two data inputs (features and labels)", f.name, n));
  }
  if (in.features < 0) throw Error(fmt::format("{} has no data input", f.name));
  return in;
}

int output_index(const FunctionSpec& f, const std::string& name) {
  for (size_t i = 0; i < f.outputs.size(); ++i)
    if (f.outputs[i].name == name) return static_cast<int>(i);
  return -1;
}

// The classes a model scores: the last dimension of its `logits` output.
int64_t vocabulary_of(const Model& model) {
  const FunctionSpec& f = model.manifest().function("forward");
  int i = output_index(f, "logits");
  return i >= 0 && !f.outputs[i].shape.empty() ? f.outputs[i].shape.back() : 0;
}

void check_shape(const BufferSpec& want, const Dataset& got, const std::string& what) {
  const Shape& shape = got.feature_shape();
  if (want.dtype != got.feature_dtype() || shape.empty() ||
      Shape(want.shape.begin() + 1, want.shape.end()) != Shape(shape.begin() + 1, shape.end()))
    throw Error(fmt::format("the model's input '{}' is {}{}, but the {} data has rows of {}", want.name, dtype_name(want.dtype),
                            shape_to_string(want.shape), what, got.feature_type_string()));
}

// Applies the normalisation a checkpoint saved, if any.
void apply_saved_normalization(const StateMap& state, Dataset& d) {
  if (!state.count("normalize.mean") || d.feature_dtype() != DType::f32) return;
  materialize_features(d);
  Normalizer::restore(state).apply(d.features);
}

// Every example once, in order, the last batch padded: the compiled function's batch is static.
LoaderOptions eval_loader(int64_t batch) {
  LoaderOptions o;
  o.batch_size = batch;
  o.shuffle = false;
  o.drop_last = false;
  o.pad_last = true;
  return o;
}

// A language model's next-token loss and accuracy: every position of the real rows is an example.
Metrics evaluate_tokens(Model& model, const BatchPlan& plan, int64_t num_classes) {
  const FunctionSpec& f = model.manifest().function("forward");
  Inputs in = map_inputs(f);
  int logits = output_index(f, "logits");
  TokenAccumulator acc;
  for (int64_t b = 0; b < plan.batches_per_epoch(); ++b) {
    Batch batch = plan.make(0, b);
    std::vector<const Tensor*> args(f.inputs.size(), nullptr);
    args[in.features] = &batch.features;
    args[in.labels] = &batch.labels;
    auto out = model.run("forward", args);
    auto n = static_cast<size_t>(batch.size * (batch.labels.numel() / batch.labels.shape()[0]));
    acc.add(out[logits].values<float>().subspan(0, n * static_cast<size_t>(num_classes)),
            batch.labels.values<int64_t>().subspan(0, n), num_classes);
  }
  return acc.compute();
}

// Evaluates the forward function over every example of `plan` (padded last batch) and
// returns the metrics. Classification metrics need a `logits` output [B, C].
Metrics evaluate_plan(Model& model, const BatchPlan& plan, int64_t num_classes) {
  const FunctionSpec& f = model.manifest().function("forward");
  Inputs in = map_inputs(f);
  int logits = output_index(f, "logits"), loss = output_index(f, "loss");
  if (logits < 0 || in.labels < 0) {
    // No class scores (an autoencoder): the mean loss alone, over full batches, since the
    // graph's loss of a padded batch would count the padding.
    Metrics m;
    m.accuracy = std::numeric_limits<double>::quiet_NaN();
    double sum = 0;
    for (int64_t b = 0; b < plan.batches_per_epoch(); ++b) {
      Batch batch = plan.make(0, b);
      if (loss < 0 || batch.size < batch.features.shape()[0]) continue;
      std::vector<const Tensor*> args(f.inputs.size(), nullptr);
      args[in.features] = &batch.features;
      if (in.labels >= 0) args[in.labels] = &batch.labels;
      sum += model.run("forward", args)[loss].values<float>()[0] * static_cast<double>(batch.size);
      m.count += batch.size;
    }
    m.loss = m.count ? sum / static_cast<double>(m.count) : std::numeric_limits<double>::quiet_NaN();
    return m;
  }
  if (f.outputs[logits].shape.size() == 3) return evaluate_tokens(model, plan, num_classes);
  MetricsAccumulator acc(num_classes, num_classes >= 5 ? std::vector<int64_t>{5} : std::vector<int64_t>{});
  for (int64_t b = 0; b < plan.batches_per_epoch(); ++b) {
    Batch batch = plan.make(0, b);
    std::vector<const Tensor*> args(f.inputs.size(), nullptr);
    args[in.features] = &batch.features;
    if (in.labels >= 0) args[in.labels] = &batch.labels;
    auto out = model.run("forward", args);
    if (logits >= 0 && in.labels >= 0 && out[logits].rank() == 2) {
      acc.add(out[logits], batch.labels, batch.size);
    } else if (loss >= 0) {
      acc.add_loss(out[loss].values<float>()[0], batch.size);
    }
  }
  return acc.compute();
}

std::string metrics_line(const std::string& prefix, const Metrics& m) {
  if (std::isnan(m.accuracy)) return fmt::format("{}loss {:.4f}", prefix, m.loss);
  if (m.per_token)
    return fmt::format("{0}loss {1:.4f}  {0}ppl {2:.3f}  {0}bpc {3:.4f}  {0}accuracy {4:.4f}", prefix, m.loss,
                       m.perplexity(), m.bits(), m.accuracy);
  std::string s = fmt::format("{}loss {:.4f}  {}accuracy {:.4f}", prefix, m.loss, prefix, m.accuracy);
  s += fmt::format("  {}macro_f1 {:.4f}", prefix, m.macro_f1);
  if (m.macro_auc) s += fmt::format("  {}auc {:.4f}", prefix, *m.macro_auc);
  return s;
}

// A checkpoint: every parameter (weights, optimizer state, running statistics) and, in the
// metadata, where the run stands.
void save_checkpoint(Model& model, const std::string& path, const StateMap& state) {
  std::vector<NamedTensor> tensors;
  for (size_t i = 0; i < model.params().size(); ++i) tensors.push_back({model.manifest().params[i].name, &model.params()[i]});
  write_safetensors(path, tensors, state);
}

}  // namespace

struct DataPreload::State {
  std::string source;
  std::future<Data> data;
};

DataPreload::DataPreload(std::unique_ptr<State> state) : state_(std::move(state)) {}

DataPreload::~DataPreload() {
  if (state_->data.valid()) state_->data.wait();
}

const std::string& DataPreload::source() const { return state_->source; }

std::unique_ptr<DataPreload> preload_data(const std::string& source) {
  if (!is_examples_source(source)) return nullptr;
  auto state = std::make_unique<DataPreload::State>();
  state->source = source;
  try {
    state->data = std::async(std::launch::async, [source] { return load_examples(source); });
  } catch (const std::system_error&) {
    return nullptr;  // no thread to spare: train() loads the data itself
  }
  return std::unique_ptr<DataPreload>(new DataPreload(std::move(state)));
}

TrainSettings settings_from_manifest(const Manifest& m) {
  TrainSettings s;
  if (auto v = attr(m, "train.epochs")) s.epochs = v->get<int64_t>();
  if (auto v = attr(m, "train.lr")) s.lr = v->get<double>();
  if (auto v = attr(m, "train.data")) s.data = v->get<std::string>();
  if (auto v = attr(m, "train.seed")) s.seed = v->get<uint64_t>();
  if (auto v = attr(m, "train.early_stopping")) s.patience = v->get<int64_t>();
  if (auto v = attr(m, "train.monitor")) s.monitor = v->get<std::string>();
  s.schedule = schedule_spelling(m);
  return s;
}

void add_train_flags(CLI::App& app, TrainSettings& s) {
  app.add_option("--epochs", s.epochs, "Epochs to train")->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  app.add_option("--lr", s.lr, "Learning rate (the schedule's base)")->check(CLI::PositiveNumber);
  app.add_option("--schedule", s.schedule,
                 "constant | step:SIZE[:GAMMA] | multistep:M1,M2[:GAMMA] | exponential:GAMMA | cosine:T_MAX[:ETA_MIN] | "
                 "restarts:T_0[:T_MULT[:ETA_MIN]], optionally warmup:STEPS[:FACTOR]+...; or plateau[:PATIENCE[:FACTOR]]");
  app.add_option("--data", s.data,
                 "fashion-mnist, a directory of IDX files, FEATURES.npy,LABELS.npy, a .csv file (a header row, the label in "
                 "the last column), or for language models fortunes or a text file or directory");
  app.add_option("--seed", s.seed, "Seed of the initialisation, data order, augmentation and dropout");
  app.add_option("--validation", s.validation, "Fraction of the training set held out for validation")
      ->check(CLI::Range(0.0, 0.9));
  app.add_option("--folds", s.folds, "k-fold cross-validation: split the training data into k folds...")
      ->check(CLI::Range(int64_t{2}, int64_t{1000}));
  app.add_option("--fold", s.fold, "...and validate on this one (0-based), training on the others");
  app.add_option("--checkpoint", s.checkpoint, "Write checkpoints (safetensors) to this file");
  app.add_option("--checkpoint-every", s.checkpoint_every, "Also checkpoint every N steps")->check(CLI::NonNegativeNumber);
  app.add_option("--resume", s.resume, "Continue exactly from a checkpoint");
  app.add_option("--init-from", s.init_from, "Take matching parameters by name from a safetensors file (PyTorch state_dict)");
  app.add_option("--log", s.log, "Append one JSON object per epoch to this file");
  app.add_option("--early-stopping", s.patience, "Stop after N epochs without improvement of --monitor; keep the best weights")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--monitor", s.monitor, "val_loss or val_accuracy")->check(CLI::IsMember({"val_loss", "val_accuracy"}));
  app.add_flag("--augment", s.augment, "Random crop, flip, rotation and scaling of training images");
  app.add_flag("--normalize", s.normalize, "Standardise features by the training split's mean and std (kept in checkpoints)");
  app.add_option("--max-steps", s.max_steps, "Stop after this many steps in all")->check(CLI::NonNegativeNumber);
  app.add_option("--threads", s.threads, "Threads (default: all cores)")->check(CLI::Range(1, 1024));
  app.add_flag("!--no-test", s.test, "Skip the test-set evaluation at the end");
}

void merge_given(const CLI::App& app, const TrainSettings& given, TrainSettings& out) {
  auto set = [&](const char* flag, auto member) {
    if (app.get_option(flag)->count() > 0) out.*member = given.*member;
  };
  set("--epochs", &TrainSettings::epochs);
  set("--lr", &TrainSettings::lr);
  set("--schedule", &TrainSettings::schedule);
  set("--data", &TrainSettings::data);
  set("--seed", &TrainSettings::seed);
  set("--validation", &TrainSettings::validation);
  set("--folds", &TrainSettings::folds);
  set("--fold", &TrainSettings::fold);
  set("--checkpoint", &TrainSettings::checkpoint);
  set("--checkpoint-every", &TrainSettings::checkpoint_every);
  set("--resume", &TrainSettings::resume);
  set("--init-from", &TrainSettings::init_from);
  set("--log", &TrainSettings::log);
  set("--early-stopping", &TrainSettings::patience);
  set("--monitor", &TrainSettings::monitor);
  set("--augment", &TrainSettings::augment);
  set("--normalize", &TrainSettings::normalize);
  set("--max-steps", &TrainSettings::max_steps);
  set("--threads", &TrainSettings::threads);
  set("--no-test", &TrainSettings::test);
}

double train(Model& model, const TrainSettings& s, DataPreload* preload) {
  if (s.threads > 0) stag_set_num_threads(s.threads);
  const FunctionSpec& step_fn = model.manifest().function("train_step");
  Inputs in = map_inputs(step_fn);
  int loss_out = output_index(step_fn, "loss");
  if (loss_out < 0) throw Error("the train step has no 'loss' output");
  const BufferSpec& feat_spec = step_fn.inputs[in.features];
  int64_t batch = feat_spec.shape.empty() ? 1 : feat_spec.shape[0];

  // Data read while the model compiled, when it is what this run reads.
  bool preloaded = preload && preload->source() == s.data && !reads_text(feat_spec) && preload->state_->data.valid();
  Data data = preloaded ? preload->state_->data.get() : load_data(s.data, feat_spec, vocabulary_of(model));
  check_shape(feat_spec, data.train, "training");
  int64_t num_classes = vocabulary_of(model);
  for (int64_t v : data.train.labels.values<int64_t>()) num_classes = std::max(num_classes, v + 1);
  Split split;
  if (s.folds > 0) {
    if (s.fold < 0 || s.fold >= s.folds) throw Error(fmt::format("--fold {} is not one of the {} folds", s.fold, s.folds));
    split = kfold(data.train.size(), s.folds, s.seed)[static_cast<size_t>(s.fold)];
  } else {
    split = train_validation_split(data.train.size(), s.validation, s.seed);
  }
  if (data.chars && !split.validation.empty()) {
    double base = bigram_loss(data.train, split.train, split.validation, num_classes);
    fmt::print("baseline: a character bigram model (add-one smoothing) has val_loss {:.4f}  val_ppl {:.3f}  val_bpc {:.4f}\n",
               base, std::exp(base), base / std::log(2.0));
  }
  std::optional<Normalizer> normalizer;
  if (s.normalize) {
    if (data.train.feature_dtype() != DType::f32) throw Error("--normalize applies to float features only");
    // Normalisation rewrites the features: byte images become f32 here.
    materialize_features(data.train);
    materialize_features(data.test);
    normalizer = Normalizer::fit(data.train.features, split.train);
    normalizer->apply(data.train.features);
    if (data.has_test) normalizer->apply(data.test.features);
  }
  LoaderOptions train_opts;
  train_opts.batch_size = batch;
  train_opts.drop_last = true;  // the compiled step's batch is static
  if (s.augment) {
    // Fashion-MNIST-sized images: small shifts, flips, rotations and zooms.
    train_opts.augment.crop_padding = 2;
    train_opts.augment.horizontal_flip = true;
    train_opts.augment.max_rotation_degrees = 10;
    train_opts.augment.min_scale = 0.9;
    train_opts.augment.max_scale = 1.1;
  }
  LoaderOptions eval_opts = eval_loader(batch);
  BatchIterator loader(data.train, split.train, train_opts, s.seed);
  BatchPlan val_plan(data.train, split.validation, eval_opts, s.seed);
  int64_t steps_per_epoch = loader.plan().batches_per_epoch();
  if (steps_per_epoch == 0)
    throw Error(fmt::format("the training split has {} examples, fewer than one batch of {}", split.train.size(), batch));

  bool plateau = s.schedule.starts_with("plateau");
  std::shared_ptr<const LrSchedule> schedule;
  std::optional<PlateauLr> plateau_lr;
  if (plateau) {
    PlateauLr::Options po;
    auto parts = s.schedule.find(':');
    if (parts != std::string::npos) {
      std::string rest = s.schedule.substr(parts + 1);
      auto colon = rest.find(':');
      po.patience = parse_int(rest.substr(0, colon), "plateau patience");
      if (colon != std::string::npos) po.factor = parse_double(rest.substr(colon + 1), "plateau factor");
    }
    plateau_lr.emplace(s.lr, po);
  } else {
    schedule = parse_schedule(s.schedule, s.lr);
  }
  bool by_epoch = counts_epochs(s.schedule);
  EarlyStopping::Options eo;
  eo.patience = std::max<int64_t>(1, s.patience);  // only consulted when s.patience > 0
  eo.mode = s.monitor == "val_accuracy" ? EarlyStopping::Mode::max : EarlyStopping::Mode::min;
  EarlyStopping early(eo);

  int64_t step = 0, start_epoch = 0;
  model.init(static_cast<int64_t>(s.seed));
  if (!s.init_from.empty()) {
    // Transfer learning: take what matches by name and type; report what was taken.
    auto file = read_safetensors(s.init_from);
    int64_t taken = 0;
    for (size_t i = 0; i < model.params().size(); ++i) {
      // The model's weights only: a fresh run starts its own optimizer state.
      if (model.manifest().params[i].name.starts_with("optim.")) continue;
      auto it = file.tensors.find(model.manifest().params[i].name);
      if (it == file.tensors.end() || it->second.dtype() != model.params()[i].dtype() || it->second.shape() != model.params()[i].shape())
        continue;
      model.params()[i] = std::move(it->second);
      ++taken;
    }
    auto weights = std::count_if(model.manifest().params.begin(), model.manifest().params.end(),
                                 [](const BufferSpec& p) { return !p.name.starts_with("optim."); });
    fmt::print("initialised {} of {} parameters from {}\n", taken, weights, s.init_from);
  }
  std::vector<Tensor> best;
  if (!s.resume.empty()) {
    auto file = read_safetensors(s.resume);
    StateMap meta(file.metadata.begin(), file.metadata.end());
    model.load_params(file.tensors, s.resume);
    step = parse_int(state_get(meta, "step"), "step");
    loader.restore(LoaderState::restore(meta));
    start_epoch = loader.state().epoch;
    if (s.patience > 0 && meta.count("early_stopping.best_epoch")) early.restore(meta);
    if (plateau_lr) plateau_lr->restore(meta);
    fmt::print("resumed from {} at epoch {}, step {}\n", s.resume, start_epoch + 1, step);
  }

  std::optional<JsonLinesWriter> log;
  if (!s.log.empty()) log.emplace(s.log, s.resume.empty());
  auto state_now = [&]() {
    StateMap m = loader.state().save();
    m["step"] = std::to_string(step);
    if (s.patience > 0) for (auto& [k, v] : early.save()) m[k] = v;
    if (plateau_lr) for (auto& [k, v] : plateau_lr->save()) m[k] = v;
    if (normalizer) for (auto& [k, v] : normalizer->save()) m[k] = v;
    if (data.chars) m.merge(data.chars->save());
    m["model"] = model.manifest().model;
    return m;
  };
  auto lr_at = [&](int64_t epoch) {
    if (plateau_lr) return plateau_lr->lr();
    return schedule->lr(by_epoch ? epoch : step);
  };

  Tensor lr_t = Tensor::from<float>({}, {0.f});
  Tensor step_t = Tensor::from<int64_t>({}, {0});
  double last_val_accuracy = std::numeric_limits<double>::quiet_NaN();
  bool stopped = false;
  fmt::print("training {} on {}: {} train / {} validation examples, batch {}, {} steps an epoch, {} threads\n",
             model.manifest().model, s.data, split.train.size(), split.validation.size(), batch, steps_per_epoch,
             stag_get_num_threads());
  for (int64_t epoch = start_epoch; epoch < s.epochs && !stopped; ++epoch) {
    ProgressBar bar(stdout, fmt::format("epoch {}/{}", epoch + 1, s.epochs), steps_per_epoch * batch, progress_options_for(stdout));
    double loss_sum = 0;
    int64_t losses = 0;
    int64_t done = loader.state().position * batch;
    double t0 = steady_seconds();
    while (auto b = loader.next()) {
      std::vector<const Tensor*> args(step_fn.inputs.size(), nullptr);
      args[in.features] = &b->features;
      if (in.labels >= 0) args[in.labels] = &b->labels;
      lr_t.values<float>()[0] = static_cast<float>(lr_at(epoch));
      if (in.lr >= 0) args[in.lr] = &lr_t;
      step_t.values<int64_t>()[0] = step;
      if (in.step >= 0) args[in.step] = &step_t;
      auto out = model.run("train_step", args);
      double loss = out[loss_out].values<float>()[0];
      if (!std::isfinite(loss)) throw Error(fmt::format("the loss became {} at step {} (epoch {}); lower the learning rate", loss, step, epoch + 1));
      loss_sum += loss;
      ++losses;
      ++step;
      done += b->size;
      bar.update(done, loss_sum / static_cast<double>(losses));
      if (log) log->write({{"event", std::string("step")}, {"step", step}, {"epoch", epoch + 1}, {"loss", loss}});
      if (!s.checkpoint.empty() && s.checkpoint_every > 0 && step % s.checkpoint_every == 0) save_checkpoint(model, s.checkpoint, state_now());
      if (s.max_steps > 0 && step >= s.max_steps) {
        stopped = true;
        break;
      }
    }
    double seconds = steady_seconds() - t0;
    std::string summary = fmt::format("loss {:.4f}", losses ? loss_sum / static_cast<double>(losses) : 0.0);
    LogRecord rec = {{"epoch", epoch + 1}, {"step", step}, {"train_loss", losses ? loss_sum / static_cast<double>(losses) : 0.0},
                     {"lr", lr_at(epoch)}, {"seconds", seconds}};
    std::optional<Metrics> val_metrics;
    if (!split.validation.empty()) {
      val_metrics = evaluate_plan(model, val_plan, num_classes);
      const Metrics& m = *val_metrics;
      last_val_accuracy = m.accuracy;
      summary += "  " + metrics_line("val_", m);
      rec.push_back({"val_loss", m.loss});
      if (m.per_token) rec.push_back({"val_ppl", m.perplexity()});
      if (m.per_token) rec.push_back({"val_bpc", m.bits()});
      rec.push_back({"val_accuracy", m.accuracy});
      if (!m.per_token) rec.push_back({"val_macro_f1", m.macro_f1});
      if (m.macro_auc) rec.push_back({"val_auc", *m.macro_auc});
      double monitored = s.monitor == "val_accuracy" ? m.accuracy : m.loss;
      if (plateau_lr) plateau_lr->step(monitored);
      if (s.patience > 0) {
        if (early.update(epoch, monitored)) {
          best.clear();
          for (const auto& p : model.params()) best.push_back(p.clone());
        }
        if (early.should_stop()) {
          summary += fmt::format("  (early stop: best epoch {})", early.best_epoch() + 1);
          stopped = true;
        }
      }
    }
    bar.finish(summary);
    // The per-class view of the validation set (not for language models' many classes).
    if (val_metrics && val_metrics->num_classes() > 0 && num_classes <= 20)
      fmt::print("{}", format_class_table(*val_metrics, data.class_names));
    if (log) {
      rec.insert(rec.begin(), {"event", std::string("epoch")});
      log->write(rec);
    }
    if (!s.checkpoint.empty() && !stopped) save_checkpoint(model, s.checkpoint, state_now());
  }
  if (!best.empty() && early.has_best()) {
    for (size_t i = 0; i < best.size(); ++i) model.params()[i] = std::move(best[i]);
    fmt::print("restored the weights of epoch {} (best {} {:.4f})\n", early.best_epoch() + 1, s.monitor, early.best_value());
    if (!s.checkpoint.empty()) save_checkpoint(model, s.checkpoint, state_now());
  }
  if (s.test && data.has_test) {
    BatchPlan test_plan(data.test, {}, eval_opts, s.seed);
    Metrics m = evaluate_plan(model, test_plan, num_classes);
    fmt::print("test: {}\n", metrics_line("", m));
    if (m.num_classes() > 0) fmt::print("{}\n{}", format_class_table(m, data.class_names), format_confusion_matrix(m, data.class_names));
    if (log) log->write({{"event", std::string("test")}, {"loss", m.loss}, {"accuracy", m.accuracy}, {"macro_f1", m.macro_f1}});
    return m.accuracy;
  }
  return last_val_accuracy;
}

double evaluate(Model& model, const std::string& source, int64_t seed, const StateMap& state) {
  const FunctionSpec& f = model.manifest().function("forward");
  Inputs in = map_inputs(f);
  Data data = load_data(source, f.inputs[in.features], vocabulary_of(model));
  Dataset& d = data.has_test ? data.test : data.train;
  apply_saved_normalization(state, d);
  check_shape(f.inputs[in.features], d, "evaluation");
  LoaderOptions eval_opts = eval_loader(f.inputs[in.features].shape[0]);
  int64_t num_classes = vocabulary_of(model);
  for (int64_t v : d.labels.values<int64_t>()) num_classes = std::max(num_classes, v + 1);
  BatchPlan plan(d, {}, eval_opts, static_cast<uint64_t>(seed));
  Metrics m = evaluate_plan(model, plan, num_classes);
  fmt::print("{} examples: {}\n", m.count, metrics_line("", m));
  if (m.num_classes() > 0) fmt::print("{}\n{}", format_class_table(m, data.class_names), format_confusion_matrix(m, data.class_names));
  return m.accuracy;
}

}  // namespace stag::rt

namespace stag::rt {

std::pair<Tensor, Tensor> predict(Model& model, const std::string& source, const StateMap& state) {
  const FunctionSpec& f = model.manifest().function("forward");
  Inputs in = map_inputs(f);
  int logits = output_index(f, "logits");
  if (logits < 0 || f.outputs[logits].shape.size() != 2)
    throw Error("predictions need a `logits` output of shape [B, C]");
  Data data = load_data(source, f.inputs[in.features], vocabulary_of(model));
  Dataset& d = data.has_test ? data.test : data.train;
  apply_saved_normalization(state, d);
  check_shape(f.inputs[in.features], d, "prediction");
  BatchPlan plan(d, {}, eval_loader(f.inputs[in.features].shape[0]), 0);
  int64_t C = f.outputs[logits].shape[1], N = d.size();
  Tensor classes(DType::i64, {N}), probs(DType::f32, {N, C});
  int64_t row = 0;
  for (int64_t b = 0; b < plan.batches_per_epoch(); ++b) {
    Batch batch = plan.make(0, b);
    std::vector<const Tensor*> args(f.inputs.size(), nullptr);
    args[in.features] = &batch.features;
    if (in.labels >= 0) args[in.labels] = &batch.labels;
    auto out = model.run("forward", args);
    auto z = out[logits].values<float>();
    for (int64_t i = 0; i < batch.size; ++i, ++row) {
      const float* r = z.data() + i * C;
      double mx = *std::max_element(r, r + C), sum = 0;
      for (int64_t c = 0; c < C; ++c) sum += std::exp(r[c] - mx);
      int64_t best = 0;
      for (int64_t c = 0; c < C; ++c) {
        probs.values<float>()[row * C + c] = static_cast<float>(std::exp(r[c] - mx) / sum);
        if (r[c] > r[best]) best = c;
      }
      classes.values<int64_t>()[row] = best;
    }
  }
  return {std::move(classes), std::move(probs)};
}

}  // namespace stag::rt
