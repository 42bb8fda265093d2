// Metrics against hand-computed values (ties, a class that never occurs) and scikit-learn's.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "runtime/metrics.h"
#include "test_util.h"

using namespace stag::rt;
using namespace stag::rt::test;
using Catch::Matchers::Contains;

TEST_CASE("ROC AUC by midranks, with ties", "[metrics]") {
  // Positives score 0.8, 0.4; negatives 0.4, 0.1. Pairs (pos, neg): (0.8,0.4) 1, (0.8,0.1) 1,
  // (0.4,0.4) tie 1/2, (0.4,0.1) 1 -> 3.5 / 4.
  std::vector<double> s = {0.8, 0.4, 0.4, 0.1};
  bool pos[] = {true, true, false, false};
  CHECK(*roc_auc(s, pos) == 0.875);
  // All tied: 1/2.
  std::vector<double> flat = {0.3, 0.3, 0.3};
  bool pos2[] = {true, false, false};
  CHECK(*roc_auc(flat, pos2) == 0.5);
  // Perfectly wrong: 0.
  std::vector<double> inv = {0.1, 0.9};
  bool pos3[] = {true, false};
  CHECK(*roc_auc(inv, pos3) == 0.0);
  bool none[] = {false, false, false};
  CHECK(!roc_auc(flat, none));
  bool all[] = {true, true, true};
  CHECK(!roc_auc(flat, all));
}

// (x, y) pairs of a curve, for comparing whole curves.
std::vector<std::pair<double, double>> xy(const std::vector<CurvePoint>& curve) {
  std::vector<std::pair<double, double>> out;
  for (const auto& p : curve) out.emplace_back(p.x, p.y);
  return out;
}

TEST_CASE("ROC and precision-recall curves by hand, the AUC the area under the ROC points", "[metrics]") {
  // Thresholds 0.8, 0.4 (one positive and one negative tied), 0.1.
  std::vector<double> s = {0.8, 0.4, 0.4, 0.1};
  bool pos[] = {true, true, false, false};
  auto roc = roc_curve(s, pos);
  CHECK(xy(roc) == std::vector<std::pair<double, double>>{{0, 0}, {0, 0.5}, {0.5, 1}, {1, 1}});
  CHECK(area_under(roc) == *roc_auc(s, pos));
  auto pr = precision_recall_curve(s, pos);
  CHECK(xy(pr) == std::vector<std::pair<double, double>>{{0, 1}, {0.5, 1}, {1, 2.0 / 3}, {1, 0.5}});
  CHECK(average_precision(pr) == Approx(0.5 + 0.5 * 2.0 / 3));  // scikit-learn: 0.8333...
  // A run of positives is one vertical segment: the points inside it add no area.
  std::vector<double> run = {0.9, 0.8, 0.7, 0.1};
  bool pos2[] = {true, true, true, false};
  CHECK(xy(roc_curve(run, pos2)) == std::vector<std::pair<double, double>>{{0, 0}, {0, 1}, {1, 1}});
  bool none[] = {false, false, false, false};
  CHECK(roc_curve(run, none).empty());
  CHECK(precision_recall_curve(run, none).empty());
}

