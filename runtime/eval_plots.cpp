// Evaluation pictures as SVG, with the chart pieces stag plot draws its curves with.

#include "runtime/eval_plots.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "runtime/error.h"
#include "runtime/io.h"
#include "runtime/plot_svg.h"

namespace stag::rt {

namespace {

using plot::Axis;
using plot::Box;
using Pixels = std::vector<std::pair<double, double>>;

// A square chart on the left, the legend (one class a row) on its right.
constexpr double kHeight = 600, kValueWidth = 96;
constexpr Box kChart{80, 76, 540, 536};

std::string class_name(std::span<const std::string> names, size_t c) {
  return c < names.size() ? names[c] : fmt::format("class {}", c);
}

Pixels to_pixels(const std::vector<CurvePoint>& curve, const Axis& a) {
  Pixels px;
  for (const auto& p : curve)
    px.emplace_back(plot::to_px(a, p.x, kChart.left, kChart.right), plot::to_px(a, p.y, kChart.bottom, kChart.top));
  return px;
}

// Drops points less than half a pixel from the last one kept (a precision-recall curve has one
// per example), keeping the last; the picture does not change.
Pixels thinned(const Pixels& px) {
  Pixels out;
  for (size_t i = 0; i < px.size(); ++i)
    if (out.empty() || i + 1 == px.size() || std::hypot(px[i].first - out.back().first, px[i].second - out.back().second) >= 0.5)
      out.push_back(px[i]);
  return out;
}

// Which curve a class draws, and the number its legend entry gives.
struct CurveKind {
  const std::vector<CurvePoint>& (*curve)(const ClassMetrics&);
  std::string (*legend)(const ClassMetrics&);
  bool thin;    ///< one point an example: thinned for drawing
  bool chance;  ///< draw the diagonal of a classifier that guesses
};

const std::vector<CurvePoint>& roc_of(const ClassMetrics& k) { return k.roc; }
const std::vector<CurvePoint>& pr_of(const ClassMetrics& k) { return k.pr; }
std::string auc_label(const ClassMetrics& k) { return fmt::format("AUC {:.4f}", *k.auc); }
std::string ap_label(const ClassMetrics& k) { return fmt::format("AP {:.4f}", average_precision(k.pr)); }

// A legend row: the class's colour, its name, and its number in a right-aligned column.
struct Row {
  std::string name, value;
  const char* color;
};

void draw_legend(std::string& out, const std::vector<Row>& rows, double x, double y, double value_right) {
  for (const auto& r : rows) {
    out += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}" stroke-width="2.5"/>)" "\n", x, y - 4,
                       x + 18, y - 4, r.color);
    out += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="12">{}</text>)" "\n", x + 24, y, plot::escape(r.name));
    out += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="12" text-anchor="end">{}</text>)" "\n", value_right, y,
                       plot::escape(r.value));
    y += 19;
  }
}

// The width of the legend's name column, in pixels.
double names_width(std::span<const std::string> names, size_t n) {
  double w = 0;
  for (size_t c = 0; c < n; ++c) w = std::max(w, plot::text_width(class_name(names, c), 12));
  return w;
}

// The curves of every class that has one, and their legend to the right of the chart.
void draw_curves(std::string& out, const Metrics& m, std::span<const std::string> names, const Axis& a, const CurveKind& kind) {
  std::vector<Row> rows;
  for (size_t c = 0; c < m.classes.size(); ++c) {
    const auto& curve = kind.curve(m.classes[c]);
    if (curve.empty()) continue;
    Pixels px = to_pixels(curve, a);
    out += plot::polyline(kind.thin ? thinned(px) : px, plot::color(c), 1.6, 0.9, 3);
    rows.push_back({class_name(names, c), kind.legend(m.classes[c]), plot::color(c)});
  }
  double x = kChart.right + 30;
  draw_legend(out, rows, x, kChart.top + 12, x + 24 + names_width(names, m.classes.size()) + kValueWidth);
}

std::string curve_picture(const Metrics& m, std::span<const std::string> names, const std::string& title,
                          const std::string& subtitle, const std::string (&labels)[2], const CurveKind& kind) {
  Axis a = plot::make_axis(0, 1, 5, false);
  double width = kChart.right + 30 + 24 + names_width(names, m.classes.size()) + kValueWidth + 24;
  std::string out = plot::svg_begin(std::max(width, 640.0), kHeight, title, subtitle);
  plot::draw_axes(out, kChart, a, a, labels[0]);
  plot::draw_y_title(out, kChart.left - 52, kChart, labels[1]);
  if (kind.chance) {
    Pixels ends = to_pixels({{0, 0}, {1, 1}}, a);
    out += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#999999" stroke-dasharray="5,4"/>)" "\n",
                       ends[0].first, ends[0].second, ends[1].first, ends[1].second);
  }
  draw_curves(out, m, names, a, kind);
  return out + "</svg>\n";
}

