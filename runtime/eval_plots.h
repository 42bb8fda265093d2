#pragma once
/// The pictures of a classifier's evaluation, drawn from the same numbers the metrics print
/// (metrics.h): the one-vs-rest ROC curve of every class with its AUC, the precision-recall
/// curves with their average precision, and the confusion matrix as a heatmap with its counts.
/// `stag eval --plots DIR` writes them, and `stag train` into its run folder after the test.

#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "runtime/metrics.h"

namespace stag::rt {

/// roc.svg: every class's ROC curve, exactly the points its AUC is the area under (ClassMetrics::
/// roc), on fixed [0, 1] axes with the chance diagonal; the legend gives each class's AUC.
std::string roc_svg(const Metrics& m, std::span<const std::string> names, const std::string& title);
/// precision_recall.svg: every class's precision-recall curve; the legend gives its average precision.
std::string precision_recall_svg(const Metrics& m, std::span<const std::string> names, const std::string& title);
/// confusion.svg: rows true classes, columns predictions, each cell's count written in it and
/// shaded by its share of the row (the recall on the diagonal).
std::string confusion_svg(const Metrics& m, std::span<const std::string> names, const std::string& title);

/// Writes the three pictures into `dir` (created if missing), each file atomically; returns their
/// paths. `title` heads each (e.g. "mlp on fashion-mnist"). Throws Error when a file cannot be written.
std::vector<std::filesystem::path> write_eval_plots(const std::filesystem::path& dir, const Metrics& m,
                                                    std::span<const std::string> names, const std::string& title);

}  // namespace stag::rt
