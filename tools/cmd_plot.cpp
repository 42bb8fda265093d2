// `stag plot RUN.jsonl -o curves.svg`: a training log's curves as a picture. PNG goes through
// rsvg-convert (librsvg) rather than a rasterizer of our own.

#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "runtime/error.h"
#include "tools/cli.h"
#include "tools/plot.h"

extern char** environ;

namespace stag::cli {

namespace {

struct PlotArgs {
  std::string log;
  std::string out;
  std::string title;
  double smoothing = 0.9;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "300 steps, 2 epochs; test: loss 0.3912, accuracy 0.8612" — what the run amounted to.
std::string summary(const plot::RunLog& log) {
  size_t steps = 0, epochs = 0;
  for (const auto& s : log.step) steps = std::max(steps, s.points.size());
  for (const auto& s : log.epoch) epochs = std::max(epochs, s.points.size());
  std::string out = fmt::format("{} step{}, {} epoch{}", steps, steps == 1 ? "" : "s", epochs, epochs == 1 ? "" : "s");
  std::vector<std::string> test;
  for (const auto& [key, value] : log.test) test.push_back(fmt::format("{} {:.4g}", key, value));
  if (!test.empty()) out += fmt::format("; test: {}", fmt::join(test, ", "));
  return out;
}

// Runs rsvg-convert without a shell; posix_spawnp reports a missing program as ENOENT.
void run_rsvg(const std::string& svg, const std::string& png) {
  std::vector<std::string> argv = {"rsvg-convert", "--background-color=white", "-o", png, svg};
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid;
  int err = posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ);
  if (err == ENOENT)
    throw Failure{kExitUsage, "writing PNG needs rsvg-convert (Debian package librsvg2-bin), which is not on PATH; "
                              "install it or write SVG (-o FILE.svg)"};
  if (err != 0) throw Failure{kExitUsage, fmt::format("cannot run rsvg-convert: {}", std::strerror(err))};
  int status = 0;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Failure{kExitUsage, fmt::format("rsvg-convert could not write '{}'", png)};
}

// The SVG through rsvg-convert into temporary files beside the target, renamed when complete.
void write_png(const std::string& path, const std::string& svg) {
  std::string svg_tmp = path + ".svg.tmp", png_tmp = path + ".tmp.png";
  try {
    write_output(svg_tmp, svg);
    run_rsvg(svg_tmp, png_tmp);
  } catch (...) {
    std::filesystem::remove(svg_tmp), std::filesystem::remove(png_tmp);
    throw;
  }
  std::filesystem::remove(svg_tmp);
  if (std::rename(png_tmp.c_str(), path.c_str()) != 0) {
    std::filesystem::remove(png_tmp);
    throw Failure{kExitUsage, fmt::format("cannot write '{}'", path)};
  }
}

int run_plot(const PlotArgs& args) {
  if (!std::ifstream(args.log)) throw Failure{kExitUsage, fmt::format("cannot open '{}'", args.log)};
  plot::RunLog log;
  try {
    log = plot::read_run_log(args.log);
  } catch (const rt::Error& e) {
    throw Failure{kExitBadInput, e.what()};
  }
  plot::PlotOptions options{args.title.empty() ? args.log : args.title, summary(log), args.smoothing};
  std::string svg;
  try {
    svg = plot::render_svg(plot::make_panels(log), options);
  } catch (const rt::Error& e) {
    throw Failure{kExitBadInput, fmt::format("{}: {}", args.log, e.what())};
  }
  if (ends_with(args.out, ".png")) write_png(args.out, svg);
  else write_output(args.out, svg);
  return kExitOk;
}

}  // namespace

Command add_plot_command(CLI::App& app) {
  auto args = std::make_shared<PlotArgs>();
  auto* cmd = app.add_subcommand("plot", "Draw the curves of a training log (stag train --log) as SVG or PNG");
  cmd->add_option("log", args->log, "The JSON-lines log")->required();
  cmd->add_option("-o,--output", args->out, "The picture: FILE.svg, FILE.png (needs rsvg-convert) or - (SVG on stdout)")
      ->required()
      ->check([](const std::string& s) {
        return s == "-" || ends_with(s, ".svg") || ends_with(s, ".png") ? std::string() : "the output must end in .svg or .png";
      });
  cmd->add_option("--title", args->title, "The heading (default: the log's path)");
  cmd->add_option("--smoothing", args->smoothing, "Weight of the moving average over step values, as TensorBoard's (0: none)")
      ->check(CLI::Range(0.0, 0.999));
  return {cmd, [args] { return run_plot(*args); }};
}

}  // namespace stag::cli
