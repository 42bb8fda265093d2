// Learning-rate schedules against PyTorch's numbers, reduce-on-plateau, early stopping.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "runtime/schedule.h"
#include "test_util.h"

using namespace stag::rt;
using namespace stag::rt::test;
using Catch::Matchers::Contains;

namespace {

// fixtures/schedules.txt, from make_schedule_fixtures.py (torch.optim.lr_scheduler).
std::map<std::string, std::vector<double>> torch_lrs() {
  std::ifstream in(fixture("schedules.txt"));
  REQUIRE(in);
  std::map<std::string, std::vector<double>> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    std::string name;
    size_t t;
    std::string lr;
    ss >> name >> t >> lr;
    auto& v = out[name];
    REQUIRE(v.size() == t);
    v.push_back(std::stod(lr));
  }
  return out;
}

// PyTorch updates most schedules recursively; the closed forms agree to rounding.
void check_against(const LrSchedule& s, const std::vector<double>& want) {
  REQUIRE(want.size() > 10);
  for (size_t t = 0; t < want.size(); ++t) {
    INFO("step " << t);
    CHECK(std::abs(s.lr(static_cast<int64_t>(t)) - want[t]) <= 1e-12 * std::abs(want[t]) + 1e-15);
  }
}

const std::vector<double> kPlateauMetrics = {1.0, 0.9, 0.95, 0.95, 0.95, 0.89, 0.9, 0.9, 0.9, 0.9,
                                             0.9, 0.9, 0.5,  0.6,  0.6,  0.6,  0.6, 0.6, 0.6, 0.6};

}  // namespace

TEST_CASE("schedules match torch.optim.lr_scheduler", "[schedule]") {
  auto lrs = torch_lrs();
  check_against(StepLr(0.1, 3, 0.5), lrs.at("step"));
  check_against(MultiStepLr(0.1, {2, 5, 5, 9}, 0.1), lrs.at("multistep"));
  check_against(ExponentialLr(0.1, 0.9), lrs.at("exponential"));
  check_against(CosineLr(0.1, 10, 0.001), lrs.at("cosine"));
  check_against(CosineRestartsLr(0.1, 4, 1), lrs.at("restarts_1"));
  check_against(CosineRestartsLr(0.1, 3, 2, 0.01), lrs.at("restarts_2"));
  check_against(WarmupLr(0.1, 5, 0.1, std::make_shared<CosineLr>(0.1, 10)),
                lrs.at("warmup_cosine"));
  check_against(WarmupLr(0.1, 4, 0.25, std::make_shared<StepLr>(0.1, 3, 0.5)),
                lrs.at("warmup_step"));
  // The same through the command-line spelling.
  check_against(*parse_schedule("step:3:0.5", 0.1), lrs.at("step"));
  check_against(*parse_schedule("multistep:2,5,5,9", 0.1), lrs.at("multistep"));
  check_against(*parse_schedule("exponential:0.9", 0.1), lrs.at("exponential"));
  check_against(*parse_schedule("cosine:10:0.001", 0.1), lrs.at("cosine"));
  check_against(*parse_schedule("restarts:3:2:0.01", 0.1), lrs.at("restarts_2"));
  check_against(*parse_schedule("warmup:5:0.1+cosine:10", 0.1), lrs.at("warmup_cosine"));
  check_against(*parse_schedule("warmup:4:0.25+step:3:0.5", 0.1), lrs.at("warmup_step"));
  CHECK(parse_schedule("constant", 0.3)->lr(1000) == 0.3);
  CHECK(parse_schedule("warmup:3+constant", 0.3)->lr(0) == Approx(0.1));
}

TEST_CASE("bad schedule specifications are errors quoting them", "[schedule]") {
  CHECK_THROWS_WITH(parse_schedule("linear:3", 0.1),
                    Contains("--schedule 'linear:3': unknown schedule 'linear'"));
  CHECK_THROWS_WITH(parse_schedule("step", 0.1), Contains("'step' takes 1 to 2 arguments"));
  CHECK_THROWS_WITH(parse_schedule("step:x", 0.1), Contains("'x' is not an integer"));
  CHECK_THROWS_WITH(parse_schedule("step:0", 0.1), Contains("step size must be >= 1"));
  CHECK_THROWS_WITH(parse_schedule("warmup:5", 0.1), Contains("followed by '+SCHEDULE'"));
  CHECK_THROWS_WITH(parse_schedule("warmup:5:2+constant", 0.1),
                    Contains("start factor must be in (0, 1]"));
  CHECK_THROWS_WITH(parse_schedule("cosine:0", 0.1), Contains("T_max must be >= 1"));
}

