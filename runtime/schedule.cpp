// PyTorch's learning-rate schedules in closed form, the schedule parser, plateau and early
// stopping.
#include "runtime/schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "runtime/error.h"

namespace stag::rt {

namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw Error("learning-rate schedule: " + what);
}

double cosine(double base, double eta_min, double cur, double period) {
  return eta_min + (base - eta_min) * (1 + std::cos(std::numbers::pi * cur / period)) / 2;
}

}  // namespace

StepLr::StepLr(double base, int64_t step_size, double gamma)
    : base_(base), gamma_(gamma), step_size_(step_size) {
  require(step_size >= 1, fmt::format("step size must be >= 1, got {}", step_size));
}
double StepLr::lr(int64_t t) const {
  return base_ * std::pow(gamma_, static_cast<double>(t / step_size_));
}

MultiStepLr::MultiStepLr(double base, std::vector<int64_t> milestones, double gamma)
    : base_(base), gamma_(gamma), milestones_(std::move(milestones)) {
  std::sort(milestones_.begin(), milestones_.end());
}
double MultiStepLr::lr(int64_t t) const {
  auto k = std::upper_bound(milestones_.begin(), milestones_.end(), t) - milestones_.begin();
  return base_ * std::pow(gamma_, static_cast<double>(k));
}

ExponentialLr::ExponentialLr(double base, double gamma) : base_(base), gamma_(gamma) {}
double ExponentialLr::lr(int64_t t) const {
  return base_ * std::pow(gamma_, static_cast<double>(t));
}

CosineLr::CosineLr(double base, int64_t t_max, double eta_min)
    : base_(base), eta_min_(eta_min), t_max_(t_max) {
  require(t_max >= 1, fmt::format("cosine T_max must be >= 1, got {}", t_max));
}
double CosineLr::lr(int64_t t) const {
  return cosine(base_, eta_min_, static_cast<double>(t), static_cast<double>(t_max_));
}

CosineRestartsLr::CosineRestartsLr(double base, int64_t t_0, int64_t t_mult, double eta_min)
    : base_(base), eta_min_(eta_min), t_0_(t_0), t_mult_(t_mult) {
  require(t_0 >= 1, fmt::format("restarts T_0 must be >= 1, got {}", t_0));
  require(t_mult >= 1, fmt::format("restarts T_mult must be >= 1, got {}", t_mult));
}
double CosineRestartsLr::lr(int64_t t) const {
  // PyTorch steps T_cur += 1 and restarts when T_cur >= T_i; in integers this is exact.
  int64_t cur = t, period = t_0_;
  if (t_mult_ == 1) {
    cur = t % t_0_;
  } else {
    while (cur >= period) {
      cur -= period;
      period *= t_mult_;
    }
  }
  return cosine(base_, eta_min_, static_cast<double>(cur), static_cast<double>(period));
}

WarmupLr::WarmupLr(double base, int64_t warmup_steps, double start_factor,
                   std::shared_ptr<const LrSchedule> after)
    : base_(base), start_factor_(start_factor), warmup_(warmup_steps), after_(std::move(after)) {
  require(warmup_steps >= 1, fmt::format("warmup steps must be >= 1, got {}", warmup_steps));
  require(start_factor > 0 && start_factor <= 1,
          fmt::format("warmup start factor must be in (0, 1], got {}", start_factor));
  require(after_ != nullptr, "warmup needs a schedule to hand over to");
}
double WarmupLr::lr(int64_t t) const {
  if (t >= warmup_) return after_->lr(t - warmup_);
  return base_ * (start_factor_ +
                  (1 - start_factor_) * static_cast<double>(t) / static_cast<double>(warmup_));
}

namespace {

std::vector<std::string> split_on(const std::string& s, char c) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t at = s.find(c, start);
    out.push_back(s.substr(start, at == std::string::npos ? at : at - start));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

}  // namespace

