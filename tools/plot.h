#pragma once
/// Training curves from a JSON-lines run log (`stag train --log`, a GAN's log) drawn as SVG:
/// reading the log, grouping its numbers into panels, and drawing the panels.

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

/// What a run log holds: the numeric keys of step lines and of epoch lines, in order of first
/// appearance, and the numbers of the test line, if any.
struct RunLog {
  std::vector<Series> step;
  std::vector<Series> epoch;
  std::vector<std::pair<std::string, double>> test;
};

/// Reads a JSON-lines log. Step lines (`"event":"step"`) give one point a numeric key at x =
/// "step" (else the line's rank), except step, epoch, seconds and lr; epoch lines likewise at x =
/// "epoch", except epoch, step and seconds. Null (non-finite) values, strings and other events
/// are skipped. Throws rt::Error "FILE:LINE: ..." for a line that is not a JSON object, and
/// "FILE: ..." when the file cannot be read or holds no numbers to plot.
RunLog read_run_log(const std::string& path);

/// A chart: curves sharing axes.
struct Panel {
  std::string title;    ///< the keys it draws, e.g. "train_loss, val_loss"
  std::string x_label;  ///< "step" or "epoch"
  std::string y_label;  ///< the quantity, e.g. "loss"
  bool per_step = false;  ///< drawn raw (faint) and smoothed; else markers and lines
  std::vector<Series> series;
};

/// Groups series into panels: keys with the same last word (train_loss, val_loss; d_real_accuracy,
/// d_fake_accuracy) share one, then keys with the same first word that is not a split name
/// (loss_d, loss_g, but not val_accuracy, val_auc); any other key has its own. Step panels first.
std::vector<Panel> make_panels(const RunLog& log);

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

}  // namespace stag::plot
