// The progress bar / plain progress lines, and the JSON-lines epoch log.
#include "runtime/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace stag::rt {

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ProgressOptions progress_options_for(std::FILE* out) {
  ProgressOptions o;
  o.terminal = ::isatty(::fileno(out)) == 1;
  return o;
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  auto t = static_cast<int64_t>(std::llround(s));
  if (t >= 3600) return fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60);
  return fmt::format("{:02}:{:02}", t / 60, t % 60);
}

ProgressBar::ProgressBar(std::FILE* out, std::string label, int64_t total, ProgressOptions o,
                         Clock clock)
    : out_(out),
      label_(std::move(label)),
      total_(std::max<int64_t>(total, 0)),
      o_(o),
      clock_(std::move(clock)),
      start_(clock_()),
      next_percent_(std::max(o.percent_step, 1)) {}

std::string ProgressBar::status() const {
  double elapsed = clock_() - start_;
  double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0;
  double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : -1;
  int pct = total_ > 0 ? static_cast<int>(100 * done_ / total_) : 100;
  return fmt::format("{} {:3}% {}/{} loss {:.4f} {:.0f} ex/s {} {}", label_, pct, done_, total_,
                     loss_, rate, finished_ ? "elapsed" : "ETA",
                     format_duration(finished_ ? elapsed : eta));
}

void ProgressBar::draw(bool final) {
  if (o_.terminal) {
    int w = o_.bar_width;
    int filled = total_ > 0 ? static_cast<int>(w * done_ / total_) : w;
    std::string bar = std::string(static_cast<size_t>(filled), '=') + (filled < w ? ">" : "") +
                      std::string(static_cast<size_t>(std::max(0, w - filled - 1)), ' ');
    std::string line = fmt::format("[{}] {}", bar, status());
    // Blank out what a longer previous line left behind.
    size_t width = line.size();
    if (width < last_width_) line.append(last_width_ - width, ' ');
    last_width_ = width;
    std::fputs(("\r" + line).c_str(), out_);
    if (final) std::fputc('\n', out_);
  } else {
    std::fputs((status() + "\n").c_str(), out_);
  }
  std::fflush(out_);
}

void ProgressBar::update(int64_t done, double loss) {
  if (finished_) return;
  done_ = std::clamp<int64_t>(done, 0, total_);
  loss_ = loss;
  if (o_.terminal) {
    double now = clock_();
    if (now - last_draw_ < o_.min_redraw) return;
    last_draw_ = now;
    draw(false);
    return;
  }
  if (total_ == 0 || done_ == total_) return;  // finish() prints the last line
  int pct = static_cast<int>(100 * done_ / total_);
  if (pct < next_percent_) return;
  while (next_percent_ <= pct) next_percent_ += std::max(o_.percent_step, 1);
  draw(false);
}

void ProgressBar::finish(const std::string& extra) {
  if (finished_) return;
  finished_ = true;
  if (o_.terminal) {
    draw(true);
    if (!extra.empty()) std::fputs((extra + "\n").c_str(), out_);
  } else {
    std::fputs((status() + (extra.empty() ? "" : "  " + extra) + "\n").c_str(), out_);
  }
  std::fflush(out_);
}

std::string to_json_line(const LogRecord& r) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [k, v] : r) {
    if (auto* i = std::get_if<int64_t>(&v))
      j[k] = *i;
    else if (auto* d = std::get_if<double>(&v))
      j[k] = std::isfinite(*d) ? nlohmann::ordered_json(*d) : nullptr;
    else
      j[k] = std::get<std::string>(v);
  }
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

JsonLinesWriter::JsonLinesWriter(const std::filesystem::path& path, bool truncate)
    : name_(path.string()) {
  f_ = std::fopen(name_.c_str(), truncate ? "w" : "a");
  if (!f_) throw Error(fmt::format("{}: cannot open the log: {}", name_, std::strerror(errno)));
}

JsonLinesWriter::~JsonLinesWriter() {
  if (f_) std::fclose(f_);
}

void JsonLinesWriter::write(const LogRecord& r) {
  std::string line = to_json_line(r) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0)
    throw Error(fmt::format("{}: cannot write the log: {}", name_, std::strerror(errno)));
}

}  // namespace stag::rt
