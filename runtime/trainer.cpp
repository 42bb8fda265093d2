// The training loop. Every step is a call of the compiled train_step; the loop only moves
// data, picks the learning rate, and keeps score. A run is a pure function of the settings,
// the seed and the thread count: data order, augmentation and dropout are all keyed by
// (seed, epoch, step), so a resumed run repeats the uninterrupted one bit for bit.

#include "runtime/trainer.h"

#include "runtime/exchange.h"
#include "runtime/replicas.h"

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
#include "runtime/data/subword.h"
#include "runtime/data/topics.h"
#include "runtime/data/loader.h"
#include "runtime/data/split.h"
#include "runtime/error.h"
#include "runtime/eval_plots.h"
#include "runtime/metrics.h"
#include "runtime/progress.h"
#include "runtime/run_dir.h"
#include "runtime/safetensors.h"
#include "runtime/schedule.h"
#include "runtime/state_map.h"
#include "runtime/stop_signal.h"
#include "runtime/thread_pool.h"

namespace stag::rt {

namespace {

namespace fs = std::filesystem;

std::optional<nlohmann::json> attr(const Manifest& m, const std::string& key) {
  auto it = m.attrs.find(key);
  if (it == m.attrs.end()) return std::nullopt;
  return nlohmann::json::parse(it->second);
}

struct Data {
  Dataset train, test;
  bool has_test = false;
  std::vector<std::string> class_names;
  std::optional<CharTable> chars;  ///< a language model's token table
  std::optional<Split> fixed_split;  ///< a text classifier's split by part_of, not by seed
  StateMap tokenizer;                ///< a text classifier's, for checkpoints
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

// How the model's functions take their inputs: the data (features, then labels), the step
// number that keys dropout, the learning rate, and under data parallelism the process's rank
// (dropout's part: kRankInput of compiler/train/train_step.h).
struct Inputs {
  int features = -1, labels = -1, step = -1, lr = -1, rank = -1;
};

Inputs map_inputs(const FunctionSpec& f) {
  Inputs in;
  for (size_t i = 0; i < f.inputs.size(); ++i) {
    const std::string& n = f.inputs[i].name;
    int idx = static_cast<int>(i);
    if (n == "lr") in.lr = idx;
    else if (n == "step") in.step = idx;
    else if (n == "dp.rank") in.rank = idx;
    else if (in.features < 0) in.features = idx;
    else if (in.labels < 0) in.labels = idx;
    else throw Error(fmt::format("{}: input '{}': the training loop feeds two data inputs (features and labels)", f.name, n));
  }
  if (in.features < 0) throw Error(fmt::format("{} has no data input", f.name));
  return in;
}

Data load_examples(const std::string& source);

// A classifier of token ids [B, T] (labels [B]) reads labelled texts.
bool classifies_text(const FunctionSpec& f, const Inputs& in) {
  return reads_text(f.inputs[in.features]) && in.labels >= 0 && f.inputs[in.labels].shape.size() == 1;
}

LabeledTexts read_labeled(const std::string& source) {
  if (source == "fortune-topics") return read_fortune_topics(kFortunesDir);
  if (source.ends_with(".csv")) return read_text_csv(source);
  throw Error(fmt::format("data '{}': a text classifier reads \"fortune-topics\" or a .csv file with text and label columns", source));
}

// Sorts the texts by part_of: train and validation into texts[0] (data.train, with the fixed
// split's indices into it), test into texts[1]; labels alike.
void split_labeled(LabeledTexts& t, Data& d, std::vector<std::string> (&texts)[2], std::vector<int64_t> (&labels)[2]) {
  d.fixed_split.emplace();
  for (size_t i = 0; i < t.texts.size(); ++i) {
    Part p = part_of(t.texts[i]);
    int side = p == Part::test;
    auto at = static_cast<int64_t>(texts[0].size());
    if (p == Part::train) d.fixed_split->train.push_back(at);
    if (p == Part::validation) d.fixed_split->validation.push_back(at);
    texts[side].push_back(std::move(t.texts[i]));
    labels[side].push_back(t.labels[i]);
  }
}

Dataset encoded(const TextTokenizer& table, const std::vector<std::string>& texts, const std::vector<int64_t>& labels, int64_t T) {
  return {encode_texts(table, texts, T), Tensor::from<int64_t>({static_cast<int64_t>(labels.size())}, std::span(labels))};
}

// Labelled texts as token ids [N, T]: the tokenizer saved in `saved` (evaluation), else one
// built on the training part as `tokenizer` says.
Data load_labeled_text(const std::string& source, int64_t T, const std::string& tokenizer, uint64_t seed,
                       const StateMap* saved) {
  LabeledTexts t = read_labeled(source);
  Data d;
  d.class_names = t.classes;
  std::vector<std::string> texts[2];
  std::vector<int64_t> labels[2];
  split_labeled(t, d, texts, labels);
  auto table = saved ? restore_tokenizer(*saved) : make_tokenizer(tokenizer, texts[0], d.fixed_split->train, seed);
  d.tokenizer = table->save();
  d.train = encoded(*table, texts[0], labels[0], T);
  d.test = encoded(*table, texts[1], labels[1], T);
  d.has_test = !texts[1].empty();
  fmt::print("text: {} texts in {} classes ({} train / {} validation / {} test, split by a hash of the text), "
             "{} tokens each, tokenizer {}\n", texts[0].size() + texts[1].size(), d.class_names.size(),
             d.fixed_split->train.size(), d.fixed_split->validation.size(), texts[1].size(), T, d.tokenizer.at("tokenizer"));
  return d;
}

// What a run needs to read its data: the function's inputs, the tokenizer setting, and for
// evaluation the checkpoint's metadata (which holds a text classifier's tokenizer).
Data load_data(const std::string& source, const FunctionSpec& f, int64_t vocab, const std::string& tokenizer,
               uint64_t seed, const StateMap* saved) {
  Inputs in = map_inputs(f);
  const BufferSpec& features = f.inputs[in.features];
  if (classifies_text(f, in)) return load_labeled_text(source, features.shape[1], tokenizer, seed, saved);
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

// Runs the forward function over every batch of `plan`, handing each batch and its outputs on.
template <class Use>
void forward_batches(Model& model, const BatchPlan& plan, Use use) {
  const FunctionSpec& f = model.manifest().function("forward");
  Inputs in = map_inputs(f);
  for (int64_t b = 0; b < plan.batches_per_epoch(); ++b) {
    Batch batch = plan.make(0, b);
    std::vector<const Tensor*> args(f.inputs.size(), nullptr);
    args[in.features] = &batch.features;
    if (in.labels >= 0) args[in.labels] = &batch.labels;
    use(batch, model.run("forward", args));
  }
}

// A full batch: the last one is padded to the compiled batch size.
bool is_full(const Batch& batch) { return batch.size == batch.features.shape()[0]; }

// The model's own `metric NAME` outputs (output index, NAME), but accuracy, which the trainer
// computes from the logits for every example.
std::vector<std::pair<int, std::string>> own_metrics(const FunctionSpec& f) {
  std::vector<std::pair<int, std::string>> out;
  for (size_t i = 0; i < f.outputs.size(); ++i)
    if (f.outputs[i].name.starts_with("metric.") && f.outputs[i].name != "metric.accuracy")
      out.emplace_back(static_cast<int>(i), f.outputs[i].name.substr(7));
  return out;
}

// The model's own metrics, each averaged over the full batches: a padded batch's value would
// count the padding.
class CustomMetrics {
 public:
  explicit CustomMetrics(const FunctionSpec& f) : outputs_(own_metrics(f)), sums_(outputs_.size(), 0.0) {}

  void add(const Batch& batch, const std::vector<Tensor>& out) {
    if (!is_full(batch)) return;
    for (size_t k = 0; k < outputs_.size(); ++k) sums_[k] += mean_of(out[outputs_[k].first]) * static_cast<double>(batch.size);
    count_ += batch.size;
  }

  void into(Metrics& m) const {
    double nan = std::numeric_limits<double>::quiet_NaN();
    for (size_t k = 0; k < outputs_.size(); ++k)
      m.custom.emplace_back(outputs_[k].second, count_ ? sums_[k] / static_cast<double>(count_) : nan);
  }

 private:
  static double mean_of(const Tensor& t) {
    double sum = 0;
    if (t.dtype() == DType::f32) for (float v : t.values<float>()) sum += v;
    else if (t.dtype() == DType::i64) for (int64_t v : t.values<int64_t>()) sum += static_cast<double>(v);
    else throw Error(fmt::format("a metric output is {}; metrics are f32 or i64", dtype_name(t.dtype())));
    return t.numel() ? sum / static_cast<double>(t.numel()) : 0.0;
  }

  std::vector<std::pair<int, std::string>> outputs_;
  std::vector<double> sums_;
  int64_t count_ = 0;
};

// A language model's next-token loss and accuracy: every position of the real rows is an example.
Metrics evaluate_tokens(Model& model, const BatchPlan& plan, int64_t num_classes, CustomMetrics& custom) {
  int logits = output_index(model.manifest().function("forward"), "logits");
  TokenAccumulator acc;
  forward_batches(model, plan, [&](const Batch& batch, const std::vector<Tensor>& out) {
    auto n = static_cast<size_t>(batch.size * (batch.labels.numel() / batch.labels.shape()[0]));
    acc.add(out[logits].values<float>().subspan(0, n * static_cast<size_t>(num_classes)),
            batch.labels.values<int64_t>().subspan(0, n), num_classes);
    custom.add(batch, out);
  });
  return acc.compute();
}

// No class scores (an autoencoder): the mean loss alone, over full batches, since the graph's
// loss of a padded batch would count the padding.
Metrics evaluate_loss(Model& model, const BatchPlan& plan, CustomMetrics& custom) {
  int loss = output_index(model.manifest().function("forward"), "loss");
  Metrics m;
  m.accuracy = std::numeric_limits<double>::quiet_NaN();
  double sum = 0;
  forward_batches(model, plan, [&](const Batch& batch, const std::vector<Tensor>& out) {
    custom.add(batch, out);
    if (loss < 0 || !is_full(batch)) return;
    sum += out[loss].values<float>()[0] * static_cast<double>(batch.size);
    m.count += batch.size;
  });
  m.loss = m.count ? sum / static_cast<double>(m.count) : std::numeric_limits<double>::quiet_NaN();
  return m;
}

Metrics evaluate_classes(Model& model, const BatchPlan& plan, int64_t num_classes, CustomMetrics& custom) {
  const FunctionSpec& f = model.manifest().function("forward");
  int logits = output_index(f, "logits"), loss = output_index(f, "loss");
  MetricsAccumulator acc(num_classes, num_classes >= 5 ? std::vector<int64_t>{5} : std::vector<int64_t>{});
  forward_batches(model, plan, [&](const Batch& batch, const std::vector<Tensor>& out) {
    if (out[logits].rank() == 2) acc.add(out[logits], batch.labels, batch.size);
    else if (loss >= 0) acc.add_loss(out[loss].values<float>()[0], batch.size);
    custom.add(batch, out);
  });
  return acc.compute();
}

// Evaluates the forward function over every example of `plan` (padded last batch) and
// returns the metrics. Classification metrics need a `logits` output [B, C].
Metrics evaluate_plan(Model& model, const BatchPlan& plan, int64_t num_classes) {
  const FunctionSpec& f = model.manifest().function("forward");
  int logits = output_index(f, "logits");
  CustomMetrics custom(f);
  Metrics m = logits < 0 || map_inputs(f).labels < 0 ? evaluate_loss(model, plan, custom)
              : f.outputs[logits].shape.size() == 3  ? evaluate_tokens(model, plan, num_classes, custom)
                                                     : evaluate_classes(model, plan, num_classes, custom);
  custom.into(m);
  return m;
}

std::string custom_line(const std::string& prefix, const Metrics& m) {
  std::string s;
  for (const auto& [name, value] : m.custom) s += fmt::format("  {}{} {:.4f}", prefix, name, value);
  return s;
}

// The ROC, precision-recall and confusion pictures of a classifier's test, named on stdout.
void draw_eval_plots(const fs::path& dir, const Metrics& m, std::span<const std::string> names, const std::string& title) {
  if (m.num_classes() == 0) return;  // no class scores: a language model or an autoencoder
  constexpr int64_t kMaxClasses = 20;  // beyond this the legends and cells are too small to read
  if (m.num_classes() > kMaxClasses) {
    fmt::print("pictures: none ({} classes are more than {} can be drawn legibly)\n", m.num_classes(), kMaxClasses);
    return;
  }
  auto files = write_eval_plots(dir, m, names, title);
  std::vector<std::string> shown;
  for (const auto& f : files) shown.push_back(f.filename().string());
  fmt::print("pictures: {} in {}\n", fmt::join(shown, ", "), dir.string());
}

std::string metrics_line(const std::string& prefix, const Metrics& m) {
  if (std::isnan(m.accuracy)) return fmt::format("{}loss {:.4f}", prefix, m.loss) + custom_line(prefix, m);
  if (m.per_token)
    return fmt::format("{0}loss {1:.4f}  {0}ppl {2:.3f}  {0}bpc {3:.4f}  {0}accuracy {4:.4f}", prefix, m.loss,
                       m.perplexity(), m.bits(), m.accuracy) + custom_line(prefix, m);
  std::string s = fmt::format("{}loss {:.4f}  {}accuracy {:.4f}", prefix, m.loss, prefix, m.accuracy);
  s += fmt::format("  {}macro_f1 {:.4f}", prefix, m.macro_f1);
  if (m.macro_auc) s += fmt::format("  {}auc {:.4f}", prefix, *m.macro_auc);
  return s + custom_line(prefix, m);
}

// A checkpoint: every parameter (weights, optimizer state, running statistics) and, in the
// metadata, where the run stands.
void save_checkpoint(Model& model, const std::string& path, const StateMap& state) {
  std::vector<NamedTensor> tensors;
  for (size_t i = 0; i < model.params().size(); ++i) tensors.push_back({model.manifest().params[i].name, &model.params()[i]});
  try {
    write_safetensors(path, tensors, state);
  } catch (const Error& e) {
    // The writer removed its temporary file, so whatever was at `path` is still there, whole.
    throw Error(fmt::format("{} ({})", e.what(), fs::exists(path) ? "the previous checkpoint there is intact" : "no checkpoint was written"));
  }
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
  if (auto v = attr(m, "train.tokenizer")) s.tokenizer = v->get<std::string>();
  if (auto v = attr(m, "train.seed")) s.seed = v->get<uint64_t>();
  if (auto v = attr(m, "train.early_stopping")) s.patience = v->get<int64_t>();
  if (auto v = attr(m, "train.monitor")) s.monitor = v->get<std::string>();
  if (auto v = attr(m, "train.monitor_mode")) s.monitor_mode = v->get<std::string>();
  if (auto v = attr(m, "train.min_delta")) s.min_delta = v->get<double>();
  if (auto v = attr(m, "train.shuffle")) s.shuffle = v->get<bool>();
  if (auto v = attr(m, "train.balance_classes")) s.balance_classes = v->get<bool>();
  if (auto v = attr(m, "train.schedule")) s.schedule = v->get<std::string>();
  if (auto v = attr(m, "train.on_nonfinite")) s.on_nonfinite = v->get<std::string>();
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
  app.add_option("--tokenizer", s.tokenizer, "A text classifier's tokenizer: words:VOCAB_SIZE or sentencepiece:VOCAB_SIZE (trained on the training split)");
  app.add_option("--seed", s.seed, "Seed of the initialisation, data order, augmentation and dropout");
  app.add_option("--validation", s.validation, "Fraction of the training set held out for validation")
      ->check(CLI::Range(0.0, 0.9));
  app.add_option("--folds", s.folds, "k-fold cross-validation: split the training data into k folds...")
      ->check(CLI::Range(int64_t{2}, int64_t{1000}));
  app.add_option("--fold", s.fold, "...and validate on this one (0-based), training on the others");
  app.add_option("--run-dir", s.run_dir, "The run folder (default: runs/MODEL-N, N the next number; a resumed folder)");
  app.add_flag("!--no-save", s.save, "Keep no run folder (no last/best checkpoints, log.jsonl or run.json)");
  app.add_option("--checkpoint", s.checkpoint, "Also write every checkpoint (safetensors) to this file");
  app.add_option("--checkpoint-every", s.checkpoint_every, "Also checkpoint every N steps")->check(CLI::NonNegativeNumber);
  app.add_option("--resume", s.resume, "Continue exactly from a checkpoint, or a run folder's last.safetensors (and keep writing there)");
  app.add_option("--init-from", s.init_from, "Take the parameters of the same names from a safetensors file (a PyTorch state_dict) or, in stag train, an ONNX file's initializers; one of another shape is an error");
  app.add_option("--log", s.log, "Append one JSON object per epoch to this file");
  app.add_option("--early-stopping", s.patience, "Stop after N epochs without improvement of --monitor; keep the best weights")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--monitor", s.monitor,
                 "What early stopping, best.safetensors and plateau watch: val_loss, val_accuracy, val_macro_f1, val_auc, "
                 "val_ppl, val_bpc, or val_NAME of a model's metric NAME");
  app.add_option("--monitor-mode", s.monitor_mode, "max or min: which way the monitor improves (default: by the measure)")
      ->check(CLI::IsMember({"max", "min"}));
  app.add_option("--min-delta", s.min_delta, "The least change of the monitor that counts as an improvement")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("!--no-shuffle", s.shuffle, "Keep the training examples in their order instead of shuffling every epoch");
  app.add_flag("--augment", s.augment, "Random crop, flip, rotation and scaling of training images");
  app.add_flag("--balance-classes,!--no-balance-classes", s.balance_classes,
               "Draw training examples with replacement, every class equally likely (PyTorch's WeightedRandomSampler "
               "with weights 1 / class count): for macro-averaged scores on imbalanced classes");
  app.add_flag("--normalize", s.normalize, "Standardise features by the training split's mean and std (kept in checkpoints)");
  app.add_option("--max-steps", s.max_steps, "Stop after this many steps in all")->check(CLI::NonNegativeNumber);
  app.add_option("--on-nonfinite", s.on_nonfinite,
                 "A step whose loss or gradients are not finite is not applied; then stop (the default: exit 1 naming the "
                 "step and the first such gradient) or skip it and go on")
      ->check(CLI::IsMember({"stop", "skip"}));
  app.add_option("--threads", s.threads, "Threads (default: all cores)")->check(CLI::Range(1, 1024));
  app.add_flag("!--no-test", s.test, "Skip the test-set evaluation at the end");
  app.add_option("--check-replicas", s.check_replicas,
                 "Under mpirun: compare a hash of the parameters across processes every N steps; stop if they differ")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--dist-timeout", s.dist_timeout, "Under mpirun: seconds a process waits for the others before ending the job")
      ->check(CLI::PositiveNumber);
}

void merge_given(const CLI::App& app, const TrainSettings& given, TrainSettings& out) {
  auto set = [&](const char* flag, auto member) {
    if (app.get_option(flag)->count() > 0) out.*member = given.*member;
  };
  set("--epochs", &TrainSettings::epochs);
  set("--lr", &TrainSettings::lr);
  set("--schedule", &TrainSettings::schedule);
  set("--data", &TrainSettings::data);
  set("--tokenizer", &TrainSettings::tokenizer);
  set("--seed", &TrainSettings::seed);
  set("--validation", &TrainSettings::validation);
  set("--folds", &TrainSettings::folds);
  set("--fold", &TrainSettings::fold);
  set("--run-dir", &TrainSettings::run_dir);
  set("--no-save", &TrainSettings::save);
  set("--checkpoint", &TrainSettings::checkpoint);
  set("--checkpoint-every", &TrainSettings::checkpoint_every);
  set("--resume", &TrainSettings::resume);
  set("--init-from", &TrainSettings::init_from);
  set("--log", &TrainSettings::log);
  set("--early-stopping", &TrainSettings::patience);
  set("--monitor", &TrainSettings::monitor);
  set("--monitor-mode", &TrainSettings::monitor_mode);
  set("--min-delta", &TrainSettings::min_delta);
  set("--no-shuffle", &TrainSettings::shuffle);
  set("--augment", &TrainSettings::augment);
  set("--normalize", &TrainSettings::normalize);
  set("--balance-classes", &TrainSettings::balance_classes);
  set("--max-steps", &TrainSettings::max_steps);
  set("--threads", &TrainSettings::threads);
  set("--on-nonfinite", &TrainSettings::on_nonfinite);
  set("--no-test", &TrainSettings::test);
  set("--check-replicas", &TrainSettings::check_replicas);
  set("--dist-timeout", &TrainSettings::dist_timeout);
}

namespace {

Split make_split(const TrainSettings& s, int64_t examples) {
  if (s.folds <= 0) return train_validation_split(examples, s.validation, s.seed);
  if (s.fold < 0 || s.fold >= s.folds) throw Error(fmt::format("--fold {} is not one of the {} folds", s.fold, s.folds));
  return kfold(examples, s.folds, s.seed)[static_cast<size_t>(s.fold)];
}

// A text classifier's split is fixed by the hash of each text; folds would mix its parts.
Split fixed_split(const TrainSettings& s, const Split& split) {
  if (s.folds > 0) throw Error("--folds does not apply: this data's train/validation/test split is fixed by a hash of each text");
  return split;
}

// Normalisation rewrites the features: byte images become f32 here.
std::optional<Normalizer> normalize(bool on, Data& data, const Split& split) {
  if (!on) return std::nullopt;
  if (data.train.feature_dtype() != DType::f32) throw Error("--normalize applies to float features only");
  materialize_features(data.train);
  materialize_features(data.test);
  Normalizer n = Normalizer::fit(data.train.features, split.train);
  n.apply(data.train.features);
  if (data.has_test) n.apply(data.test.features);
  return n;
}

LoaderOptions train_loader(int64_t batch, const TrainSettings& s) {
  LoaderOptions o;
  o.batch_size = batch;
  o.shuffle = s.shuffle;
  o.balance_classes = s.balance_classes;
  o.drop_last = true;  // the compiled step's batch is static
  if (s.augment) {
    // Fashion-MNIST-sized images: small shifts, flips, rotations and zooms.
    o.augment.crop_padding = 2;
    o.augment.horizontal_flip = true;
    o.augment.max_rotation_degrees = 10;
    o.augment.min_scale = 0.9;
    o.augment.max_scale = 1.1;
  }
  return o;
}

// The measures that improve upwards; the others (losses, perplexity, bits) improve downwards.
bool maximizes(const TrainSettings& s) {
  if (!s.monitor_mode.empty()) return s.monitor_mode == "max";
  return s.monitor == "val_accuracy" || s.monitor == "val_macro_f1" || s.monitor == "val_auc";
}

// The validation measures the trainer computes itself.
constexpr const char* kTrainerMeasures[] = {"val_loss", "val_accuracy", "val_macro_f1", "val_auc", "val_ppl", "val_bpc"};

// The validation measures a model has: the trainer's own and its `metric NAME` outputs.
std::vector<std::string> monitorable(const Manifest& m) {
  std::vector<std::string> names(std::begin(kTrainerMeasures), std::end(kTrainerMeasures));
  for (const auto& metric : own_metrics(m.function("forward"))) names.push_back("val_" + metric.second);
  return names;
}

// A monitor the model cannot report, or a metric of the model's own without a direction, would
// leave early stopping and plateau watching nothing: an error before training starts.
void check_monitor(const Manifest& m, const TrainSettings& s) {
  auto names = monitorable(m);
  auto at = std::find(names.begin(), names.end(), s.monitor);
  if (at == names.end())
    throw Error(fmt::format("--monitor {}: not a validation measure of this model; expected one of: {}", s.monitor,
                            fmt::join(names, ", ")));
  bool own = at - names.begin() >= static_cast<std::ptrdiff_t>(std::size(kTrainerMeasures));
  if (own && s.monitor_mode.empty())
    throw Error(fmt::format("--monitor {} is the model's own metric: say which way it improves with --monitor-mode max or min "
                            "(monitor_mode in the train section)", s.monitor));
}

// The monitored measure of an epoch's record; a measure this kind of model lacks (val_ppl of a
// classifier, say) is an error naming the ones it has.
double monitored_value(const LogRecord& rec, const std::string& name) {
  std::vector<std::string> have;
  for (const auto& [key, value] : rec) {
    if (key == name) return std::get<double>(value);
    if (key.starts_with("val_")) have.push_back(key);
  }
  throw Error(fmt::format("--monitor {}: this model's validation reports {}", name, fmt::join(have, ", ")));
}

EarlyStopping make_early_stopping(const TrainSettings& s) {
  EarlyStopping::Options eo;
  eo.patience = std::max<int64_t>(1, s.patience);  // should_stop is only consulted when s.patience > 0
  eo.mode = maximizes(s) ? EarlyStopping::Mode::max : EarlyStopping::Mode::min;
  eo.min_delta = s.min_delta;
  return EarlyStopping(eo);
}

// The settings as run.json records them, by flag name.
LogRecord settings_record(const TrainSettings& s) {
  auto flag = [](bool b) { return LogValue(int64_t{b}); };
  return {{"epochs", s.epochs}, {"lr", s.lr}, {"schedule", s.schedule}, {"data", s.data}, {"tokenizer", s.tokenizer},
          {"seed", static_cast<int64_t>(s.seed)}, {"validation", s.validation}, {"folds", s.folds}, {"fold", s.fold},
          {"checkpoint", s.checkpoint}, {"checkpoint_every", s.checkpoint_every}, {"resume", s.resume},
          {"init_from", s.init_from}, {"log", s.log}, {"early_stopping", s.patience}, {"monitor", s.monitor},
          {"monitor_mode", s.monitor_mode}, {"min_delta", s.min_delta}, {"shuffle", flag(s.shuffle)},
          {"augment", flag(s.augment)}, {"normalize", flag(s.normalize)},
          {"balance_classes", flag(s.balance_classes)}, {"max_steps", s.max_steps},
          {"threads", int64_t{stag_get_num_threads()}}, {"test", flag(s.test)}, {"run_dir", s.run_dir},
          {"on_nonfinite", s.on_nonfinite}};
}

// One run of the training loop: what it keeps between steps, and the steps, epoch ends and
// checkpoints that move it on. Data order, augmentation and dropout are keyed by (seed, epoch,
// step), so the state a checkpoint saves is all a resumed run needs to repeat this one.
class TrainingRun {
 public:
  TrainingRun(Model& model, const TrainSettings& s, Data data, LrPlan lr, const Collective* dp);
  /// Trains to the end (epochs, --max-steps or early stopping); throws StopRequested after
  /// saving when SIGINT or SIGTERM asked to stop. Returns what train() returns.
  double run();

