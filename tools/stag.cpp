// The `stag` command: one subcommand for each thing users do with a model.

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "compiler/jit/host.h"
#include "frontend/load.h"
#include "ir/ops.h"
#include "ir/printer.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitBadInput = 1;  // the file was read but is not a valid model
constexpr int kExitUsage = 2;     // bad flags, or a file that cannot be read

std::string version_text() {
  auto host = stag::host_info();
  return fmt::format("stag {}\nLLVM {}, host {} ({}{}{})", STAG_VERSION, host.llvm_version,
                     host.triple, host.cpu, host.features.empty() ? "" : ": ",
                     fmt::join(host.features, " "));
}

// Writes `text` to `path` ("-" is stdout) through a temporary file, so that a failed write
// never leaves half a file where a good one was.
bool write_output(const std::string& path, const std::string& text) {
  if (path == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return std::fflush(stdout) == 0;
  }
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      return false;
    }
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

struct IrArgs {
  std::string file;
  std::string out = "-";
  int64_t batch = 0;
};

int run_ir(const IrArgs& args) {
  std::string error;
  auto text = stag::read_source(args.file, error);
  if (!text) {
    fmt::print(stderr, "stag: error: {}\n", error);
    return kExitUsage;
  }
  stag::Diagnostics diags;
  stag::LoadOptions options;
  if (args.batch > 0) options.batch = args.batch;
  auto graph = stag::load_model(args.file, *text, options, diags);
  if (!graph) {
    fmt::print(stderr, "{}", diags.render());
    return kExitBadInput;
  }
  if (!write_output(args.out, stag::print(*graph))) {
    fmt::print(stderr, "stag: error: cannot write '{}'\n", args.out);
    return kExitUsage;
  }
  return kExitOk;
}

// The op table as users see it: operands, and attributes with their kinds and defaults.
int run_ops() {
  for (const auto& info : stag::all_ops()) {
    std::string operands = info.min_operands == info.max_operands ? std::to_string(info.min_operands)
                           : info.max_operands < 0 ? fmt::format("{}+", info.min_operands)
                                                   : fmt::format("{}-{}", info.min_operands, info.max_operands);
    std::vector<std::string> attrs;
    for (const auto& a : info.attrs) {
      std::string kind(stag::kind_name(a.kind));
      if (!a.choices.empty()) kind = fmt::format("{}", fmt::join(a.choices, "|"));
      attrs.push_back(a.default_value ? fmt::format("{}: {} = {}", a.name, kind, stag::to_string(*a.default_value))
                                      : fmt::format("{}: {} (required)", a.name, kind));
    }
    fmt::print("{:<18} operands {:<4} {}\n", info.name, operands, fmt::join(attrs, ", "));
  }
  return kExitOk;
}

int run(int argc, char** argv) {
  CLI::App app{"stag: a static-graph deep-learning compiler.\n"
               "Models are .stag descriptions or graph IR text (.ir).",
               "stag"};
  app.require_subcommand(1);
  app.set_version_flag("--version", version_text());

  IrArgs ir;
  auto* ir_cmd = app.add_subcommand("ir", "Read a model or IR file, verify it and print its graph IR");
  ir_cmd->add_option("file", ir.file, "Model (.stag) or graph IR (.ir) file")->required();
  ir_cmd->add_option("-o,--output", ir.out, "Write the IR here instead of stdout");
  ir_cmd->add_option("--batch", ir.batch, "Bind the batch dimension of a .stag model")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));

  auto* ops_cmd = app.add_subcommand("ops", "List the op table: every op, its operands and attributes");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "stag: error: {}\n\n", e.what());
    CLI::App* failed = ir_cmd->parsed() ? ir_cmd : &app;
    fmt::print(stderr, "{}", failed->help());
    return kExitUsage;
  }
  if (ir_cmd->parsed()) return run_ir(ir);
  if (ops_cmd->parsed()) return run_ops();
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  // User errors are diagnostics; anything thrown is a bug in stag, but it still must not abort.
  try {
    return run(argc, argv);
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "stag: error: out of memory\n");
  } catch (const std::exception& e) {
    fmt::print(stderr, "stag: internal error: {}\n", e.what());
  }
  return 70;
}
