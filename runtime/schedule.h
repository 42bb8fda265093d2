#pragma once
/// Learning-rate schedules with exactly the formulas of PyTorch's torch.optim.lr_scheduler, as
/// pure functions of the step count t (PyTorch's `last_epoch`: the number of scheduler.step()
/// calls so far; t = 0 before the first). Whether t counts epochs or optimizer steps is the
/// caller's choice, as in PyTorch. PyTorch computes most of them recursively (lr *= ratio each
/// step); the closed forms here agree with it to rounding (tests: relative 1e-12).
///
/// ReduceLROnPlateau depends on the metrics seen, so it is the one stateful schedule; its state
/// saves and restores exactly.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/state_map.h"

namespace stag::rt {

/// lr as a function of the step count.
class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  /// The learning rate in effect after t scheduler steps (t >= 0).
  virtual double lr(int64_t t) const = 0;
};

/// The base lr, always.
class ConstantLr final : public LrSchedule {
 public:
  explicit ConstantLr(double base) : base_(base) {}
  double lr(int64_t) const override { return base_; }

 private:
  double base_;
};

/// StepLR: base * gamma^floor(t / step_size).
class StepLr final : public LrSchedule {
 public:
  StepLr(double base, int64_t step_size, double gamma = 0.1);
  double lr(int64_t t) const override;

 private:
  double base_, gamma_;
  int64_t step_size_;
};

/// MultiStepLR: base * gamma^(number of milestones <= t); a repeated milestone counts twice.
class MultiStepLr final : public LrSchedule {
 public:
  MultiStepLr(double base, std::vector<int64_t> milestones, double gamma = 0.1);
  double lr(int64_t t) const override;

 private:
  double base_, gamma_;
  std::vector<int64_t> milestones_;
};

/// ExponentialLR: base * gamma^t.
class ExponentialLr final : public LrSchedule {
 public:
  ExponentialLr(double base, double gamma);
  double lr(int64_t t) const override;

 private:
  double base_, gamma_;
};

/// CosineAnnealingLR: eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2 — past T_max it
/// rises again, periodically, as PyTorch's does.
class CosineLr final : public LrSchedule {
 public:
  CosineLr(double base, int64_t t_max, double eta_min = 0);
  double lr(int64_t t) const override;

 private:
  double base_, eta_min_;
  int64_t t_max_;
};

/// CosineAnnealingWarmRestarts: cosine from base to eta_min over T_i steps, then restart with
/// T_i *= T_mult (T_0 first): lr = eta_min + (base - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2.
class CosineRestartsLr final : public LrSchedule {
 public:
  CosineRestartsLr(double base, int64_t t_0, int64_t t_mult = 1, double eta_min = 0);
  double lr(int64_t t) const override;

 private:
  double base_, eta_min_;
  int64_t t_0_, t_mult_;
};

/// Linear warmup before another schedule, as PyTorch's
/// SequentialLR([LinearLR(start_factor, 1.0, total_iters=W), after], milestones=[W]):
/// for t < W, base * (start_factor + (1 - start_factor) * t / W); from W on, after.lr(t - W).
/// `base` must be the base lr of `after`.
class WarmupLr final : public LrSchedule {
 public:
  WarmupLr(double base, int64_t warmup_steps, double start_factor,
           std::shared_ptr<const LrSchedule> after);
  double lr(int64_t t) const override;

 private:
  double base_, start_factor_;
  int64_t warmup_;
  std::shared_ptr<const LrSchedule> after_;
};

/// Builds a schedule from its command-line spelling (the base lr given separately):
///   constant | step:SIZE[:GAMMA] | multistep:M1,M2,...[:GAMMA] | exponential:GAMMA |
///   cosine:T_MAX[:ETA_MIN] | restarts:T_0[:T_MULT[:ETA_MIN]]
/// each optionally prefixed by warmup:STEPS[:START_FACTOR]+ (start factor 1/3 by default, as
/// LinearLR). Throws Error quoting the text on anything else.
std::shared_ptr<const LrSchedule> parse_schedule(const std::string& text, double base);

/// ReduceLROnPlateau: when more than `patience` consecutive epochs bring no improvement, the lr is
/// multiplied by `factor` (not below min_lr; a change no larger than eps is skipped), then
/// `cooldown` epochs pass before bad epochs count again. Improvement: mode min, rel: a < best * (1
/// - threshold); min, abs: a < best - threshold; max, rel: a > best * (1 + threshold); max, abs: a
/// > best + threshold.
class PlateauLr {
 public:
  enum class Mode { min, max };
  enum class ThresholdMode { rel, abs };
  struct Options {
    Mode mode = Mode::min;
    double factor = 0.1;
    int64_t patience = 10;
    double threshold = 1e-4;
    ThresholdMode threshold_mode = ThresholdMode::rel;
    int64_t cooldown = 0;
    double min_lr = 0;
    double eps = 1e-8;
  };
  /// Throws Error when factor is not in [0, 1) or patience/cooldown is negative.
  PlateauLr(double base, Options options);
  /// Reports an epoch's metric; returns the lr for the next epoch.
  double step(double metric);
  double lr() const { return lr_; }
  /// best, num_bad_epochs, cooldown_counter, last_epoch and lr under `prefix`.
  StateMap save(const std::string& prefix = "plateau.") const;
  void restore(const StateMap& state, const std::string& prefix = "plateau.");

 private:
  bool better(double a) const;
  Options o_;
  double lr_, best_;
  int64_t bad_ = 0, cooldown_counter_ = 0, last_epoch_ = 0;
};

/// Stops training when a metric has not improved for `patience` epochs, and remembers the best
/// epoch (whose weights the caller keeps). Improvement: mode min: value < best - min_delta; max:
/// value > best + min_delta (the first value always improves). A NaN never improves.
class EarlyStopping {
 public:
  enum class Mode { min, max };
  struct Options {
    Mode mode = Mode::min;
    int64_t patience = 5;
    double min_delta = 0;
  };
  explicit EarlyStopping(Options options);
  /// Reports the metric of `epoch`; returns true when it is a new best (save the weights then).
  bool update(int64_t epoch, double value);
  /// True once `patience` consecutive updates brought no improvement.
  bool should_stop() const { return wait_ >= o_.patience; }
  bool has_best() const { return best_epoch_ >= 0; }
  double best_value() const { return best_; }
  int64_t best_epoch() const { return best_epoch_; }
  /// Epochs since the best.
  int64_t wait() const { return wait_; }
  StateMap save(const std::string& prefix = "early_stopping.") const;
  void restore(const StateMap& state, const std::string& prefix = "early_stopping.");

 private:
  Options o_;
  double best_ = 0;
  int64_t best_epoch_ = -1, wait_ = 0;
};

/// The learning rate of every step of a run: a schedule, or ReduceLROnPlateau, which validation
/// drives. Step, multistep, exponential and plateau count epochs (as PyTorch's examples step
/// them); the others count optimizer steps (the warmup and cosine schedules of language models).
struct LrPlan {
  std::shared_ptr<const LrSchedule> schedule;  ///< null when plateau drives the lr
  std::optional<PlateauLr> plateau;
  bool by_epoch = false;

  double lr(int64_t epoch, int64_t step) const { return plateau ? plateau->lr() : schedule->lr(by_epoch ? epoch : step); }
};

/// parse_schedule's spelling, or plateau[:PATIENCE[:FACTOR]] (ReduceLROnPlateau watching a
/// measure to minimise or, with `maximize`, to maximise). Throws Error quoting the text.
LrPlan plan_lr(const std::string& text, double base, bool maximize);

}  // namespace stag::rt