 private:
  void start();
  void print_bigram_baseline() const;
  void print_majority_baseline() const;
  void resume();
  void open_folder();
  void run_epoch(int64_t epoch);
  std::optional<double> step(const Batch& b, int64_t epoch);
  std::vector<Tensor> run_step(const Batch& b);
  std::vector<Tensor> parallel_step(const Batch& b);
  void average(std::vector<Tensor>& out);
  void share_decisions();
  bool stopping() const { return dp_ ? stop_agreed_ != 0 : stop_requested(); }
  bool lead() const { return !dp_ || dp_->rank == 0; }
  std::string nonfinite_cause(const std::vector<Tensor>& out, double loss) const;
  void not_applied(const std::string& cause, int64_t epoch);
  void end_epoch(int64_t epoch, ProgressBar& bar, double train_loss, double seconds);
  Metrics validate(int64_t epoch, std::string& summary, LogRecord& rec);
  void restore_best();
  double test();
  void checkpoint();
  std::string nonfinite_param() const;
  void save_best();
  [[noreturn]] void stop();
  std::string saved_where() const;
  void report() const;
  void log(const LogRecord& record);
  StateMap state_now() const;
  double lr_at(int64_t epoch) const { return lr_.lr(epoch, step_); }

  Model& model_;
  const TrainSettings& s_;
  const Collective* dp_;  // data parallelism: this process's rank and the others; null alone
  const FunctionSpec& step_fn_;
  Inputs in_;
  int loss_out_;
  int nonfinite_out_;
  std::vector<std::string> nonfinite_names_;  // what each element of the output `nonfinite` flags
  int64_t local_batch_;  // the compiled functions' batch: this process's share
  int64_t batch_;        // the global batch: every process's share
  std::vector<float> reduce_buf_;
  // Data parallelism with split points in the compiled code (dp.buckets): the buckets' all-reduces.
  std::optional<BucketExchange> buckets_;
  // Data parallelism: the signal some process was stopped by, as all agreed at the last step
  // (0: none). Each process's own signal is not enough: they would stop at different steps.
  int stop_agreed_ = 0;
  Data data_;
  int64_t num_classes_;
  Split split_;
  std::optional<Normalizer> normalizer_;  // before loader_: its thread reads the normalised data
  LoaderOptions eval_opts_;
  BatchIterator loader_;
  BatchPlan val_plan_;
  int64_t steps_per_epoch_;
  LrPlan lr_;
  EarlyStopping early_;  // tracks the best epoch for best.safetensors even without early stopping
  std::vector<Tensor> best_;
  std::optional<RunFolder> folder_;
  std::optional<JsonLinesWriter> user_log_, folder_log_;
  Tensor lr_t_ = Tensor::from<float>({}, {0.f});
  Tensor step_t_ = Tensor::from<int64_t>({}, {0});
  int64_t step_ = 0, saved_step_ = -1, skipped_ = 0;
  double last_val_accuracy_ = std::numeric_limits<double>::quiet_NaN();
  bool done_ = false, early_stopped_ = false, improved_ = false;
};

// The compiler's list of what the train step's `nonfinite` output flags (compiler/train/train_step.h's
// kNonfiniteAttr): "loss", "grad.P" and "update.S", in order.
std::vector<std::string> nonfinite_names(const Manifest& m) {
  std::vector<std::string> names;
  auto v = attr(m, "step.nonfinite");
  if (!v || !v->is_string()) return names;
  std::string all = v->get<std::string>();
  for (size_t start = 0; start <= all.size();) {
    size_t comma = std::min(all.find(',', start), all.size());
    names.push_back(all.substr(start, comma - start));
    start = comma + 1;
  }
  return names;
}

int64_t batch_of(const BufferSpec& features) { return features.shape.empty() ? 1 : features.shape[0]; }

int64_t classes_in(const Model& model, const Dataset& train) {
  int64_t n = vocabulary_of(model);
  for (int64_t v : train.labels.values<int64_t>()) n = std::max(n, v + 1);
  return n;
}

TrainingRun::TrainingRun(Model& model, const TrainSettings& s, Data data, LrPlan lr, const Collective* dp)
    : model_(model),
      s_(s),
      dp_(dp),
      step_fn_(model.manifest().function(dp ? "gradients" : "train_step")),
      in_(map_inputs(step_fn_)),
      loss_out_(output_index(step_fn_, "loss")),
      // split: update's `nonfinite` follows the gradients' outputs (parallel_step)
      nonfinite_out_(dp ? static_cast<int>(step_fn_.outputs.size()) : output_index(step_fn_, "nonfinite")),
      nonfinite_names_(nonfinite_names(model.manifest())),
      local_batch_(batch_of(step_fn_.inputs[in_.features])),
      batch_(local_batch_ * (dp ? dp->ranks : 1)),
      data_(std::move(data)),
      num_classes_(classes_in(model, data_.train)),
      split_(data_.fixed_split ? fixed_split(s, *data_.fixed_split) : make_split(s, data_.train.size())),
      normalizer_(normalize(s.normalize, data_, split_)),
      eval_opts_(eval_loader(local_batch_)),
      loader_(data_.train, split_.train, train_loader(batch_, s), s.seed),
      val_plan_(data_.train, split_.validation, eval_opts_, s.seed),
      steps_per_epoch_(loader_.plan().batches_per_epoch()),
      lr_(std::move(lr)),
      early_(make_early_stopping(s)) {
  if (steps_per_epoch_ == 0)
    throw Error(fmt::format("the training split has {} examples, fewer than one batch of {}", split_.train.size(), batch_));
  if (auto specs = bucket_specs(model.manifest()); dp_ && !specs.empty()) buckets_.emplace(*dp_, std::move(specs), model.manifest().functions);
}

double TrainingRun::run() {
  start();
  done_ = s_.max_steps > 0 && step_ >= s_.max_steps;  // resumed at the end
  for (int64_t epoch = loader_.state().epoch; epoch < s_.epochs && !done_; ++epoch) run_epoch(epoch);
  if (s_.patience > 0 && !best_.empty()) restore_best();
  if (saved_step_ != step_) checkpoint();
  if (stopping()) stop();
  double accuracy = s_.test && data_.has_test && lead() ? test() : last_val_accuracy_;
  report();
  if (stopping()) stop();
  return accuracy;
}

// The loss a language model must beat: the character bigram's on the same split.
void TrainingRun::print_bigram_baseline() const {
  double base = bigram_loss(data_.train, split_.train, split_.validation, num_classes_);
  fmt::print("baseline: a character bigram model (add-one smoothing) has val_loss {:.4f}  val_ppl {:.3f}  val_bpc {:.4f}\n",
             base, std::exp(base), base / std::log(2.0));
}

// The metrics of predicting class c for every example.
Metrics constant_prediction(std::span<const int64_t> labels, int64_t c, int64_t classes) {
  std::vector<float> scores(labels.size() * static_cast<size_t>(classes), 0.f);
  for (size_t i = 0; i < labels.size(); ++i) scores[i * static_cast<size_t>(classes) + static_cast<size_t>(c)] = 1;
  MetricsAccumulator acc(classes);
  acc.add(scores, labels);
  return acc.compute();
}

// The score a classifier must beat: always the training split's most frequent class.
void TrainingRun::print_majority_baseline() const {
  auto train = data_.train.labels.values<int64_t>();
  std::vector<int64_t> count(static_cast<size_t>(num_classes_), 0);
  for (int64_t i : split_.train) ++count[static_cast<size_t>(train[i])];
  auto major = std::max_element(count.begin(), count.end()) - count.begin();
  Metrics m = constant_prediction(data_.test.labels.values<int64_t>(), major, num_classes_);
  std::string name = static_cast<size_t>(major) < data_.class_names.size() ? data_.class_names[major] : std::to_string(major);
  fmt::print("baseline: the majority class ({}) has test accuracy {:.4f}  macro_f1 {:.4f}\n", name, m.accuracy, m.macro_f1);
}

void TrainingRun::start() {
  model_.init(static_cast<int64_t>(s_.seed));
  // A resumed run takes every parameter from its checkpoint: starting weights would only be
  // overwritten (and their "initialised" line would say otherwise).
  if (!s_.resume.empty()) resume();
  else if (s_.initialize) s_.initialize(model_);
  else if (!s_.init_from.empty()) init_from(model_, read_safetensors(s_.init_from).tensors, s_.init_from);
  open_folder();
  // A resumed run continues its logs; a fresh one starts them afresh.
  if (!s_.log.empty() && lead()) user_log_.emplace(s_.log, s_.resume.empty());
  if (folder_) folder_log_.emplace(folder_->log(), s_.resume.empty());
  // How examples are drawn changes what the scores mean, so the first line says it.
  std::string order = s_.balance_classes ? ", classes balanced by sampling" : s_.shuffle ? "" : ", in the data's order";
  if (dp_) order += fmt::format(", {} processes of {} examples each", dp_->ranks, local_batch_);
  if (auto n = attr(model_.manifest(), "dp.buckets")) order += fmt::format(", gradients all-reduced in {} buckets during the backward", n->dump());
  fmt::print("training {} on {}: {} train / {} validation examples, batch {}, {} steps an epoch, {} threads{}\n",
             model_.manifest().model, s_.data, split_.train.size(), split_.validation.size(), batch_, steps_per_epoch_,
             stag_get_num_threads(), order);
  if (data_.chars && !split_.validation.empty()) print_bigram_baseline();
  if (data_.fixed_split && data_.has_test) print_majority_baseline();
}

void TrainingRun::resume() {
  std::string path = resolve_checkpoint(s_.resume, Prefer::last).string();
  auto file = read_safetensors(path);
  StateMap meta(file.metadata.begin(), file.metadata.end());
  model_.load_params(file.tensors, path);
  step_ = parse_int(state_get(meta, "step"), "step");
  if (meta.count("skipped_steps")) skipped_ = parse_int(meta.at("skipped_steps"), "skipped_steps");
  loader_.restore(LoaderState::restore(meta));
  if (meta.count("early_stopping.best_epoch")) early_.restore(meta);
  if (lr_.plateau) lr_.plateau->restore(meta);
  fmt::print("resumed from {} at epoch {}, step {}\n", path, loader_.state().epoch + 1, step_);
}

// --run-dir, else the folder being resumed, else the next runs/MODEL-N.
void TrainingRun::open_folder() {
  if (!s_.save || !lead()) return;
  if (!s_.run_dir.empty()) folder_ = RunFolder::open(s_.run_dir);
  else if (!s_.resume.empty() && fs::is_directory(s_.resume)) folder_ = RunFolder{s_.resume};
  else folder_ = RunFolder::create_next("runs", model_.manifest().model);
  RunRecord r{s_.command, model_.manifest().model, s_.model_hash, s_.model_hash_of, s_.seed, stag_get_num_threads(),
              settings_record(s_)};
  folder_->write_run_json(r);
}

void TrainingRun::run_epoch(int64_t epoch) {
  ProgressBar bar(stdout, fmt::format("epoch {}/{}", epoch + 1, s_.epochs), steps_per_epoch_ * batch_, progress_options_for(stdout));
  double loss_sum = 0;
  int64_t losses = 0, examples = loader_.state().position * batch_;
  double t0 = steady_seconds();
  while (!(s_.max_steps > 0 && step_ >= s_.max_steps)) {
    auto b = loader_.next();
    if (!b) break;
    if (auto loss = step(*b, epoch)) {
      loss_sum += *loss;
      ++losses;
    }
    examples += b->size;
    bar.update(examples, loss_sum / static_cast<double>(losses));
    if (stopping()) {
      bar.finish("(stopping)");
      stop();
    }
  }
  done_ = s_.max_steps > 0 && step_ >= s_.max_steps;
  end_epoch(epoch, bar, losses ? loss_sum / static_cast<double>(losses) : 0.0, steady_seconds() - t0);
}

// The compiled step on `b`: the outputs of train_step, or of gradients then update's `nonfinite`.
std::vector<Tensor> TrainingRun::run_step(const Batch& b) {
  if (dp_) return parallel_step(b);
  std::vector<const Tensor*> args(step_fn_.inputs.size(), nullptr);
  args[in_.features] = &b.features;
  if (in_.labels >= 0) args[in_.labels] = &b.labels;
  if (in_.lr >= 0) args[in_.lr] = &lr_t_;
  if (in_.step >= 0) args[in_.step] = &step_t_;
  return model_.run("train_step", args);
}

// This rank's rows of the global batch through gradients; the gradients and the loss averaged
// over the ranks; update applies the average, so every rank takes the same step. The update's
// `nonfinite` joins the outputs last.
std::vector<Tensor> TrainingRun::parallel_step(const Batch& b) {
  Tensor x = rows_of(b.features, dp_->rank * local_batch_, local_batch_);
  Tensor y = in_.labels >= 0 ? rows_of(b.labels, dp_->rank * local_batch_, local_batch_) : Tensor();
  std::vector<const Tensor*> args(step_fn_.inputs.size(), nullptr);
  args[in_.features] = &x;
  if (in_.labels >= 0) args[in_.labels] = &y;
  // Dropout: the single-process key, and the rank, so that these rows get the global batch's masks.
  if (in_.step >= 0) args[in_.step] = &step_t_;
  Tensor rank = Tensor::from<int64_t>({}, {dp_->rank});
  if (in_.rank >= 0) args[in_.rank] = &rank;
  if (buckets_) buckets_->rider = stop_vote(stop_signal());
  std::vector<Tensor> out;
  if (buckets_) {
    out = buckets_->outputs(step_fn_);
    model_.run("gradients", args, out);
  } else {
    out = model_.run("gradients", args);
    average(out);
  }
  const FunctionSpec& update = model_.manifest().function("update");
  std::vector<const Tensor*> uargs;
  for (const auto& input : update.inputs)
    uargs.push_back(input.name == "lr" ? &lr_t_ : &out[static_cast<size_t>(output_index(step_fn_, input.name))]);
  // With buckets, update's split points write the means into its inputs: `out`'s loss and gradients.
  out.push_back(std::move(model_.run("update", uargs)[0]));
  if (buckets_) stop_agreed_ = agreed_stop(buckets_->rider, dp_->ranks);
  return out;
}

// The loss and every gradient, averaged over the ranks through one buffer, with the stop votes.
void TrainingRun::average(std::vector<Tensor>& out) {
  std::vector<Tensor*> shared;
  for (size_t i = 0; i < out.size(); ++i)
    if (static_cast<int>(i) == loss_out_ || step_fn_.outputs[i].name.starts_with("grad.")) shared.push_back(&out[i]);
  stop_agreed_ = agreed_stop(average_over_ranks(*dp_, shared, stop_vote(stop_signal()), reduce_buf_), dp_->ranks);
}

std::optional<double> TrainingRun::step(const Batch& b, int64_t epoch) {
  lr_t_.values<float>()[0] = static_cast<float>(lr_at(epoch));
  step_t_.values<int64_t>()[0] = step_;
  auto out = run_step(b);
  double loss = out[loss_out_].values<float>()[0];
  if (std::string cause = nonfinite_cause(out, loss); !cause.empty()) {
    not_applied(cause, epoch);
    return std::nullopt;
  }
  ++step_;
  if (dp_ && s_.check_replicas > 0 && step_ % s_.check_replicas == 0) check_replicas(*dp_, model_, step_);
  log({{"event", std::string("step")}, {"step", step_}, {"epoch", epoch + 1}, {"loss", loss}});
  if (s_.checkpoint_every > 0 && step_ % s_.checkpoint_every == 0) checkpoint();
  return loss;
}

// Why the step's outputs say it was not applied, or "" when they say it was.
std::string TrainingRun::nonfinite_cause(const std::vector<Tensor>& out, double loss) const {
  std::string cause = fmt::format("the loss is {}", loss);
  if (nonfinite_out_ < 0) return std::isfinite(loss) ? "" : cause;
  auto flags = out[nonfinite_out_].values<float>();
  for (size_t i = 1; i < flags.size() && i < nonfinite_names_.size(); ++i)
    if (flags[i] != 0 && nonfinite_names_[i].starts_with("grad."))
      return cause + "; first non-finite gradient: " + nonfinite_names_[i].substr(5);
  return flags.size() > 0 && flags[0] != 0 ? cause : "";
}

// A step the compiled code did not apply. Its batch is used up either way, so the step counts
// (a resumed run goes on with the next batch, as skip would have).
void TrainingRun::not_applied(const std::string& cause, int64_t epoch) {
  ++step_;
  ++skipped_;
  log({{"event", std::string("skipped")}, {"step", step_}, {"epoch", epoch + 1}, {"cause", cause},
       {"skipped_steps", skipped_}});
  std::string what = fmt::format("step {}: {}", step_, cause);
  if (s_.on_nonfinite == "stop") {
    checkpoint();
    throw Error(fmt::format("{}; the step was not applied; {}", what, saved_where()));
  }
  // The first ten, then every hundredth: a diverged run must not flood the terminal.
  if (skipped_ <= 10 || skipped_ % 100 == 0)
    fmt::print(stderr, "stag: warning: {}; the step was skipped ({} so far)\n", what, skipped_);
}

void TrainingRun::end_epoch(int64_t epoch, ProgressBar& bar, double train_loss, double seconds) {
  std::string summary = fmt::format("loss {:.4f}", train_loss);
  LogRecord rec = {{"event", std::string("epoch")}, {"epoch", epoch + 1}, {"step", step_}, {"train_loss", train_loss},
                   {"lr", lr_at(epoch)}, {"seconds", seconds}, {"skipped_steps", skipped_}};
  std::optional<Metrics> val;
  if (!split_.validation.empty() && lead()) val = validate(epoch, summary, rec);
  if (dp_) share_decisions();
  bar.finish(summary);
  // The per-class view of the validation set (not for language models' many classes).
  if (val && val->num_classes() > 0 && num_classes_ <= 20) fmt::print("{}", format_class_table(*val, data_.class_names));
  log(rec);
  // After early stopping the last checkpoint holds the restored best weights instead.
  if (!early_stopped_) checkpoint();
  if (improved_) save_best();
  if (stopping()) stop();
}

// Adds the validation metrics to the epoch's summary and record, and steps what they drive:
// the plateau schedule, the best epoch and early stopping.
Metrics TrainingRun::validate(int64_t epoch, std::string& summary, LogRecord& rec) {
  Metrics m = evaluate_plan(model_, val_plan_, num_classes_);
  last_val_accuracy_ = m.accuracy;
  summary += "  " + metrics_line("val_", m);
  rec.push_back({"val_loss", m.loss});
  rec.push_back({"val_accuracy", m.accuracy});
  if (m.per_token) rec.push_back({"val_ppl", m.perplexity()});
  if (m.per_token) rec.push_back({"val_bpc", m.bits()});
  if (!m.per_token) rec.push_back({"val_macro_f1", m.macro_f1});
  if (m.macro_auc) rec.push_back({"val_auc", *m.macro_auc});
  for (const auto& [name, value] : m.custom) rec.push_back({"val_" + name, value});
  double monitored = monitored_value(rec, s_.monitor);
  if (lr_.plateau) lr_.plateau->step(monitored);
  improved_ = early_.update(epoch, monitored);
  if (improved_ && s_.patience > 0) {
    best_.clear();
    for (const auto& p : model_.params()) best_.push_back(p.clone());
  }
  if (s_.patience > 0 && early_.should_stop()) {
    summary += fmt::format("  (early stop: best epoch {})", early_.best_epoch() + 1);
    early_stopped_ = done_ = true;
  }
  return m;
}

// Rank 0 alone validates: the others take its decisions (stop, and the plateau schedule's state).
void TrainingRun::share_decisions() {
  StateMap m;
  if (lead()) {
    m = {{"done", std::to_string(done_)}, {"early_stopped", std::to_string(early_stopped_)}};
    if (lr_.plateau) m.merge(lr_.plateau->save());
  }
  std::string text = lead() ? nlohmann::json(m).dump() : "";
  dp_->broadcast(text);
  if (lead()) return;
  m = nlohmann::json::parse(text).get<StateMap>();
  done_ = m.at("done") == "1";
  early_stopped_ = m.at("early_stopped") == "1";
  if (lr_.plateau) lr_.plateau->restore(m);
}

void TrainingRun::restore_best() {
  for (size_t i = 0; i < best_.size(); ++i) model_.params()[i] = std::move(best_[i]);
  best_.clear();
  fmt::print("restored the weights of epoch {} (best {} {:.4f})\n", early_.best_epoch() + 1, s_.monitor, early_.best_value());
  checkpoint();
}

double TrainingRun::test() {
  BatchPlan test_plan(data_.test, {}, eval_opts_, s_.seed);
  Metrics m = evaluate_plan(model_, test_plan, num_classes_);
  fmt::print("test: {}\n", metrics_line("", m));
  if (m.num_classes() > 0)
    fmt::print("{}\n{}", format_class_table(m, data_.class_names), format_confusion_matrix(m, data_.class_names));
  if (folder_) draw_eval_plots(folder_->dir, m, data_.class_names, fmt::format("{} on {}", model_.manifest().model, s_.data));
  log({{"event", std::string("test")}, {"loss", m.loss}, {"accuracy", m.accuracy}, {"macro_f1", m.macro_f1}});
  return m.accuracy;
}

// The first parameter holding a NaN or an infinity, or "": an update from finite gradients can
// still overflow, and such a state is never checkpointed.
std::string TrainingRun::nonfinite_param() const {
  const auto& specs = model_.manifest().params;
  for (size_t i = 0; i < specs.size(); ++i) {
    const Tensor& p = model_.params()[i];
    if (p.dtype() != DType::f32) continue;
    auto v = p.values<float>();
    if (!std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); })) return specs[i].name;
  }
  return "";
}

void TrainingRun::checkpoint() {
  if (!lead()) {
    saved_step_ = step_;
    return;
  }
  if (std::string bad = nonfinite_param(); !bad.empty()) {
    fmt::print(stderr, "stag: warning: step {}: {} holds a NaN or an infinity; not checkpointed\n", step_, bad);
    return;
  }
  StateMap state = state_now();
  if (folder_) save_checkpoint(model_, folder_->last().string(), state);
  if (!s_.checkpoint.empty()) save_checkpoint(model_, s_.checkpoint, state);
  saved_step_ = step_;
}

void TrainingRun::save_best() {
  if (folder_ && lead()) save_checkpoint(model_, folder_->best().string(), state_now());
}

// Under data parallelism every process stops after the same step, rank 0 saving; a process the
// signal has not reached yet stops by the others'.
void TrainingRun::stop() {
  if (saved_step_ != step_) checkpoint();
  int signal = stop_signal() != 0 ? stop_signal() : stop_agreed_;
  throw_stop(step_, lead() ? saved_where() : "rank 0 saves the checkpoint", signal);
}

std::string TrainingRun::saved_where() const {
  std::string also = s_.checkpoint.empty() ? "" : fmt::format(" (and {})", s_.checkpoint);
  if (folder_) return fmt::format("checkpoint: {}{}; continue with --resume {}", folder_->last().string(), also, folder_->dir.string());
  if (!s_.checkpoint.empty()) return fmt::format("checkpoint: {}; continue with --resume {}", s_.checkpoint, s_.checkpoint);
  return "nothing saved (--no-save and no --checkpoint)";
}

// Where everything is, as the run's last line.
void TrainingRun::report() const {
  if (!s_.checkpoint.empty()) fmt::print("checkpoint: {}\n", s_.checkpoint);
  if (!folder_) return;
  std::string best = fs::exists(folder_->best())
                         ? fmt::format(" best.safetensors (epoch {}, {} {:.4f}),", early_.best_epoch() + 1, s_.monitor, early_.best_value())
                         : "";
  fmt::print("run folder {}: last.safetensors (step {}),{} log.jsonl, run.json\n", folder_->dir.string(), step_, best);
}

void TrainingRun::log(const LogRecord& record) {
  LogRecord rec = record;
  rec.push_back({"ranks", int64_t{dp_ ? dp_->ranks : 1}});
  if (user_log_) user_log_->write(rec);
  if (folder_log_) folder_log_->write(rec);
}

StateMap TrainingRun::state_now() const {
  StateMap m = loader_.state().save();
  m["step"] = std::to_string(step_);
  m["skipped_steps"] = std::to_string(skipped_);
  if (!split_.validation.empty()) for (auto& [k, v] : early_.save()) m[k] = v;
  if (lr_.plateau) for (auto& [k, v] : lr_.plateau->save()) m[k] = v;
  if (normalizer_) for (auto& [k, v] : normalizer_->save()) m[k] = v;
  if (data_.chars) m.merge(data_.chars->save());
  m.merge(StateMap(data_.tokenizer));
  m["model"] = model_.manifest().model;
  return m;
}

}  // namespace

