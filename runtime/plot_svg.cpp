// Drawing charts as SVG text: round ticks, light grid lines, a legend above each chart (never
// over the data), raw step values faint under their smoothed curve.

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <iterator>

#include "runtime/error.h"
#include "runtime/plot_svg.h"

namespace stag::plot {

namespace {

constexpr double kPanelWidth = 560, kPanelHeight = 330, kHeader = 64, kGap = 12;
// DejaVu Sans (what rsvg-convert and most browsers fall back to) averages about 0.6 em a
// character: enough to keep labels apart without measuring text.
constexpr double kCharWidth = 0.62;
constexpr const char* kFont = "DejaVu Sans, Verdana, Arial, sans-serif";
// Data sit kInset pixels inside the frame, so markers at the ends are not cut by it.
constexpr double kInset = 6;
// matplotlib's tab10: distinct for the first ten curves, readable on white.
constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

// As many decimals as the step needs ("0.05" -> 2), so every label has the same form.
std::string format_tick(double v, double step) {
  if (std::fabs(v) < step * 1e-6) v = 0;  // no "-0" from rounding
  int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  if (decimals > 6 || std::fabs(v) >= 1e7) return fmt::format("{:.3g}", v);
  return fmt::format("{:.{}f}", v, decimals);
}

// Extent of a panel's data: {x lo, x hi, y lo, y hi}.
std::array<double, 4> extent(const Panel& p) {
  std::array<double, 4> e = {INFINITY, -INFINITY, INFINITY, -INFINITY};
  for (const auto& s : p.series)
    for (const auto& [x, y] : s.points) e = {std::min(e[0], x), std::max(e[1], x), std::min(e[2], y), std::max(e[3], y)};
  return e;
}

bool integer_x(const Panel& p) {
  for (const auto& s : p.series)
    for (const auto& [x, y] : s.points)
      if (x != std::floor(x)) return false;
  return true;
}

std::vector<Entry> legend_entries(const Panel& p, double smoothing) {
  std::vector<Entry> entries;
  for (size_t i = 0; i < p.series.size(); ++i) entries.push_back({p.series[i].name, color(i), p.per_step ? 2.0 : 1.5, 1.0});
  if (p.per_step) {
    entries.push_back({"raw", "#555555", 1.5, 0.35});
    entries.push_back({fmt::format("smoothed ({:g})", smoothing), "#555555", 2, 1.0});
  }
  return entries;
}

// A series' points in pixels, its y values replaced by `ys` when given (the smoothed curve).
std::vector<std::pair<double, double>> to_pixels(const Series& s, const Box& b, const Axis& xa, const Axis& ya,
                                                 const std::vector<double>* ys = nullptr) {
  std::vector<std::pair<double, double>> px;
  size_t i = 0;
  for (const auto& [x, y] : s.points) {
    double v = ys ? (*ys)[i++] : y;
    px.emplace_back(to_px(xa, x, b.left, b.right), to_px(ya, v, b.bottom, b.top));
  }
  return px;
}

std::string markers(const std::vector<std::pair<double, double>>& px, const char* color) {
  std::string out;
  for (const auto& [x, y] : px) out += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"/>)" "\n", x, y, color);
  return out;
}

void draw_curves(std::string& out, const Panel& p, const Box& b, const Axis& xa, const Axis& ya, double smoothing) {
  for (size_t i = 0; i < p.series.size() && p.per_step; ++i)
    out += polyline(to_pixels(p.series[i], b, xa, ya), color(i), 1, 0.3);
  for (size_t i = 0; i < p.series.size(); ++i) {
    const Series& s = p.series[i];
    std::vector<double> ys;
    for (const auto& [x, y] : s.points) ys.push_back(y);
    if (p.per_step) ys = smooth(ys, smoothing);
    auto px = to_pixels(s, b, xa, ya, &ys);
    out += polyline(px, color(i), p.per_step ? 2 : 1.5, 1);
    if (!p.per_step || px.size() == 1) out += markers(px, color(i));
  }
}

// The panel's keys, or its quantity and curve count when they would not fit.
std::string heading(const Panel& p) {
  if (text_width(p.title + " per epoch", 14) <= kPanelWidth - 100) return p.title;
  return fmt::format("{} ({} curves)", p.y_label, p.series.size());
}

void draw_panel(std::string& out, const Panel& p, double ox, double oy, double smoothing) {
  auto e = extent(p);
  Axis xa = make_axis(e[0], e[1], 6, integer_x(p)), ya = make_axis(e[2], e[3], 5, false);
  size_t label_chars = 0;
  for (double t : ya.ticks) label_chars = std::max(label_chars, format_tick(t, ya.step).size());
  double left = ox + 34 + static_cast<double>(label_chars) * 11 * kCharWidth;
  out += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="14" font-weight="bold">{}<tspan dx="7" font-weight="normal" fill="#666">per {}</tspan></text>)"
                     "\n", left, oy + 22, escape(heading(p)), escape(p.x_label));
  int rows = draw_legend(out, legend_entries(p, smoothing), left, oy + 42, ox + kPanelWidth - 16);
  Box b{left, oy + 36 + 17.0 * rows, ox + kPanelWidth - 24, oy + kPanelHeight - 48};
  draw_axes(out, b, xa, ya, p.x_label);
  draw_y_title(out, ox + 16, b, p.y_label);
  draw_curves(out, p, b, xa, ya, smoothing);
}

}  // namespace

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

