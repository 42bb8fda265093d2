#include "tools/cli.h"

#include <fmt/format.h>

#include <cstdio>
#include <fstream>

#include "frontend/load.h"

namespace stag::cli {

void ModelArgs::add_to(CLI::App& app) {
  app.add_option("file", file, "Model (.stag) or graph IR (.ir) file")->required();
  app.add_option("--batch", batch, "Bind the batch dimension of a .stag model")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app.add_flag("--train", train, "Lower a .stag model for a training step (batch norm, dropout active)");
  app.add_option("--model", model, "Which model of a .stag file holding several (default: the first)");
}

std::unique_ptr<Graph> ModelArgs::load() const {
  std::string error;
  auto text = read_source(file, error);
  if (!text) throw Failure{kExitUsage, error};
  Diagnostics diags;
  LoadOptions options;
  if (batch > 0) options.batch = batch;
  options.training = train;
  options.model = model;
  auto graph = load_model(file, *text, options, diags);
  if (!graph) {
    fmt::print(stderr, "{}", diags.render());
    throw Failure{kExitBadInput, {}};
  }
  return graph;
}

void write_output(const std::string& path, const std::string& text) {
  if (path == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    if (std::fflush(stdout) != 0) throw Failure{kExitUsage, "cannot write to standard output"};
    return;
  }
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw Failure{kExitUsage, fmt::format("cannot write '{}'", path)};
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Failure{kExitUsage, fmt::format("cannot write '{}'", path)};
  }
}

}  // namespace stag::cli
