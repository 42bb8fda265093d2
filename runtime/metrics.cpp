// Accumulating predictions and computing the epoch's classification metrics.
#include "runtime/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>

namespace stag::rt {

MetricsAccumulator::MetricsAccumulator(int64_t num_classes, std::vector<int64_t> top_k,
                                       ScoreKind kind)
    : classes_(num_classes), top_k_(std::move(top_k)), kind_(kind), top_hits_(top_k_.size()) {
  if (num_classes < 1) throw Error(fmt::format("metrics: {} classes", num_classes));
  for (int64_t k : top_k_)
    if (k < 1 || k > num_classes)
      throw Error(fmt::format("metrics: top-{} accuracy for {} classes", k, num_classes));
}

void MetricsAccumulator::reset() {
  probs_.clear();
  labels_.clear();
  preds_.clear();
  std::fill(top_hits_.begin(), top_hits_.end(), 0);
  ce_sum_ = ext_loss_sum_ = 0;
  ext_loss_n_ = 0;
}

void MetricsAccumulator::add(const Tensor& scores, const Tensor& labels, int64_t valid) {
  if (scores.rank() != 2 || scores.shape()[1] != classes_ || labels.rank() != 1 ||
      labels.shape()[0] != scores.shape()[0])
    throw Error(fmt::format("metrics: scores {} and labels {} do not match {} classes",
                            scores.type_string(), labels.type_string(), classes_));
  int64_t n = valid < 0 ? scores.shape()[0] : std::min(valid, scores.shape()[0]);
  add(scores.values<float>().first(static_cast<size_t>(n * classes_)),
      labels.values<int64_t>().first(static_cast<size_t>(n)));
}

void MetricsAccumulator::add(std::span<const float> scores, std::span<const int64_t> labels) {
  auto C = static_cast<size_t>(classes_);
  if (scores.size() != labels.size() * C)
    throw Error(fmt::format("metrics: {} scores for {} labels of {} classes", scores.size(),
                            labels.size(), classes_));
  std::vector<double> p(C);
  for (size_t i = 0; i < labels.size(); ++i) {
    int64_t y = labels[i];
    if (y < 0 || y >= classes_)
      throw Error(fmt::format("metrics: label {} out of range for {} classes", y, classes_));
    const float* s = scores.data() + i * C;
    size_t pred = static_cast<size_t>(std::max_element(s, s + C) - s);  // first maximum
    if (kind_ == ScoreKind::logits) {
      // Stable softmax / log-softmax in double.
      double mx = s[pred], z = 0;
      for (size_t c = 0; c < C; ++c) z += std::exp(static_cast<double>(s[c]) - mx);
      for (size_t c = 0; c < C; ++c) p[c] = std::exp(static_cast<double>(s[c]) - mx) / z;
      ce_sum_ += -(static_cast<double>(s[y]) - mx - std::log(z));
    } else {
      for (size_t c = 0; c < C; ++c) p[c] = s[c];
      ce_sum_ += -std::log(std::max(static_cast<double>(s[y]), 1e-300));
    }
    int64_t above = 0;
    for (int64_t c = 0; c < classes_; ++c)
      if (s[c] > s[y] || (s[c] == s[y] && c < y)) ++above;
    for (size_t j = 0; j < top_k_.size(); ++j)
      if (above < top_k_[j]) ++top_hits_[j];
    for (size_t c = 0; c < C; ++c) probs_.push_back(p[c]);
    labels_.push_back(y);
    preds_.push_back(static_cast<int64_t>(pred));
  }
}

void MetricsAccumulator::add_loss(double mean_loss, int64_t n) {
  ext_loss_sum_ += mean_loss * static_cast<double>(n);
  ext_loss_n_ += n;
}

namespace {

// True and false positives counted above each distinct score, from the highest score down.
struct Counts {
  int64_t tp = 0, fp = 0;
};

std::vector<Counts> threshold_counts(std::span<const double> scores, std::span<const bool> positive) {
  std::vector<size_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  std::vector<Counts> out;
  Counts c;
  for (size_t i = 0; i < idx.size(); ++i) {
    (positive[idx[i]] ? c.tp : c.fp) += 1;
    if (i + 1 == idx.size() || scores[idx[i + 1]] != scores[idx[i]]) out.push_back(c);
  }
  return out;
}

// Whether b lies on the straight line from a to c, in exact integer counts.
bool collinear(const Counts& a, const Counts& b, const Counts& c) {
  return (b.fp - a.fp) * (c.tp - a.tp) == (c.fp - a.fp) * (b.tp - a.tp);
}

double ratio(int64_t a, int64_t b) { return static_cast<double>(a) / static_cast<double>(b); }

}  // namespace

std::vector<CurvePoint> roc_curve(std::span<const double> scores, std::span<const bool> positive) {
  std::vector<Counts> counts = threshold_counts(scores, positive);
  counts.insert(counts.begin(), Counts{});
  Counts total = counts.back();
  if (total.tp == 0 || total.fp == 0) return {};
  std::vector<Counts> kept = {counts.front()};
  for (size_t i = 1; i + 1 < counts.size(); ++i)
    if (!collinear(kept.back(), counts[i], counts[i + 1])) kept.push_back(counts[i]);
  kept.push_back(total);
  std::vector<CurvePoint> out;
  for (const Counts& c : kept) out.push_back({ratio(c.fp, total.fp), ratio(c.tp, total.tp)});
  return out;
}

std::vector<CurvePoint> precision_recall_curve(std::span<const double> scores, std::span<const bool> positive) {
  std::vector<Counts> counts = threshold_counts(scores, positive);
  if (counts.empty() || counts.back().tp == 0) return {};
  std::vector<CurvePoint> out = {{0, 1}};
  for (const Counts& c : counts) out.push_back({ratio(c.tp, counts.back().tp), ratio(c.tp, c.tp + c.fp)});
  return out;
}

double area_under(std::span<const CurvePoint> curve) {
  double area = 0;
  for (size_t i = 1; i < curve.size(); ++i) area += (curve[i].x - curve[i - 1].x) * (curve[i].y + curve[i - 1].y) / 2;
  return area;
}

double average_precision(std::span<const CurvePoint> pr) {
  double ap = 0;
  for (size_t i = 1; i < pr.size(); ++i) ap += (pr[i].x - pr[i - 1].x) * pr[i].y;
  return ap;
}

std::optional<double> roc_auc(std::span<const double> scores, std::span<const bool> positive) {
  std::vector<CurvePoint> curve = roc_curve(scores, positive);
  if (curve.empty()) return std::nullopt;
  return area_under(curve);
}

Metrics MetricsAccumulator::compute() const {
  auto n = static_cast<int64_t>(labels_.size());
  if (n == 0) throw Error("metrics: no examples were added");
  Metrics m;
  m.count = n;
  m.loss = ext_loss_n_ > 0 ? ext_loss_sum_ / static_cast<double>(ext_loss_n_)
                           : ce_sum_ / static_cast<double>(n);
  int64_t C = classes_;
  m.confusion.assign(static_cast<size_t>(C * C), 0);
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    ++m.confusion[labels_[i] * C + preds_[i]];
    correct += labels_[i] == preds_[i];
  }
  m.accuracy = static_cast<double>(correct) / static_cast<double>(n);
  for (size_t j = 0; j < top_k_.size(); ++j)
    m.top_k.emplace_back(top_k_[j], static_cast<double>(top_hits_[j]) / static_cast<double>(n));
  m.classes.resize(static_cast<size_t>(C));
  int64_t present = 0, with_auc = 0;
  double sum_auc = 0;
  std::vector<double> s(static_cast<size_t>(n));
  std::unique_ptr<bool[]> pos(new bool[static_cast<size_t>(n)]);
  for (int64_t c = 0; c < C; ++c) {
    ClassMetrics& k = m.classes[c];
    int64_t tp = m.confusion[c * C + c];
    for (int64_t j = 0; j < C; ++j) {
      k.support += m.confusion[c * C + j];
      k.predicted += m.confusion[j * C + c];
    }
    k.precision = k.predicted ? static_cast<double>(tp) / static_cast<double>(k.predicted) : 0.0;
    k.recall = k.support ? static_cast<double>(tp) / static_cast<double>(k.support) : 0.0;
    k.f1 = k.precision + k.recall > 0 ? 2 * k.precision * k.recall / (k.precision + k.recall) : 0.0;
    if (k.support > 0 || k.predicted > 0) {
      ++present;
      m.macro_precision += k.precision;
      m.macro_recall += k.recall;
      m.macro_f1 += k.f1;
    }
    for (int64_t i = 0; i < n; ++i) {
      s[i] = probs_[i * C + c];
      pos[i] = labels_[i] == c;
    }
    std::span<const bool> positive(pos.get(), static_cast<size_t>(n));
    k.roc = roc_curve(s, positive);
    k.pr = precision_recall_curve(s, positive);
    if (!k.roc.empty()) k.auc = area_under(k.roc);
    if (k.auc) {
      ++with_auc;
      sum_auc += *k.auc;
    }
  }
  if (present > 0) {
    m.macro_precision /= static_cast<double>(present);
    m.macro_recall /= static_cast<double>(present);
    m.macro_f1 /= static_cast<double>(present);
  }
  if (with_auc > 0) m.macro_auc = sum_auc / static_cast<double>(with_auc);
  return m;
}

void TokenAccumulator::add(std::span<const float> logits, std::span<const int64_t> labels, int64_t classes) {
  auto c = static_cast<size_t>(classes);
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= classes) throw Error(fmt::format("label {} is not one of {} classes", labels[i], classes));
    std::span<const float> z = logits.subspan(i * c, c);
    size_t best = static_cast<size_t>(std::max_element(z.begin(), z.end()) - z.begin());
    double sum = 0;
    for (float v : z) sum += std::exp(static_cast<double>(v) - z[best]);
    nll_ += std::log(sum) - (static_cast<double>(z[static_cast<size_t>(labels[i])]) - z[best]);
    hits_ += best == static_cast<size_t>(labels[i]);
    ++count_;
  }
}

Metrics TokenAccumulator::compute() const {
  if (count_ == 0) throw Error("no predictions to score");
  Metrics m;
  m.per_token = true;
  m.count = count_;
  m.loss = nll_ / static_cast<double>(count_);
  m.accuracy = static_cast<double>(hits_) / static_cast<double>(count_);
  return m;
}

}  // namespace stag::rt
