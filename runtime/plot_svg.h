#pragma once
/// Charts as SVG text: panels of curves with round ticks, light grid lines and a legend above
/// each chart (stag plot's training curves), and the drawing pieces the evaluation pictures
/// (eval_plots.h) share with them. Text only: no fonts are measured and nothing is rasterised.

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace stag::plot {

/// One curve: its name (the log's key) and its points by x (step or epoch). A later line with
/// the same x replaces an earlier one, as a resumed run logs again the steps it repeats.
struct Series {
  std::string name;
  std::map<double, double> points;
};

/// A chart: curves sharing axes.
struct Panel {
  std::string title;    ///< the keys it draws, e.g. "train_loss, val_loss"
  std::string x_label;  ///< "step" or "epoch"
  std::string y_label;  ///< the quantity, e.g. "loss"
  bool per_step = false;  ///< drawn raw (faint) and smoothed; else markers and lines
  std::vector<Series> series;
};

/// How the picture is drawn.
struct PlotOptions {
  std::string title;       ///< the heading, e.g. the log's file name
  std::string subtitle;    ///< a line under it (the test scores), or empty
  double smoothing = 0.9;  ///< TensorBoard's debiased exponential moving average weight, [0, 1)
};

/// Exponential moving average of values in order, debiased as TensorBoard's smoothing slider.
std::vector<double> smooth(const std::vector<double>& values, double weight);

/// Round tick positions covering [lo, hi] (about `target` of them, steps of 1, 2 or 5 times a
/// power of ten, at least 1 when `integer`); the first and last enclose the data.
std::vector<double> nice_ticks(double lo, double hi, int target, bool integer);

/// The panels as a standalone SVG document, two panels a row.
std::string render_svg(const std::vector<Panel>& panels, const PlotOptions& options);

// ---- Drawing pieces --------------------------------------------------------------------------

/// A rectangle in pixels.
struct Box {
  double left, top, right, bottom;
};

/// A scale from data to pixels: the first and last tick are the ends of the axis.
struct Axis {
  std::vector<double> ticks;
  double step;
  double lo() const { return ticks.front(); }
  double hi() const { return ticks.back(); }
};

/// An axis with nice_ticks over [lo, hi].
Axis make_axis(double lo, double hi, int target, bool integer);
/// The pixel of value v on an axis drawn from pixel `from` to `to`, a few pixels inside both ends.
double to_px(const Axis& a, double v, double from, double to);
/// Text with &, <, > and " escaped for XML.
std::string escape(const std::string& s);
/// The i-th colour of matplotlib's tab10.
const char* color(size_t i);
/// About how wide text of this font size is drawn, in pixels.
double text_width(const std::string& s, double size);

/// A legend entry: a short line in the curve's colour and style, then its name.
struct Entry {
  std::string label, color;
  double width, opacity;
};

/// Draws the entries left to right from (x0, y0), wrapping before x_max; returns the rows used.
int draw_legend(std::string& out, const std::vector<Entry>& entries, double x0, double y0, double x_max);
/// The frame, grid lines, tick labels and the x axis' title.
void draw_axes(std::string& out, const Box& b, const Axis& xa, const Axis& ya, const std::string& x_label);
/// The y axis' title, turned, at x.
void draw_y_title(std::string& out, double x, const Box& b, const std::string& label);
/// An SVG polyline through points in pixels, written with `decimals` digits after the point.
std::string polyline(const std::vector<std::pair<double, double>>& px, const char* color, double width, double opacity,
                     int decimals = 1);
/// The opening <svg> element of a width x height picture on white, with a bold title and a
/// subtitle (when not empty) at the top left; close it with "</svg>\n".
std::string svg_begin(double width, double height, const std::string& title, const std::string& subtitle);

}  // namespace stag::plot
