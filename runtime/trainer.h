#pragma once
/// The training loop shared by `stag train` (JIT) and the standalone trainers `stag build`
/// writes (AOT): data, the compiled train step, validation metrics, learning-rate schedules,
/// early stopping, checkpoints and exact resume, progress and a JSON-lines log.

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/data/dataset.h"
#include "runtime/model.h"
#include "runtime/progress.h"
#include "runtime/state_map.h"

namespace stag::rt {

/// The settings of a run that do not change the compiled code. Defaults come from the model's
/// `train { ... }` section (the manifest's train.* attributes); flags override them.
struct TrainSettings {
  int64_t epochs = 10;
  double lr = 1e-3;
  /// parse_schedule's spelling (step:5:0.5, cosine:T_MAX, warmup:100+cosine:5000, ...) or
  /// plateau[:PATIENCE[:FACTOR]]. Step, multistep, exponential and plateau count epochs; the
  /// others count optimizer steps.
  std::string schedule = "constant";
  std::string data = "fashion-mnist";
  /// A text classifier's tokenizer: words:VOCAB_SIZE (WordTable) or sentencepiece:VOCAB_SIZE
  /// (SubwordTable), built on the training split and saved in checkpoints.
  std::string tokenizer = "words:8192";
  uint64_t seed = 0;
  double validation = 0.1;        ///< fraction of the training set held out
  int64_t folds = 0;              ///< k-fold cross-validation: validate on fold `fold` of k
  int64_t fold = 0;
  std::string run_dir;            ///< the run folder (empty: runs/MODEL-N, or the folder resumed)
  bool save = true;               ///< keep a run folder (run_dir.h); --no-save turns it off
  std::string checkpoint;         ///< also write every checkpoint to this file
  int64_t checkpoint_every = 0;   ///< also every N steps (0: at epoch ends and at the end only)
  std::string resume;             ///< continue exactly from this checkpoint or run folder
  std::string init_from;          ///< take matching parameters (by name) from this file
  std::string log;                ///< JSON lines, one object per epoch
  int64_t patience = 0;           ///< early stopping (0: off)
  /// The validation measure early stopping, best.safetensors and plateau watch: val_loss,
  /// val_accuracy, val_macro_f1, val_auc, val_ppl, val_bpc or val_NAME of a model's `metric NAME`.
  std::string monitor = "val_loss";
  /// "max" or "min": whether the monitor improves upwards; "" takes it from the measure (a
  /// model's own metric needs it).
  std::string monitor_mode;
  double min_delta = 0;           ///< an improvement must exceed this
  bool shuffle = true;            ///< a new order of the training examples every epoch
  bool augment = false;           ///< random crop, flip, rotation and scaling of images
  bool normalize = false;         ///< standardise features by the training split's mean and std
  bool balance_classes = false;   ///< draw training examples so that every class is equally likely
  int64_t max_steps = 0;          ///< stop after this many steps in all (0: no limit)
  int threads = 0;                ///< 0: all cores
  /// A step whose loss, gradients or new state are not finite is never applied (the compiled
  /// step keeps the old state); "stop" ends the run with an error naming the step and the first
  /// parameter whose gradient is not finite, "skip" goes on with the next batch.
  std::string on_nonfinite = "stop";
  bool test = true;               ///< report metrics on the test split at the end
  /// Data parallelism: compare a hash of the parameters across processes every N steps and
  /// stop with an error when they differ (0: never).
  int64_t check_replicas = 0;
  /// Data parallelism: seconds a process waits for the others before ending the job.
  double dist_timeout = 300;

  /// Set by the command, not by a flag: gives the parameters their starting values after
  /// init(seed), in place of reading --init-from as safetensors (`stag train model.onnx`: the
  /// model's initializers, then --init-from, which may be ONNX).
  std::function<void(Model&)> initialize;

  /// How the run was started, for run.json; set by the command, not by flags.
  std::vector<std::string> command;
  std::string model_hash;     ///< "sha256:HEX"
  std::string model_hash_of;  ///< the file hashed, or "manifest"
};

/// Reads the defaults from the manifest's training section.
TrainSettings settings_from_manifest(const Manifest& m);
/// Adds the flags of TrainSettings to a command line (both `stag train` and built trainers).
void add_train_flags(CLI::App& app, TrainSettings& s);
/// Copies into `out` the settings whose flags were given on `app`'s command line (for when the
/// defaults are known only after parsing, as in `stag train`, which reads the model first).
void merge_given(const CLI::App& app, const TrainSettings& given, TrainSettings& out);

struct Collective;

/// A data set being read on a background thread (preload_data), for train() to take.
class DataPreload {
 public:
  /// Waits for the thread when the data was not taken.
  ~DataPreload();
  DataPreload(const DataPreload&) = delete;
  DataPreload& operator=(const DataPreload&) = delete;
  const std::string& source() const;

