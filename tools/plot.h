#pragma once
/// Training curves from a JSON-lines run log (`stag train --log`, a GAN's log) drawn as SVG:
/// reading the log and grouping its numbers into panels, which runtime/plot_svg.h draws.

#include <string>
#include <utility>
#include <vector>

#include "runtime/plot_svg.h"

namespace stag::plot {

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

/// Groups series into panels: keys with the same last word (train_loss, val_loss; d_real_accuracy,
/// d_fake_accuracy) share one, then keys with the same first word that is not a split name
/// (loss_d, loss_g, but not val_accuracy, val_auc); any other key has its own. Step panels first.
std::vector<Panel> make_panels(const RunLog& log);

}  // namespace stag::plot
