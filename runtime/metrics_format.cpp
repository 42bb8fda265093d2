// Plain-text tables of the per-class metrics and the confusion matrix.
#include <fmt/format.h>

#include <algorithm>

#include "runtime/metrics.h"

namespace stag::rt {

namespace {

std::string class_name(std::span<const std::string> names, int64_t c) {
  return c < static_cast<int64_t>(names.size()) ? names[c] : std::to_string(c);
}

size_t name_width(const Metrics& m, std::span<const std::string> names, size_t at_least) {
  size_t w = at_least;
  for (int64_t c = 0; c < m.num_classes(); ++c) w = std::max(w, class_name(names, c).size());
  return w;
}

}  // namespace

std::string format_class_table(const Metrics& m, std::span<const std::string> names) {
  size_t w = name_width(m, names, 5);
  std::string out = fmt::format("{:<{}}  {:>9}  {:>6}  {:>6}  {:>6}  {:>7}\n", "class", w,
                                "precision", "recall", "f1", "auc", "support");
  auto auc = [](const std::optional<double>& a) { return a ? fmt::format("{:.4f}", *a) : "-"; };
  for (int64_t c = 0; c < m.num_classes(); ++c) {
    const ClassMetrics& k = m.classes[c];
    out += fmt::format("{:<{}}  {:>9.4f}  {:>6.4f}  {:>6.4f}  {:>6}  {:>7}\n", class_name(names, c),
                       w, k.precision, k.recall, k.f1, auc(k.auc), k.support);
  }
  out += fmt::format("{:<{}}  {:>9.4f}  {:>6.4f}  {:>6.4f}  {:>6}  {:>7}\n", "macro", w,
                     m.macro_precision, m.macro_recall, m.macro_f1, auc(m.macro_auc), m.count);
  out += fmt::format("accuracy {:.4f}  loss {:.4f}", m.accuracy, m.loss);
  for (const auto& [k, acc] : m.top_k) out += fmt::format("  top-{} {:.4f}", k, acc);
  out += "\n";
  return out;
}

std::string format_confusion_matrix(const Metrics& m, std::span<const std::string> names) {
  int64_t C = m.num_classes();
  size_t w = name_width(m, names, 9);
  size_t cell = 5;
  for (int64_t v : m.confusion) cell = std::max(cell, std::to_string(v).size());
  for (int64_t c = 0; c < C; ++c)
    cell = std::max(cell, std::min<size_t>(class_name(names, c).size(), 10));
  auto head = [&](int64_t c) { return class_name(names, c).substr(0, cell); };
  std::string out = fmt::format("{:<{}}", "true\\pred", w);
  for (int64_t p = 0; p < C; ++p) out += fmt::format(" {:>{}}", head(p), cell);
  out += "\n";
  for (int64_t t = 0; t < C; ++t) {
    out += fmt::format("{:<{}}", class_name(names, t), w);
    for (int64_t p = 0; p < C; ++p) out += fmt::format(" {:>{}}", m.confusion[t * C + p], cell);
    out += "\n";
  }
  return out;
}

}  // namespace stag::rt