 private:
  struct State;
  explicit DataPreload(std::unique_ptr<State> state);
  friend std::unique_ptr<DataPreload> preload_data(const std::string& source);
  friend double train(Model& model, const TrainSettings& s, DataPreload* preload, const Collective* collective);
  std::unique_ptr<State> state_;
};

/// Starts reading the data set `source` on another thread when that needs nothing from the model
/// — Fashion-MNIST, a directory of IDX files, .npy or .csv examples, not text — so that it
/// overlaps the model's compilation; nullptr for other sources. The result is exactly what
/// train() would load itself.
std::unique_ptr<DataPreload> preload_data(const std::string& source);

/// What data-parallel training needs from the processes' transport. runtime/dist implements it
/// over MPI; this library knows no MPI. A run of one process has none.
struct Collective {
  int rank = 0;
  int ranks = 1;
  /// Replaces every rank's `values` by their element-wise mean over the ranks, in place.
  std::function<void(std::span<float> values)> average;
  /// Gives every rank rank 0's `text`.
  std::function<void(std::string& text)> broadcast;
  /// Every rank's `value`, in rank order, on every rank.
  std::function<std::vector<uint64_t>(uint64_t value)> gather;
  /// Starts replacing every rank's `values` by their mean over the ranks, in place, without
  /// waiting (every rank starts the same ids in the same order, with buffers of the same size);
  /// `values` stays alive, and neither read nor written, until finish_average(id).
  std::function<void(int id, std::span<float> values)> start_average;
  /// Waits for start_average(id)'s mean; the ones started after it move on meanwhile.
  std::function<void(int id)> finish_average;
};

/// Trains `model`, which has the functions init, forward and train_step. Prints progress and
/// metrics to stdout; throws Error on bad data or settings. Writes a checkpoint however the run
/// ends: at each epoch end, after --max-steps, after early stopping (the best weights), and on
/// SIGINT or SIGTERM, after which it throws StopRequested (stop_signal.h) saying where. Returns the test accuracy (or the
/// last validation accuracy without a test split; NaN when there are no labels to score).
/// `preload`, when given, is used if it reads s.data and the model takes examples (not text);
/// an error while preloading is thrown here, as if train() had loaded the data itself.
///
/// With `collective` (data parallelism: one of several processes), the model has the functions
/// gradients and update instead of train_step (compiler/train/train_step.h), compiled for this
/// process's share of the batch: every process draws the same global batches, runs its rows
/// through gradients, averages the gradients and the loss with the others and applies update.
/// Rank 0 alone validates, prints, logs and checkpoints, and tells the others what it decided.
double train(Model& model, const TrainSettings& s, DataPreload* preload = nullptr, const Collective* collective = nullptr);

/// --init-from: every parameter (not the optimizer state) named in `tensors` takes its value, as
/// PyTorch's load_state_dict(strict=False); one of another shape or element type, or no match
/// at all, is an Error naming `source`. Prints how many were taken, the parameters that kept
/// their initial values and the tensors the model has no use for.
void init_from(Model& model, std::map<std::string, Tensor> tensors, const std::string& source);

/// Every setting of a run by its flag's name, as run.json records it.
LogRecord train_settings_record(const TrainSettings& s);

/// The training or test split of an example data set (not text), as `--data` names it for a
/// model that reads examples.
Dataset load_example_split(const std::string& source, bool test);

/// Evaluates `model` (its forward function) on the test split of `data`, printing the metrics,
/// the per-class table and the confusion matrix. Returns the accuracy.
/// `state` is the checkpoint's metadata: a normalisation saved there is applied to the data.
/// `plots`, when not empty, is a folder to draw the ROC, precision-recall and confusion pictures
/// into (eval_plots.h).
double evaluate(Model& model, const std::string& data, int64_t seed, const StateMap& state = {},
                const std::string& plots = "");

/// The model's predictions on the test split of `data` (the training data when it has none):
/// the predicted class of every example (i64 [N]) and its probabilities (f32 [N, C]).
std::pair<Tensor, Tensor> predict(Model& model, const std::string& data, const StateMap& state = {});

}  // namespace stag::rt
