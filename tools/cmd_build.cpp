// `stag build`: a standalone trainer. The model's inference pass and train step are compiled
// ahead of time and linked with the runtime's trainer main: the program trains with the same
// flags as `stag train` and needs no LLVM. With --processes N it is the trainer of one of N
// processes that mpirun starts (data parallelism, runtime/dist), and links MPI.

#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "compiler/codegen/manifest.h"
#include "compiler/jit/jit.h"
#include "compiler/lower/lower.h"
#include "tools/cli.h"
#include "tools/gan_program.h"

namespace stag::cli {

namespace {

struct BuildArgs {
  TrainProgramArgs program;
  std::string out;
  int processes = 1;
};

// Runs a program with arguments (no shell), returning its exit status.
int run_program(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A data-parallel trainer's functions: inference, gradients and update at B/N examples (a GAN's
// sampling, and its two steps' gradients and updates).
kir::Program parallel_program(const TrainProgramArgs& args, int processes, std::string& name) {
  if (!STAG_HAVE_MPI) throw Failure{kExitUsage, "this stag was built without MPI, so --processes is unavailable"};
  if (auto gan = find_gan(args.model)) {
    if (gan->kind == fe::GanLookup::Member) refuse_member(args.model, gan->spec);
    GanGraphs g = gan_split_graphs(args, gan->spec, processes);
    name = gan->spec.name;
    return compile_program(gan_split_functions(g), args.model.passes, std::cerr);
  }
  SplitProgram split = args.load_split(processes);
  name = split.eval->name;
  return compile_program({{"forward", split.eval.get()}, {"gradients", split.gradients.get()}, {"update", split.update.get()}},
                         args.model.passes, std::cerr);
}

// The functions a trainer runs: a model's inference pass and train step, or a GAN's three.
kir::Program trainer_program(const TrainProgramArgs& args, int processes, std::string& name) {
  if (processes > 1) return parallel_program(args, processes, name);
  if (auto gan = find_gan(args.model)) {
    if (gan->kind == fe::GanLookup::Member) refuse_member(args.model, gan->spec);
    GanGraphs g = gan_graphs(args, gan->spec);
    name = gan->spec.name;
    return compile_program(gan_functions(g, gan->spec, false), args.model.passes, std::cerr);
  }
  if (args.model.file.ends_with(".onnx") && args.model.loss.empty())
    throw Failure{kExitUsage, fmt::format("{} has no loss: give --loss KIND:OUTPUT:LABEL", args.model.file)};
  auto [eval, step] = args.load();
  name = eval->name;
  return compile_program({{"forward", eval.get()}, {"train_step", step.get()}}, args.model.passes, std::cerr);
}

// A file of the runtime a trainer links: installed beside this stag (PREFIX/lib/stag, by
// `cmake --install`) when it is an installed one, else where stag's build made it.
std::string runtime_file(const std::string& built) {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  auto installed = exe.parent_path().parent_path() / "lib" / "stag" / std::filesystem::path(built).filename();
  if (!ec && std::filesystem::exists(installed)) return installed.string();
  if (std::filesystem::exists(built)) return built;
  throw Failure{kExitUsage, fmt::format("stag build links trainers with {}, which is neither installed ({}) nor in stag's "
                                        "build tree ({})", std::filesystem::path(built).filename().string(),
                                        installed.string(), built)};
}

// The link command: the runtime as this stag was built with it (same compiler, same libraries),
// with MPI for a data-parallel trainer only, so that the others run without it.
std::vector<std::string> link_command(const BuildArgs& args, const std::string& object) {
  bool mpi = args.processes > 1;
  std::vector<std::string> link = {STAG_CXX, "-o", args.out, object, runtime_file(STAG_TRAINER_MAIN),
                                   runtime_file(mpi ? STAG_DIST_LIB : STAG_DIST_NONE_LIB), runtime_file(STAG_RUNTIME_LIB),
                                   STAG_FMT_LIB};
  std::istringstream mpi_libs(mpi ? STAG_MPI_LINK : "");  // comma-separated
  for (std::string lib; std::getline(mpi_libs, lib, ',');) link.push_back(lib);
  for (const char* lib : {"-lz", "-lpng", "-ldl", "-lmvec", "-lm", "-pthread"}) link.push_back(lib);
  if (*STAG_SANITIZE_LINK) link.push_back(STAG_SANITIZE_LINK);  // a sanitized stag's runtime needs ASan's
  return link;
}

int run_build(const BuildArgs& args) {
  std::string name;
  kir::Program program = trainer_program(args.program, args.processes, name);
  std::string object = args.out + ".o";
  CompileTimes t;
  try {
    // An ONNX model's trainer starts from its initializers, built into it.
    std::string weights = args.program.model.file.ends_with(".onnx") ? initializers_as_safetensors(args.program.model.file) : "";
    t = emit_object(program, manifest_json(program), object, true, weights);
  } catch (const std::runtime_error& e) {
    throw Failure{kExitUsage, e.what()};
  }
  std::vector<std::string> link = link_command(args, object);
  int rc = run_program(link);
  std::filesystem::remove(object);
  if (rc != 0)
    throw Failure{kExitUsage, fmt::format("linking {} failed ({}): {}", args.out, rc, fmt::join(link, " "))};
  std::string how = args.processes > 1 ? fmt::format(" under `mpirun -np {}`", args.processes) : "";
  fmt::print("wrote {}: {} trains{} with the flags of `stag train` (compiled in {:.0f} ms, no LLVM needed to run it)\n",
             args.out, name, how, t.total_ms());
  return kExitOk;
}

}  // namespace

Command add_build_command(CLI::App& app) {
  auto args = std::make_shared<BuildArgs>();
  auto* cmd = app.add_subcommand("build", "Build a standalone trainer executable (AOT; no LLVM at run time)");
  args->program.add_to(*cmd);
  args->program.add_bucket_option(*cmd);
  cmd->add_option("-o,--output", args->out, "The executable to write")->required();
  cmd->add_option("--processes", args->processes,
                  "Data parallelism: a trainer for `mpirun -np N`, each process computing 1/N of the batch (--batch: the global one)")
      ->check(CLI::Range(1, 65536));
  return {cmd, [args] { return run_build(*args); }};
}

}  // namespace stag::cli