std::shared_ptr<const LrSchedule> parse_schedule(const std::string& text, double base) {
  auto bad = [&](const std::string& why) {
    return Error(fmt::format("--schedule '{}': {}", text, why));
  };
  auto num = [&](const std::string& s) {
    try {
      return parse_double(s, "schedule");
    } catch (const Error&) {
      throw bad(fmt::format("'{}' is not a number", s));
    }
  };
  auto integer = [&](const std::string& s) {
    try {
      return parse_int(s, "schedule");
    } catch (const Error&) {
      throw bad(fmt::format("'{}' is not an integer", s));
    }
  };
  std::string rest = text;
  int64_t warmup = 0;
  double start_factor = 1.0 / 3;
  if (rest.starts_with("warmup:")) {
    size_t plus = rest.find('+');
    if (plus == std::string::npos) throw bad("warmup must be followed by '+SCHEDULE'");
    auto w = split_on(rest.substr(7, plus - 7), ':');
    if (w.size() > 2) throw bad("warmup takes STEPS[:START_FACTOR]");
    warmup = integer(w[0]);
    if (w.size() == 2) start_factor = num(w[1]);
    rest = rest.substr(plus + 1);
  }
  auto f = split_on(rest, ':');
  const std::string& kind = f[0];
  auto args = [&](size_t lo, size_t hi) {
    if (f.size() - 1 < lo || f.size() - 1 > hi)
      throw bad(fmt::format("'{}' takes {} to {} arguments", kind, lo, hi));
  };
  std::shared_ptr<const LrSchedule> s;
  try {
    if (kind == "constant") {
      args(0, 0);
      s = std::make_shared<ConstantLr>(base);
    } else if (kind == "step") {
      args(1, 2);
      s = std::make_shared<StepLr>(base, integer(f[1]), f.size() > 2 ? num(f[2]) : 0.1);
    } else if (kind == "multistep") {
      args(1, 2);
      std::vector<int64_t> ms;
      for (const auto& m : split_on(f[1], ',')) ms.push_back(integer(m));
      s = std::make_shared<MultiStepLr>(base, ms, f.size() > 2 ? num(f[2]) : 0.1);
    } else if (kind == "exponential") {
      args(1, 1);
      s = std::make_shared<ExponentialLr>(base, num(f[1]));
    } else if (kind == "cosine") {
      args(1, 2);
      s = std::make_shared<CosineLr>(base, integer(f[1]), f.size() > 2 ? num(f[2]) : 0.0);
    } else if (kind == "restarts") {
      args(1, 3);
      s = std::make_shared<CosineRestartsLr>(base, integer(f[1]), f.size() > 2 ? integer(f[2]) : 1,
                                             f.size() > 3 ? num(f[3]) : 0.0);
    } else {
      throw bad(fmt::format("unknown schedule '{}' (constant, step, multistep, exponential, cosine, restarts, "
                            "or plateau without warmup)", kind));
    }
    if (warmup > 0 || text.starts_with("warmup:"))
      s = std::make_shared<WarmupLr>(base, warmup, start_factor, s);
  } catch (const Error& e) {
    std::string what = e.what();
    if (what.starts_with("--schedule")) throw;
    throw bad(what);
  }
  return s;
}

namespace {

bool counts_epochs(const std::string& schedule) {
  for (const char* p : {"step:", "multistep:", "exponential:", "plateau"})
    if (schedule.starts_with(p)) return true;
  return false;
}

PlateauLr::Options plateau_options(const std::string& text, bool maximize) {
  PlateauLr::Options o;
  o.mode = maximize ? PlateauLr::Mode::max : PlateauLr::Mode::min;
  auto f = split_on(text, ':');
  if (f[0] != "plateau" || f.size() > 3) throw Error(fmt::format("--schedule '{}': expected plateau[:PATIENCE[:FACTOR]]", text));
  if (f.size() > 1) o.patience = parse_int(f[1], "plateau patience");
  if (f.size() > 2) o.factor = parse_double(f[2], "plateau factor");
  return o;
}

}  // namespace

