#pragma once
/// Training progress for people and for plots: a per-epoch progress bar on a terminal (plain
/// lines in a log), and a JSON-lines writer with one object per epoch.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace stag::rt {

/// Seconds on a monotonic clock; injectable so tests control time.
using Clock = std::function<double()>;
/// std::chrono::steady_clock in seconds.
double steady_seconds();

struct ProgressOptions {
  /// Terminal mode: one line redrawn in place (carriage return), at most every min_redraw
  /// seconds. Otherwise plain lines: one each time another `percent_step` percent is done, and
  /// one at the end. Default: isatty(fileno(out)).
  bool terminal = false;
  double min_redraw = 0.1;
  int percent_step = 10;
  int bar_width = 30;
};

/// The options with `terminal` set from isatty on the stream.
ProgressOptions progress_options_for(std::FILE* out);

/// Progress of one epoch: examples done out of a total, the running mean loss, examples/s and ETA.
class ProgressBar {
 public:
  ProgressBar(std::FILE* out, std::string label, int64_t total_examples, ProgressOptions options,
              Clock clock = steady_seconds);
  /// `examples_done` so far in this epoch (cumulative) and the current mean loss.
  void update(int64_t examples_done, double loss);
  /// The final line (terminal: the bar completed, then a newline), with `extra` appended (e.g.
  /// validation metrics). Called once; later updates are ignored.
  void finish(const std::string& extra = "");

  /// The text of the current state without control characters (what a plain line says).
  std::string status() const;

 private:
  void draw(bool final);
  std::FILE* out_;
  std::string label_;
  int64_t total_, done_ = 0;
  double loss_ = 0;
  ProgressOptions o_;
  Clock clock_;
  double start_, last_draw_ = -1e300;
  int next_percent_;
  bool finished_ = false;
  size_t last_width_ = 0;
};

/// "1:02:03" / "02:03" for a duration in seconds ("--:--" when unknown).
std::string format_duration(double seconds);

/// A value in a log record.
using LogValue = std::variant<int64_t, double, std::string>;
/// One record: keys in the order they are written.
using LogRecord = std::vector<std::pair<std::string, LogValue>>;

/// Appends one JSON object a line (non-finite doubles become null, which JSON lacks otherwise).
/// Each line is flushed as it is written, so a reader (or a killed run) sees whole lines.
class JsonLinesWriter {
 public:
  /// Opens for appending (a resumed run continues the file); `truncate` starts it afresh.
  explicit JsonLinesWriter(const std::filesystem::path& path, bool truncate = false);
  ~JsonLinesWriter();
  JsonLinesWriter(const JsonLinesWriter&) = delete;
  JsonLinesWriter& operator=(const JsonLinesWriter&) = delete;
  void write(const LogRecord& record);

 private:
  std::FILE* f_ = nullptr;
  std::string name_;
};

/// The JSON text of a record (no newline).
std::string to_json_line(const LogRecord& record);

}  // namespace stag::rt