// Cell colour: white to tab10's blue by the share of the row.
std::string shade(double share) {
  auto mix = [&](int to) { return static_cast<int>(std::lround(255 + (to - 255) * share)); };
  return fmt::format("#{:02x}{:02x}{:02x}", mix(0x1f), mix(0x77), mix(0xb4));
}

struct Grid {
  size_t n;
  double left, top, cell;
};

void draw_cells(std::string& out, const Metrics& m, const Grid& g) {
  for (size_t t = 0; t < g.n; ++t)
    for (size_t p = 0; p < g.n; ++p) {
      int64_t count = m.confusion[t * g.n + p];
      double share = m.classes[t].support ? static_cast<double>(count) / static_cast<double>(m.classes[t].support) : 0;
      double x = g.left + static_cast<double>(p) * g.cell, y = g.top + static_cast<double>(t) * g.cell;
      out += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}" stroke="#ffffff"/>)" "\n", x, y,
                         g.cell, g.cell, shade(share));
      out += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="12" text-anchor="middle" fill="{}">{}</text>)" "\n",
                         x + g.cell / 2, y + g.cell / 2 + 4, share > 0.5 ? "#ffffff" : "#222222", count);
    }
}

// Class names down the left (true classes) and slanted along the bottom (predictions).
void draw_class_labels(std::string& out, std::span<const std::string> names, const Grid& g) {
  double bottom = g.top + static_cast<double>(g.n) * g.cell;
  for (size_t c = 0; c < g.n; ++c) {
    double mid = static_cast<double>(c) * g.cell + g.cell / 2;
    out += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="12" text-anchor="end">{}</text>)" "\n", g.left - 8,
                       g.top + mid + 4, plot::escape(class_name(names, c)));
    out += fmt::format(R"svg(<text x="{0:.1f}" y="{1:.1f}" font-size="12" text-anchor="end" transform="rotate(-40 {0:.1f} {1:.1f})">{2}</text>)svg"
                       "\n", g.left + mid + 4, bottom + 14, plot::escape(class_name(names, c)));
  }
  double slanted = names_width(names, g.n) * std::sin(40 * M_PI / 180);
  out += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="13" text-anchor="middle">predicted class</text>)" "\n",
                     g.left + static_cast<double>(g.n) * g.cell / 2, bottom + slanted + 40);
  Box rows{0, g.top, 0, bottom};
  plot::draw_y_title(out, 18, rows, "true class");
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  AtomicFileWriter w(path);
  w.write(text);
  w.commit();
}

}  // namespace

std::string roc_svg(const Metrics& m, std::span<const std::string> names, const std::string& title) {
  std::string subtitle = fmt::format("one class against the rest, {} examples", m.count);
  if (m.macro_auc) subtitle += fmt::format("; macro AUC {:.4f}", *m.macro_auc);
  static const std::string labels[2] = {"false positive rate", "true positive rate"};
  return curve_picture(m, names, title + ": ROC curves", subtitle, labels, {roc_of, auc_label, false, true});
}

std::string precision_recall_svg(const Metrics& m, std::span<const std::string> names, const std::string& title) {
  static const std::string labels[2] = {"recall", "precision"};
  return curve_picture(m, names, title + ": precision-recall curves",
                       fmt::format("one class against the rest, {} examples; AP: average precision", m.count), labels,
                       {pr_of, ap_label, true, false});
}

std::string confusion_svg(const Metrics& m, std::span<const std::string> names, const std::string& title) {
  size_t n = m.classes.size();
  double label = names_width(names, n);
  Grid g{n, 60 + label, 76, std::max(24.0, std::min(56.0, 560.0 / static_cast<double>(n)))};
  double width = g.left + static_cast<double>(n) * g.cell + 30, height = g.top + static_cast<double>(n) * g.cell + label * 0.65 + 60;
  std::string out = plot::svg_begin(std::max(width, 520.0), height, title + ": confusion matrix",
                                    fmt::format("{} examples, accuracy {:.4f}; shade: share of the true class's examples", m.count, m.accuracy));
  draw_cells(out, m, g);
  draw_class_labels(out, names, g);
  return out + "</svg>\n";
}

std::vector<std::filesystem::path> write_eval_plots(const std::filesystem::path& dir, const Metrics& m,
                                                    std::span<const std::string> names, const std::string& title) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(fmt::format("cannot create '{}': {}", dir.string(), ec.message()));
  std::vector<std::pair<std::string, std::string>> pictures = {{"roc.svg", roc_svg(m, names, title)},
                                                               {"precision_recall.svg", precision_recall_svg(m, names, title)},
                                                               {"confusion.svg", confusion_svg(m, names, title)}};
  std::vector<std::filesystem::path> written;
  for (const auto& [file, svg] : pictures) {
    write_file(dir / file, svg);
    written.push_back(dir / file);
  }
  return written;
}

}  // namespace stag::rt