namespace {

// "; NOTE: a, b, c and 4 more" for a list of names, "" for none.
std::string names_note(const char* note, const std::vector<std::string>& names) {
  if (names.empty()) return "";
  constexpr size_t kShown = 6;
  std::vector<std::string> shown(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(std::min(names.size(), kShown)));
  std::string more = names.size() > kShown ? fmt::format(" and {} more", names.size() - kShown) : "";
  return fmt::format("; {}: {}{}", note, fmt::join(shown, ", "), more);
}

}  // namespace

// Transfer learning as PyTorch's load_state_dict(strict=False): what matches by name is taken,
// but a tensor of another shape is an error, since a silently skipped layer trains from scratch.
void init_from(Model& model, std::map<std::string, Tensor> tensors, const std::string& source) {
  std::vector<std::string> kept;
  int64_t taken = 0, weights = 0;
  for (size_t i = 0; i < model.params().size(); ++i) {
    const BufferSpec& p = model.manifest().params[i];
    // The model's weights only: a fresh run starts its own optimizer state.
    if (p.name.starts_with("optim.")) continue;
    ++weights;
    auto it = tensors.find(p.name);
    if (it == tensors.end()) {
      kept.push_back(p.name);
      continue;
    }
    if (it->second.dtype() != p.dtype || it->second.shape() != p.shape)
      throw Error(fmt::format("--init-from {}: parameter '{}' is {} there, but {}{} in model {}", source, p.name,
                              it->second.type_string(), dtype_name(p.dtype), shape_to_string(p.shape), model.manifest().model));
    model.params()[i] = std::move(it->second);
    tensors.erase(it);
    ++taken;
  }
  std::vector<std::string> unused;
  for (const auto& [name, t] : tensors)
    if (!name.starts_with("optim.")) unused.push_back(name);
  if (taken == 0)
    throw Error(fmt::format("--init-from {}: no parameter of model {} is there by name{}{}", source, model.manifest().model,
                            names_note("the model's", kept), names_note("the file's", unused)));
  fmt::print("initialised {} of {} parameters from {}{}{}\n", taken, weights, source,
             names_note("kept their initial values", kept), names_note("not in the model, unused", unused));
}