TEST_CASE("metrics by hand: ties and a class that never occurs", "[metrics]") {
  // 3 classes given as probabilities; class 2 is never a label.
  //   ex  p0   p1   p2   label  argmax
  //   0   0.5  0.3  0.2  0      0
  //   1   0.4  0.4  0.2  1      0 (tie: the lowest index wins)
  //   2   0.2  0.7  0.1  1      1
  //   3   0.3  0.3  0.4  0      2
  // confusion (true x pred): [1 0 1; 1 1 0; 0 0 0]
  // class 0: TP 1, predicted 2, support 2 -> P 1/2, R 1/2, F1 1/2
  // class 1: TP 1, predicted 1, support 2 -> P 1,   R 1/2, F1 2/3
  // class 2: TP 0, predicted 1, support 0 -> P 0,   R 0,   F1 0 (included: it is predicted)
  // macro over 3 classes: P 1/2, R 1/3, F1 7/18
  // AUC class 0: pos {0.5, 0.3}, neg {0.4, 0.2}: (1 + 1) + (0 + 1) = 3 / 4
  // AUC class 1: pos {0.4, 0.7}, neg {0.3, 0.3}: 2 + 2 = 4 / 4 = 1
  // AUC class 2: no positives -> none; macro AUC = (3/4 + 1) / 2 = 7/8
  // loss: -(ln 0.5 + ln 0.4 + ln 0.7 + ln 0.3) / 4
  // top-2 (ties: lower index ranks above): ex0 yes; ex1 label 1, class 0 ties above -> rank 2, yes;
  //   ex2 yes; ex3 label 0, class 2 above (0.4 > 0.3), class 1 ties but index 1 > 0 -> rank 2, yes.
  //   top-1 = accuracy = 2/4.
  MetricsAccumulator acc(3, {1, 2}, ScoreKind::probabilities);
  Tensor s1 = Tensor::from<float>({2, 3}, {0.5f, 0.3f, 0.2f, 0.4f, 0.4f, 0.2f});
  Tensor l1 = Tensor::from<int64_t>({2}, {0, 1});
  // Second batch padded to 3 rows; only 2 are real.
  Tensor s2 = Tensor::from<float>({3, 3}, {0.2f, 0.7f, 0.1f, 0.3f, 0.3f, 0.4f, 9, 9, 9});
  Tensor l2 = Tensor::from<int64_t>({3}, {1, 0, 2});
  acc.add(s1, l1);
  acc.add(s2, l2, 2);
  Metrics m = acc.compute();
  CHECK(m.count == 4);
  CHECK(m.confusion == std::vector<int64_t>{1, 0, 1, 1, 1, 0, 0, 0, 0});
  CHECK(m.accuracy == 0.5);
  CHECK(m.classes[0].precision == 0.5);
  CHECK(m.classes[0].recall == 0.5);
  CHECK(m.classes[1].precision == 1.0);
  CHECK(m.classes[1].f1 == Approx(2.0 / 3));
  CHECK(m.classes[2].precision == 0.0);
  CHECK(m.classes[2].support == 0);
  CHECK(m.classes[2].predicted == 1);
  CHECK(m.macro_precision == Approx(0.5));
  CHECK(m.macro_recall == Approx(1.0 / 3));
  CHECK(m.macro_f1 == Approx(7.0 / 18));
  REQUIRE(m.classes[0].auc);
  CHECK(*m.classes[0].auc == 0.75);
  CHECK(*m.classes[1].auc == 1.0);
  CHECK(!m.classes[2].auc);
  CHECK(*m.macro_auc == Approx(0.875));
  // The probabilities arrive as f32; the loss is computed in double from those values.
  auto ln = [](float p) { return std::log(static_cast<double>(p)); };
  double loss = -(ln(0.5f) + ln(0.4f) + ln(0.7f) + ln(0.3f)) / 4;
  CHECK(m.loss == Approx(loss).epsilon(1e-12));
  REQUIRE(m.top_k.size() == 2);
  CHECK(m.top_k[0] == std::pair<int64_t, double>{1, 0.5});
  CHECK(m.top_k[1] == std::pair<int64_t, double>{2, 1.0});

  // A class neither true nor predicted is left out of the macro averages.
  MetricsAccumulator four(4, {}, ScoreKind::probabilities);
  Tensor s4 = Tensor::from<float>(
      {4, 4}, {0.5f, 0.3f, 0.2f, 0, 0.4f, 0.4f, 0.2f, 0, 0.2f, 0.7f, 0.1f, 0, 0.3f, 0.3f, 0.4f, 0});
  four.add(s4, Tensor::from<int64_t>({4}, {0, 1, 1, 0}));
  Metrics m4 = four.compute();
  CHECK(m4.macro_f1 == Approx(7.0 / 18));
  CHECK(!m4.classes[3].auc);
  CHECK(*m4.macro_auc == Approx(0.875));

  // Batch losses from the training step take precedence over the recomputed cross-entropy.
  acc.add_loss(2.0, 3);
  acc.add_loss(1.0, 1);
  CHECK(acc.compute().loss == 1.75);
  acc.reset();
  CHECK_THROWS_WITH(acc.compute(), Contains("no examples"));
  CHECK_THROWS_WITH(acc.add(s1, Tensor::from<int64_t>({2}, {0, 3})),
                    Contains("label 3 out of range"));
  CHECK_THROWS_WITH(MetricsAccumulator(3, {4}), Contains("top-4"));
}

TEST_CASE("logits go through softmax for loss and AUC", "[metrics]") {
  MetricsAccumulator acc(2);
  // Logits (0, ln 3): softmax (1/4, 3/4).
  float l3 = static_cast<float>(std::log(3.0));
  acc.add(Tensor::from<float>({2, 2}, {0, l3, l3, 0}), Tensor::from<int64_t>({2}, {1, 1}));
  Metrics m = acc.compute();
  CHECK(m.loss == Approx((-std::log(0.75) - std::log(0.25)) / 2).epsilon(1e-6));
  CHECK(m.accuracy == 0.5);
  CHECK(!m.macro_auc);  // only class 1 occurs: no negatives for it, no positives for class 0
}

