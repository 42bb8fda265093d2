#pragma once
/// Classification metrics over an epoch, from logits or probabilities and integer labels: mean
/// loss, accuracy, top-k accuracy, per-class and macro precision / recall / F1, one-vs-rest ROC
/// AUC, and the confusion matrix; with plain-text tables for them.
///
/// Conventions (scikit-learn's, so numbers can be checked against it):
/// - predicted class = argmax of the scores, the lowest index on ties (numpy's argmax).
/// - precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2PR / (P + R); a 0/0 is 0
///   (scikit-learn's zero_division=0).
/// - macro averages are over the classes that occur in the labels or the predictions
///   (scikit-learn's default `labels`); a class that is neither true nor predicted is left out.
/// - ROC AUC of class c: one-vs-rest on the softmax probabilities (the probabilities as given),
///   with tied scores counted by the midrank rule (equivalently the trapezoid under the ROC
///   curve, as roc_auc_score). A class with no positive example, or no negative one, has no AUC
///   and is left out of the macro AUC (scikit-learn raises an error there instead).
/// - ROC and precision-recall curves: as roc_curve and precision_recall_curve (drop_intermediate
///   on); the AUC is the trapezoid area under the very points roc_curve returns.
/// - top-k: the label counts as within the top k when fewer than k classes rank above it, where
///   class j ranks above the label when its score is higher, or equal with j < label (the same
///   tie rule as argmax, so top-1 accuracy equals accuracy).
/// - loss: the mean cross-entropy -log softmax(logits)[label] (or -log p[label] for
///   probabilities) unless batch losses are given with add_loss, which then take precedence.

#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace stag::rt {

/// What the score rows hold.
enum class ScoreKind { logits, probabilities };

/// A point of a curve traced by lowering a threshold through the scores.
struct CurvePoint {
  double x = 0, y = 0;
};

struct ClassMetrics {
  int64_t support = 0;    ///< examples whose label is this class
  int64_t predicted = 0;  ///< examples predicted as this class
  double precision = 0, recall = 0, f1 = 0;
  std::optional<double> auc;  ///< absent when the class has no positives or no negatives
  std::vector<CurvePoint> roc;  ///< one-vs-rest ROC curve (roc_curve); empty without an AUC
  std::vector<CurvePoint> pr;   ///< precision-recall curve (precision_recall_curve); empty without positives
};

struct Metrics {
  int64_t count = 0;
  double loss = 0;
  double accuracy = 0;
  std::vector<std::pair<int64_t, double>> top_k;  ///< (k, accuracy), in the requested order
  std::vector<ClassMetrics> classes;
  double macro_precision = 0, macro_recall = 0, macro_f1 = 0;
  std::optional<double> macro_auc;  ///< absent when no class has an AUC
  /// confusion[t * C + p]: examples of true class t predicted as p.
  std::vector<int64_t> confusion;
  /// A language model's next-token scores: loss in nats per token and accuracy only.
  bool per_token = false;
  /// The model's own `metric NAME` outputs, each the mean over the full batches.
  std::vector<std::pair<std::string, double>> custom;
  int64_t num_classes() const { return static_cast<int64_t>(classes.size()); }
  /// exp(loss): the perplexity of a per-token loss.
  double perplexity() const { return std::exp(loss); }
  /// loss / ln 2: bits per token (per character for a character vocabulary).
  double bits() const { return loss / std::log(2.0); }
};

/// Loss and accuracy of next-token predictions, a language model's validation: its per-class
/// view over the vocabulary says little, and an AUC would keep every score.
class TokenAccumulator {
 public:
  /// Adds f32 logits [n, classes] and labels [n]; throws Error for a label out of range.
  void add(std::span<const float> logits, std::span<const int64_t> labels, int64_t classes);
  /// count, loss and accuracy, with per_token set; throws Error when nothing was added.
  Metrics compute() const;

 private:
  double nll_ = 0;
  int64_t hits_ = 0, count_ = 0;
};

/// Collects an epoch's predictions batch by batch.
class MetricsAccumulator {
 public:
  /// `top_k`: the k of each top-k accuracy wanted (each 1..num_classes). The scores are kept for
  /// the AUC (num_classes floats an example).
  explicit MetricsAccumulator(int64_t num_classes, std::vector<int64_t> top_k = {},
                              ScoreKind kind = ScoreKind::logits);
  /// Adds the first `valid` rows (all when negative) of f32 scores [B, C] and i64 labels [B]
  /// (a padded last batch passes its real size). Throws Error for a label out of range.
  void add(const Tensor& scores, const Tensor& labels, int64_t valid = -1);
  void add(std::span<const float> scores, std::span<const int64_t> labels);
  /// Records a batch's mean loss over n examples (e.g. what the training step returned).
  void add_loss(double mean_loss, int64_t n);
  /// The metrics of everything added; throws Error when nothing was.
  Metrics compute() const;
  void reset();

 private:
  int64_t classes_;
  std::vector<int64_t> top_k_;
  ScoreKind kind_;
  std::vector<double> probs_;  ///< [count, C]
  std::vector<int64_t> labels_, preds_;
  std::vector<int64_t> top_hits_;
  double ce_sum_ = 0, ext_loss_sum_ = 0;
  int64_t ext_loss_n_ = 0;
};

/// The ROC curve of binary labels (true = positive): (false positive rate, true positive rate)
/// as the threshold falls through each distinct score, from (0, 0) to (1, 1). Tied scores make
/// one diagonal segment (the midrank rule); a point on the straight line between its neighbours
/// is left out, as it adds no area. Empty when either class is absent.
std::vector<CurvePoint> roc_curve(std::span<const double> scores, std::span<const bool> positive);
/// The precision-recall curve: (recall, precision) at each distinct threshold from the highest,
/// after a first point (0, 1), as scikit-learn's precision_recall_curve read backwards. Empty
/// when there is no positive.
std::vector<CurvePoint> precision_recall_curve(std::span<const double> scores, std::span<const bool> positive);
/// The trapezoid area under a curve whose x never decreases.
double area_under(std::span<const CurvePoint> curve);
/// Average precision of a precision-recall curve: the sum of each recall step times the precision
/// it reaches (scikit-learn's average_precision_score); 0 for an empty curve.
double average_precision(std::span<const CurvePoint> pr);
/// One-vs-rest ROC AUC of binary labels: area_under(roc_curve); nullopt when either class is absent.
std::optional<double> roc_auc(std::span<const double> scores, std::span<const bool> positive);

/// A per-class table (precision, recall, F1, AUC, support) with a macro row; `names` labels the
/// rows (class numbers when empty).
std::string format_class_table(const Metrics& m, std::span<const std::string> names = {});
/// The confusion matrix, rows true classes and columns predictions.
std::string format_confusion_matrix(const Metrics& m, std::span<const std::string> names = {});

}  // namespace stag::rt