TEST_CASE("reduce-on-plateau matches PyTorch and resumes exactly", "[schedule]") {
  auto lrs = torch_lrs();
  PlateauLr::Options min_rel;
  min_rel.factor = 0.5;
  min_rel.patience = 2;
  min_rel.cooldown = 1;
  min_rel.min_lr = 0.01;
  PlateauLr::Options max_abs;
  max_abs.mode = PlateauLr::Mode::max;
  max_abs.factor = 0.3;
  max_abs.patience = 1;
  max_abs.threshold = 0.02;
  max_abs.threshold_mode = PlateauLr::ThresholdMode::abs;
  struct {
    const char* name;
    double base;
    PlateauLr::Options o;
    double sign;
  } cases[] = {{"plateau_min_rel", 0.1, min_rel, 1}, {"plateau_max_abs", 1.0, max_abs, -1}};
  for (const auto& c : cases) {
    INFO(c.name);
    const auto& want = lrs.at(c.name);
    REQUIRE(want.size() == kPlateauMetrics.size() + 1);
    PlateauLr p(c.base, c.o);
    CHECK(p.lr() == want[0]);
    bool changed = false;
    for (size_t t = 0; t < kPlateauMetrics.size(); ++t) {
      // Halfway, continue in a fresh scheduler restored from the saved state.
      if (t == 9) {
        PlateauLr q(123, c.o);
        q.restore(p.save());
        p = q;
      }
      CHECK(p.step(c.sign * kPlateauMetrics[t]) == Approx(want[t + 1]).epsilon(1e-15));
      changed |= want[t + 1] != want[t];
    }
    CHECK(changed);
  }
  CHECK_THROWS_WITH(PlateauLr(0.1, {.factor = 1.0}), Contains("factor must be in [0, 1)"));
  CHECK_THROWS_WITH(PlateauLr(0.1, {}).restore({}), Contains("missing saved state 'plateau.lr'"));
}

TEST_CASE("early stopping tracks the best epoch and stops after patience", "[early-stopping]") {
  EarlyStopping es({EarlyStopping::Mode::min, 2, 0.01});
  CHECK(!es.has_best());
  CHECK(es.update(0, 1.0));
  CHECK(es.update(1, 0.5));
  CHECK(!es.update(2, 0.495));  // not better by more than min_delta
  CHECK(!es.should_stop());
  StateMap saved = es.save();
  CHECK(!es.update(3, 0.6));
  CHECK(es.should_stop());
  CHECK(es.best_epoch() == 1);
  CHECK(es.best_value() == 0.5);
  // Resume from after epoch 2: the same decision.
  EarlyStopping again({EarlyStopping::Mode::min, 2, 0.01});
  again.restore(saved);
  CHECK(again.wait() == 1);
  CHECK(!again.update(3, 0.6));
  CHECK(again.should_stop());
  CHECK(again.best_epoch() == 1);

  EarlyStopping acc({EarlyStopping::Mode::max, 3, 0});
  CHECK(acc.update(0, 0.7));
  CHECK(!acc.update(1, NAN));
  CHECK(!acc.update(2, 0.7));  // equal is not better
  CHECK(acc.update(3, 0.71));
  CHECK(acc.wait() == 0);
  CHECK(!acc.update(4, 0.1));
  CHECK(!acc.update(5, 0.1));
  CHECK(!acc.should_stop());
  CHECK(!acc.update(6, 0.1));
  CHECK(acc.should_stop());
  CHECK(acc.best_epoch() == 3);
  CHECK_THROWS_WITH(EarlyStopping({EarlyStopping::Mode::min, 0, 0}),
                    Contains("patience must be >= 1"));
}

TEST_CASE("a run's lr plan: epoch or step schedules, and plateau in the monitor's direction", "[schedule]") {
  LrPlan step = plan_lr("step:2:0.5", 0.1, false);
  CHECK(step.by_epoch);
  CHECK(step.lr(2, 999) == Approx(0.05));
  LrPlan cosine = plan_lr("warmup:5+cosine:10", 0.1, false);
  CHECK_FALSE(cosine.by_epoch);
  CHECK(cosine.lr(99, 5) == Approx(0.1));
  // An accuracy that rises then stalls: in max mode the stall is a plateau, in min mode the
  // rise already was.
  auto after = [](bool maximize) {
    LrPlan p = plan_lr("plateau:1:0.5", 1.0, maximize);
    REQUIRE(p.plateau);
    for (double acc : {0.5, 0.6, 0.7}) p.plateau->step(acc);
    return p.lr(0, 0);
  };
  CHECK(after(true) == 1.0);
  CHECK(after(false) == 0.5);
  CHECK(plan_lr("plateau", 0.1, false).plateau->save().at("plateau.lr") == "0.1");
  CHECK_THROWS_WITH(plan_lr("plateau:x", 0.1, false), Contains("plateau patience"));
  CHECK_THROWS_WITH(plan_lr("plateau:1:0.5:3", 0.1, false), Contains("expected plateau[:PATIENCE[:FACTOR]]"));
  CHECK_THROWS_WITH(plan_lr("warmup:5+plateau", 0.1, false), Contains("or plateau without warmup"));
}