namespace {

struct Case {
  std::string name, kind;
  int64_t C = 0, N = 0;
  std::map<std::string, std::vector<std::string>> rows;
  std::vector<double> nums(const std::string& key) const {
    std::vector<double> out;
    for (const auto& s : rows.at(key)) out.push_back(s == "none" ? NAN : std::stod(s));
    return out;
  }
};

std::vector<Case> read_cases() {
  std::ifstream in(fixture("metrics_cases.txt"));
  REQUIRE(in);
  std::vector<Case> cases;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    std::string key;
    ss >> key;
    if (key == "case") {
      cases.emplace_back();
      ss >> cases.back().name >> cases.back().C >> cases.back().N >> cases.back().kind;
    } else if (key != "end") {
      std::string v;
      while (ss >> v) cases.back().rows[key].push_back(v);
    }
  }
  return cases;
}

}  // namespace

TEST_CASE("metrics agree with scikit-learn", "[metrics]") {
  // fixtures/make_metrics_fixtures.py: many tied scores, a class only predicted, a class never
  // seen.
  auto cases = read_cases();
  REQUIRE(cases.size() == 2);
  for (const Case& c : cases) {
    INFO(c.name);
    std::vector<float> scores;
    for (double v : c.nums("scores")) scores.push_back(static_cast<float>(v));
    std::vector<int64_t> labels;
    for (double v : c.nums("labels")) labels.push_back(static_cast<int64_t>(v));
    MetricsAccumulator acc(c.C, {},
                           c.kind == "logits" ? ScoreKind::logits : ScoreKind::probabilities);
    // In two uneven batches, as an epoch would arrive.
    size_t half = labels.size() / 3;
    acc.add(std::span(scores).first(half * c.C), std::span(labels).first(half));
    acc.add(std::span(scores).subspan(half * c.C), std::span(labels).subspan(half));
    Metrics m = acc.compute();
    CHECK(m.loss == Approx(c.nums("loss")[0]).epsilon(1e-6));
    CHECK(m.accuracy == Approx(c.nums("accuracy")[0]).epsilon(1e-12));
    auto p = c.nums("precision"), r = c.nums("recall"), f = c.nums("f1"), auc = c.nums("auc");
    for (int64_t k = 0; k < c.C; ++k) {
      INFO("class " << k);
      CHECK(m.classes[k].precision == Approx(p[k]).epsilon(1e-12));
      CHECK(m.classes[k].recall == Approx(r[k]).epsilon(1e-12));
      CHECK(m.classes[k].f1 == Approx(f[k]).epsilon(1e-12));
      if (std::isnan(auc[k]))
        CHECK(!m.classes[k].auc);
      else {
        REQUIRE(m.classes[k].auc);
        CHECK(*m.classes[k].auc == Approx(auc[k]).epsilon(1e-12));
      }
    }
    auto macro = c.nums("macro");
    CHECK(m.macro_precision == Approx(macro[0]).epsilon(1e-12));
    CHECK(m.macro_recall == Approx(macro[1]).epsilon(1e-12));
    CHECK(m.macro_f1 == Approx(macro[2]).epsilon(1e-12));
    REQUIRE(m.macro_auc);
    CHECK(*m.macro_auc == Approx(macro[3]).epsilon(1e-12));
    if (c.rows.count("sklearn_ovr_macro"))
      CHECK(*m.macro_auc == Approx(c.nums("sklearn_ovr_macro")[0]).epsilon(1e-12));
    std::vector<int64_t> conf;
    for (double v : c.nums("confusion")) conf.push_back(static_cast<int64_t>(v));
    CHECK(m.confusion == conf);
  }
}

TEST_CASE("metric tables print every class and the macro row", "[metrics]") {
  MetricsAccumulator acc(3, {2}, ScoreKind::probabilities);
  acc.add(Tensor::from<float>({3, 3}, {0.8f, 0.1f, 0.1f, 0.1f, 0.8f, 0.1f, 0.6f, 0.3f, 0.1f}),
          Tensor::from<int64_t>({3}, {0, 1, 1}));
  Metrics m = acc.compute();
  std::vector<std::string> names = {"cat", "dog", "axolotl"};
  std::string t = format_class_table(m, names);
  CHECK_THAT(t, Contains("class    precision  recall      f1     auc  support\n"));
  CHECK_THAT(t, Contains("\ncat         0.5000  1.0000  0.6667  1.0000        1\n"));
  CHECK_THAT(t, Contains("\naxolotl     0.0000  0.0000  0.0000       -        0\n"));
  CHECK_THAT(t, Contains("\nmacro       0.7500  0.7500  0.6667  1.0000        3\n"));
  CHECK_THAT(t, Contains("accuracy 0.6667"));
  CHECK_THAT(t, Contains("top-2 1.0000"));
  std::string cm = format_confusion_matrix(m, names);
  CHECK_THAT(cm, Contains("true\\pred     cat     dog axolotl\n"));
  CHECK_THAT(cm, Contains("\ndog             1       1       0\n"));
  CHECK_THAT(format_confusion_matrix(m), Contains("\n0             1     0     0\n"));
}
