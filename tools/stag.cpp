// The `stag` command: one subcommand for each thing users do with a model.

#include <fmt/format.h>

#include <stdexcept>

#include "compiler/lower/lower.h"
#include "compiler/target/host.h"
#include "ir/diag.h"
#include "runtime/memory.h"
#include "tools/cli.h"

namespace {

using namespace stag::cli;

std::string version_text() {
  auto host = stag::host_info();
  return fmt::format("stag {}\nLLVM {}, host {} ({}{}{})", STAG_VERSION, host.llvm_version, host.triple, host.cpu,
                     host.features.empty() ? "" : ": ", fmt::join(host.features, " "));
}

int run(int argc, char** argv) {
  command_line().assign(argv, argv + argc);
  CLI::App app{"stag: a static-graph deep-learning compiler.\nModels are .stag descriptions or graph IR text (.ir).",
               "stag"};
  app.require_subcommand(1);
  app.set_version_flag("--version", version_text());
  std::vector<Command> commands = {add_ir_command(app),      add_ops_command(app),   add_run_command(app),
                                   add_compile_command(app), add_train_command(app), add_eval_command(app),
                                   add_build_command(app),   add_grad_command(app),  add_step_command(app),
                                   add_predict_command(app), add_bench_command(app),
                                   add_plot_command(app),    add_sample_command(app),
                                   add_export_command(app)};
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
    const CLI::App* failed = &app;
    for (const auto& c : commands)
      if (c.app->parsed()) failed = c.app;
    fmt::print(stderr, "{}", failed->help());
    return kExitUsage;
  }
  try {
    stag::host_isa();  // a bad STAG_ISA is the user's to fix, before anything compiles
  } catch (const std::runtime_error& e) {
    fmt::print(stderr, "stag: error: {}\n", e.what());
    return kExitUsage;
  }
  for (const auto& c : commands)
    if (c.app->parsed()) {
      try {
        return c.run();
      } catch (const Failure& f) {
        if (!f.message.empty()) fmt::print(stderr, "stag: error: {}\n", f.message);
        return f.exit_code;
      } catch (const stag::rt::MemoryError& e) {
        // Raised while a command compiles, before its own handlers are in place.
        fmt::print(stderr, "stag: error: {}\n", e.what());
        return kExitBadInput;
      } catch (const stag::NoLowering& e) {
        stag::Diagnostics diags;
        diags.error(e.loc, e.what(), e.node);
        fmt::print(stderr, "{}", diags.render());
        return kExitBadInput;
      }
    }
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