LrPlan plan_lr(const std::string& text, double base, bool maximize) {
  LrPlan p;
  p.by_epoch = counts_epochs(text);
  if (text == "plateau" || text.starts_with("plateau:")) p.plateau.emplace(base, plateau_options(text, maximize));
  else p.schedule = parse_schedule(text, base);
  return p;
}

PlateauLr::PlateauLr(double base, Options o) : o_(o), lr_(base) {
  if (!(o.factor >= 0 && o.factor < 1))
    throw Error(fmt::format("reduce-on-plateau: factor must be in [0, 1), got {}", o.factor));
  if (o.patience < 0 || o.cooldown < 0)
    throw Error("reduce-on-plateau: patience and cooldown must be >= 0");
  best_ = o.mode == Mode::min ? std::numeric_limits<double>::infinity()
                              : -std::numeric_limits<double>::infinity();
}

bool PlateauLr::better(double a) const {
  bool rel = o_.threshold_mode == ThresholdMode::rel;
  if (o_.mode == Mode::min) return rel ? a < best_ * (1 - o_.threshold) : a < best_ - o_.threshold;
  return rel ? a > best_ * (o_.threshold + 1) : a > best_ + o_.threshold;
}

double PlateauLr::step(double metric) {
  ++last_epoch_;
  if (better(metric)) {
    best_ = metric;
    bad_ = 0;
  } else {
    ++bad_;
  }
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    bad_ = 0;
  }
  if (bad_ > o_.patience) {
    double next = std::max(lr_ * o_.factor, o_.min_lr);
    if (lr_ - next > o_.eps) lr_ = next;
    cooldown_counter_ = o_.cooldown;
    bad_ = 0;
  }
  return lr_;
}

StateMap PlateauLr::save(const std::string& p) const {
  return {{p + "lr", format_double(lr_)},
          {p + "best", format_double(best_)},
          {p + "num_bad_epochs", std::to_string(bad_)},
          {p + "cooldown_counter", std::to_string(cooldown_counter_)},
          {p + "last_epoch", std::to_string(last_epoch_)}};
}

void PlateauLr::restore(const StateMap& m, const std::string& p) {
  auto get = [&](const char* k) { return state_get(m, p + k); };
  lr_ = parse_double(get("lr"), p + "lr");
  best_ = parse_double(get("best"), p + "best");
  bad_ = parse_int(get("num_bad_epochs"), p + "num_bad_epochs");
  cooldown_counter_ = parse_int(get("cooldown_counter"), p + "cooldown_counter");
  last_epoch_ = parse_int(get("last_epoch"), p + "last_epoch");
}

EarlyStopping::EarlyStopping(Options o) : o_(o) {
  if (o.patience < 1)
    throw Error(fmt::format("early stopping: patience must be >= 1, got {}", o.patience));
  if (!(o.min_delta >= 0)) throw Error("early stopping: min_delta must be >= 0");
}

bool EarlyStopping::update(int64_t epoch, double v) {
  bool improved =
      !std::isnan(v) &&
      (!has_best() || (o_.mode == Mode::min ? v < best_ - o_.min_delta : v > best_ + o_.min_delta));
  if (improved) {
    best_ = v;
    best_epoch_ = epoch;
    wait_ = 0;
  } else {
    ++wait_;
  }
  return improved;
}

StateMap EarlyStopping::save(const std::string& p) const {
  return {{p + "best", format_double(best_)},
          {p + "best_epoch", std::to_string(best_epoch_)},
          {p + "wait", std::to_string(wait_)}};
}

void EarlyStopping::restore(const StateMap& m, const std::string& p) {
  best_ = parse_double(state_get(m, p + "best"), p + "best");
  best_epoch_ = parse_int(state_get(m, p + "best_epoch"), p + "best_epoch");
  wait_ = parse_int(state_get(m, p + "wait"), p + "wait");
}

}  // namespace stag::rt