const char* color(size_t i) { return kColors[i % std::size(kColors)]; }

double text_width(const std::string& s, double size) { return static_cast<double>(s.size()) * size * kCharWidth; }

Axis make_axis(double lo, double hi, int target, bool integer) {
  auto ticks = nice_ticks(lo, hi, target, integer);
  return {ticks, ticks.size() > 1 ? ticks[1] - ticks[0] : 1.0};
}

double to_px(const Axis& a, double v, double from, double to) {
  double dir = to > from ? 1 : -1;
  from += dir * kInset, to -= dir * kInset;
  return from + (v - a.lo()) / (a.hi() - a.lo()) * (to - from);
}

// Draws the entries left to right from (x0, y0), wrapping before x_max; returns the rows used.
int draw_legend(std::string& out, const std::vector<Entry>& entries, double x0, double y0, double x_max) {
  double x = x0, y = y0;
  int rows = 1;
  for (const auto& e : entries) {
    double w = 24 + text_width(e.label, 12) + 14;
    if (x + w > x_max && x > x0) x = x0, y += 17, ++rows;
    out += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}" stroke-width="{}" stroke-opacity="{}"/>)"
                       "\n", x, y - 4, x + 18, y - 4, e.color, e.width, e.opacity);
    out += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="12">{}</text>)" "\n", x + 24, y, escape(e.label));
    x += w;
  }
  return rows;
}

// The frame, grid lines, tick labels and axis titles.
void draw_axes(std::string& out, const Box& b, const Axis& xa, const Axis& ya, const std::string& x_label) {
  for (double t : ya.ticks) {
    double y = to_px(ya, t, b.bottom, b.top);
    out += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#e4e4e4"/>)" "\n", b.left, y, b.right, y);
    out += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="11" text-anchor="end" fill="#333">{}</text>)" "\n",
                       b.left - 6, y + 4, format_tick(t, ya.step));
  }
  for (double t : xa.ticks) {
    double x = to_px(xa, t, b.left, b.right);
    out += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#e4e4e4"/>)" "\n", x, b.top, x, b.bottom);
    out += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="11" text-anchor="middle" fill="#333">{}</text>)" "\n",
                       x, b.bottom + 16, format_tick(t, xa.step));
  }
  out += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="none" stroke="#888"/>)" "\n",
                     b.left, b.top, b.right - b.left, b.bottom - b.top);
  out += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="12" text-anchor="middle">{}</text>)" "\n",
                     (b.left + b.right) / 2, b.bottom + 36, escape(x_label));
}