double train(Model& model, const TrainSettings& s, DataPreload* preload, const Collective* collective) {
  StopSignalScope signals;
  if (s.threads > 0) stag_set_num_threads(s.threads);
  check_monitor(model.manifest(), s);
  LrPlan lr = plan_lr(s.schedule, s.lr, maximizes(s));  // a bad schedule fails before the data loads
  const FunctionSpec& step_fn = model.manifest().function(collective ? "gradients" : "train_step");
  if (output_index(step_fn, "loss") < 0) throw Error("the train step has no 'loss' output");
  const BufferSpec& features = step_fn.inputs[map_inputs(step_fn).features];
  // Data read while the model compiled, when it is what this run reads.
  bool preloaded = preload && preload->source() == s.data && !reads_text(features) && preload->state_->data.valid();
  Data data = preloaded ? preload->state_->data.get() : load_data(s.data, step_fn, vocabulary_of(model), s.tokenizer, s.seed, nullptr);
  check_shape(features, data.train, "training");
  TrainingRun run(model, s, std::move(data), std::move(lr), collective);
  return run.run();
}

double evaluate(Model& model, const std::string& source, int64_t seed, const StateMap& state, const std::string& plots) {
  const FunctionSpec& f = model.manifest().function("forward");
  Inputs in = map_inputs(f);
  Data data = load_data(source, f, vocabulary_of(model), "", 0, &state);
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
  if (!plots.empty()) draw_eval_plots(plots, m, data.class_names, fmt::format("{} on {}", model.manifest().model, source));
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
  Data data = load_data(source, f, vocabulary_of(model), "", 0, &state);
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

namespace stag::rt {

Dataset load_example_split(const std::string& source, bool test) {
  Data d = load_examples(source);
  if (test && !d.has_test) throw Error(fmt::format("data '{}' has no test split", source));
  return test ? std::move(d.test) : std::move(d.train);
}

}  // namespace stag::rt

namespace stag::rt {

LogRecord train_settings_record(const TrainSettings& s) { return settings_record(s); }

}  // namespace stag::rt