void draw_y_title(std::string& out, double x, const Box& b, const std::string& label) {
  double y = (b.top + b.bottom) / 2;
  out += fmt::format(R"svg(<text x="{:.1f}" y="{:.1f}" font-size="12" text-anchor="middle" transform="rotate(-90 {:.1f} {:.1f})">{}</text>)svg"
                     "\n", x, y, x, y, escape(label));
}

std::string polyline(const std::vector<std::pair<double, double>>& px, const char* color, double width, double opacity,
                     int decimals) {
  std::string points;
  for (const auto& [x, y] : px) points += fmt::format("{:.{}f},{:.{}f} ", x, decimals, y, decimals);
  if (!points.empty()) points.pop_back();
  return fmt::format(R"(<polyline points="{}" fill="none" stroke="{}" stroke-width="{}" stroke-opacity="{}" stroke-linejoin="round"/>)"
                     "\n", points, color, width, opacity);
}

std::vector<double> smooth(const std::vector<double>& values, double weight) {
  std::vector<double> out;
  double last = 0, debias = 1;
  for (double v : values) {
    last = last * weight + (1 - weight) * v;
    debias *= weight;
    out.push_back(weight > 0 ? last / (1 - debias) : v);
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int target, bool integer) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || !std::isfinite(hi - lo)) throw rt::Error("values too large to plot");
  if (!(hi > lo)) {  // one value: a range around it
    double pad = integer ? 1 : (lo == 0 ? 1 : std::fabs(lo) * 0.1);
    lo -= pad, hi += pad;
  }
  double raw = (hi - lo) / std::max(target, 1);
  double mag = std::pow(10, std::floor(std::log10(raw)));
  double norm = raw / mag;
  double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  if (integer) step = std::max(step, 1.0);
  double first = std::floor(lo / step + 1e-9) * step;
  auto count = static_cast<int64_t>(std::ceil((hi - first) / step - 1e-9));
  std::vector<double> ticks;
  for (int64_t i = 0; i <= count; ++i) ticks.push_back(first + static_cast<double>(i) * step);
  return ticks;
}

std::string svg_begin(double width, double height, const std::string& title, const std::string& subtitle) {
  width = std::ceil(width), height = std::ceil(height);  // whole pixels: a PNG of it has exactly this size
  std::string out = fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{0}" height="{1}" viewBox="0 0 {0} {1}" font-family="{2}">)"
                                "\n", width, height, kFont);
  out += fmt::format(R"(<rect width="{}" height="{}" fill="white"/>)" "\n", width, height);
  out += fmt::format(R"(<text x="{}" y="28" font-size="18" font-weight="bold">{}</text>)" "\n", kGap + 16, escape(title));
  if (!subtitle.empty())
    out += fmt::format(R"(<text x="{}" y="50" font-size="12" fill="#444">{}</text>)" "\n", kGap + 16, escape(subtitle));
  return out;
}

std::string render_svg(const std::vector<Panel>& panels, const PlotOptions& o) {
  size_t cols = panels.size() > 1 ? 2 : 1, rows = (panels.size() + cols - 1) / cols;
  double width = static_cast<double>(cols) * kPanelWidth + 2 * kGap, height = kHeader + static_cast<double>(rows) * kPanelHeight + kGap;
  std::string out = svg_begin(width, height, o.title, o.subtitle);
  for (size_t i = 0; i < panels.size(); ++i)
    draw_panel(out, panels[i], kGap + static_cast<double>(i % cols) * kPanelWidth, kHeader + static_cast<double>(i / cols) * kPanelHeight,
               o.smoothing);
  return out + "</svg>\n";
}

}  // namespace stag::plot
