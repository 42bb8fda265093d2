// `stag bench`: the time of one compiled step, for the benchmark against PyTorch
// (tools/bench/run.py). Only the compiled function is timed, on data made once; the compile
// time covers everything from reading the model to runnable machine code.

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <tuple>
#include <cmath>

#include "compiler/jit/jit_model.h"
#include "frontend/load.h"
#include "runtime/trainer.h"
#include "runtime/error.h"
#include "runtime/thread_pool.h"
#include "runtime/data/rng.h"
#include "runtime/gan_trainer.h"
#include "tools/cli.h"
#include "tools/gan_program.h"
#include "tools/peak.h"

namespace stag::cli {

namespace {

struct BenchArgs {
  TrainProgramArgs program;
  int threads = 0;
  int warmup = 3;
  int steps = 20;
  int64_t matmul = 0;
  int64_t seed = 0;
  bool json = false;
  bool peak = false;
  bool separate = false;  ///< a GAN's d_step and g_step, not its pair_step
};

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// The process's CPU time (all threads, user and system) in seconds.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](timeval t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

// Seconds from `start` to compiled code: creating the runtime model (allocating its parameters and
// workspace, which grow with the batch and the sequence, not with the program) is not compiling
// and is reported on its own, as create_s.
double compile_seconds(Clock::time_point start, const CompiledModel& c) { return (ms_since(start) - c.model_ms) / 1e3; }

// ru_maxrss is in kilobytes on Linux.
double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

// An N x N x N f32 matmul as graph IR: the same path a model's matmul takes.
std::unique_ptr<Graph> matmul_graph(int64_t n) {
  std::string text = fmt::format(
      "graph sgemm_{0} {{\n  %a: f32[{0},{0}] = input()\n  %b: f32[{0},{0}] = input()\n"
      "  %c: f32[{0},{0}] = matmul(%a, %b)\n  output c = %c\n}}\n",
      n);
  Diagnostics diags;
  auto g = load_model(fmt::format("sgemm_{}.ir", n), text, {}, diags);
  if (!g) throw Failure{kExitBadInput, diags.render()};
  return g;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// One GAN iteration (D step + G step) on `real`: the pair step, or the two steps one after the
// other. Returns the losses of D and G.
std::pair<double, double> gan_iteration(rt::Model& model, const rt::Tensor& real, const rt::Tensor& key,
                                        const rt::Tensor& lr_d, const rt::Tensor& lr_g) {
  const auto& fns = model.manifest().functions;
  bool pair = std::any_of(fns.begin(), fns.end(), [](const auto& f) { return f.name == "pair_step"; });
  if (pair) {
    auto out = model.run("pair_step", {&real, &key, &lr_d, &lr_g});
    const auto& spec = model.manifest().function("pair_step");
    double loss_g = NAN;
    for (size_t i = 0; i < spec.outputs.size(); ++i)
      if (spec.outputs[i].name == "loss_g") loss_g = out[i].values<float>()[0];
    return {out[0].values<float>()[0], loss_g};
  }
  double loss_d = model.run("d_step", {&real, &key, &lr_d})[0].values<float>()[0];
  return {loss_d, model.run("g_step", {&key, &lr_g})[0].values<float>()[0]};
}

// A GAN's training iteration: the discriminator's step on a random real batch in [0, 1], then the
// generator's, timed together (one pair step when D steps once per G step, unless --separate-steps).
int bench_gan(const BenchArgs& args, const fe::GanSpec& spec) {
  if (args.threads > 0) stag_set_num_threads(args.threads);
  auto t0 = Clock::now();
  CompiledModel c = compile_gan(args.program, spec, false, args.separate);
  double compile_s = compile_seconds(t0, c);
  rt::Model& model = *c.model;
  std::vector<double> times;
  double loss_d = NAN, loss_g = NAN;
  bool pair = spec.d_steps == 1 && !args.separate;
  const auto& d_spec = model.manifest().function(pair ? "pair_step" : "d_step");
  rt::GanSettings gan = rt::gan_settings_from_manifest(model.manifest());
  int64_t batch = d_spec.inputs.at(0).shape.at(0);
  try {
    init_params(model, args.seed);
    rt::Tensor lr_d = rt::Tensor::from<float>({}, {static_cast<float>(gan.lr_discriminator)});
    rt::Tensor lr_g = rt::Tensor::from<float>({}, {static_cast<float>(gan.lr_generator)});
    rt::Tensor key = rt::Tensor::from<int64_t>({}, {0});
    std::vector<rt::Tensor> reals;
    for (int k = 0; k < 16; ++k) {
      reals.emplace_back(rt::DType::f32, d_spec.inputs.at(0).shape);
      rt::Rng rng(static_cast<uint64_t>(args.seed * 1000 + k));
      for (float& v : reals.back().values<float>()) v = static_cast<float>(rng.uniform01());
    }
    for (int s = 0; s < args.warmup + args.steps; ++s) {
      key.values<int64_t>()[0] = s;
      auto t1 = Clock::now();
      std::tie(loss_d, loss_g) = gan_iteration(model, reals[static_cast<size_t>(s % 16)], key, lr_d, lr_g);
      if (s >= args.warmup) times.push_back(ms_since(t1));
    }
  } catch (const rt::Error& e) {
    throw Failure{kExitBadInput, e.what()};
  }
  double med = median(times), best = *std::min_element(times.begin(), times.end());
  int threads = stag_get_num_threads();
  size_t kernels = gan_step_kernels(c.program);
  const char* function = pair ? "pair_step" : "d_step+g_step";
  if (args.json)
    fmt::print("{{\"model\": \"{}\", \"function\": \"{}\", \"batch\": {}, \"threads\": {}, \"warmup\": {}, "
               "\"steps\": {}, \"compile_s\": {:.4f}, \"create_s\": {:.4f}, \"median_ms\": {:.4f}, \"min_ms\": {:.4f}, \"peak_rss_mb\": {:.1f}, "
               "\"kernels\": {}, \"workspace_bytes\": {}, \"loss_d\": {:.6g}, \"loss_g\": {:.6g}}}\n",
               spec.name, function, batch, threads, args.warmup, args.steps, compile_s, c.model_ms / 1e3, med, best, peak_rss_mb(), kernels,
               c.program.workspace_bytes, loss_d, loss_g);
  else
    fmt::print("{} {} (batch {}) on {} thread{}: median {:.3f} ms, min {:.3f} ms over {} steps after {} warm-up; "
               "last losses D {:.4g} G {:.4g}; compile {:.2f} s ({} kernels), model created in {:.2f} s; peak RSS {:.1f} MB\n",
               spec.name, function, batch, threads, threads == 1 ? "" : "s", med, best, args.steps, args.warmup, loss_d, loss_g,
               compile_s, kernels, c.model_ms / 1e3, peak_rss_mb());
  return kExitOk;
}

int print_peaks(const BenchArgs& args) {
  int threads = args.threads > 0 ? args.threads : static_cast<int>(std::thread::hardware_concurrency());
  for (const Peak& p : measure_peaks(threads))
    fmt::print("peak {} on {} thread{}: {:.1f} GFLOP/s\n", p.unit, p.threads, p.threads == 1 ? "" : "s", p.gflops);
  return kExitOk;
}

// Where the compile time went, in seconds; the LLVM phases are those of the slowest part.
std::string compile_phases_json(double load_ms, const CompiledModel& c) {
  const CompileTimes& t = c.code->times();
  std::vector<std::string> parts;
  for (double ms : t.part_ms) parts.push_back(fmt::format("{:.4f}", ms / 1e3));
  return fmt::format("\"compile_phases\": {{\"load_s\": {:.4f}, \"passes_s\": {:.4f}, \"codegen_s\": {:.4f}, \"optimize_s\": {:.4f}, "
                     "\"machine_s\": {:.4f}, \"parts_s\": [{}]}}",
                     load_ms / 1e3, c.passes_ms / 1e3, t.codegen_ms / 1e3, t.optimize_ms / 1e3, t.machine_ms / 1e3,
                     fmt::join(parts, ", "));
}


int run_bench(const BenchArgs& args) {
  const ModelArgs& margs = args.program.model;
  if (args.peak) return print_peaks(args);
  if (args.matmul == 0 && !margs.file.empty())
    if (auto gan = find_gan(margs); gan && gan->kind == fe::GanLookup::Pair) return bench_gan(args, gan->spec);
  if (args.matmul > 0 && !margs.file.empty()) throw Failure{kExitUsage, "give a model file or --matmul N, not both"};
  if (args.matmul == 0 && margs.file.empty()) throw Failure{kExitUsage, "give a model file (or --matmul N)"};
  if (args.matmul > 0 && margs.train) throw Failure{kExitUsage, "--matmul has no train step"};
  if (args.threads > 0) stag_set_num_threads(args.threads);

  const std::string function = margs.train ? "train_step" : "forward";
  auto t0 = Clock::now();
  double cpu0 = cpu_seconds();
  std::unique_ptr<Graph> graph;
  CompiledModel c;
  double load_ms = 0;  // reading, checking and differentiating the model
  if (args.matmul > 0) {
    graph = matmul_graph(args.matmul);
    c = compile_jit(*graph, {.passes = margs.passes});
  } else if (margs.train) {
    graph = std::move(args.program.load().second);
    load_ms = ms_since(t0);
    c = compile_jit({{"train_step", graph.get()}}, {.passes = margs.passes});
  } else {
    graph = margs.load();
    load_ms = ms_since(t0);
    c = compile_jit(*graph, {.passes = margs.passes});
  }
  double compile_s = compile_seconds(t0, c), compile_cpu_s = cpu_seconds() - cpu0 - c.model_cpu_ms / 1e3;

  rt::Model& model = *c.model;
  std::vector<double> times;
  double loss = NAN;
  int loss_index = -1;
  try {
    init_params(model, args.seed);
    const auto& spec = model.manifest().function(function);
    double lr = rt::settings_from_manifest(model.manifest()).lr;
    std::vector<rt::Tensor> inputs;
    int step_index = -1;
    for (size_t i = 0; i < spec.inputs.size(); ++i) {
      const auto& in = spec.inputs[i];
      if (in.name == "lr") {
        inputs.push_back(rt::Tensor::from<float>({}, {static_cast<float>(lr)}));
      } else if (in.name == "step") {
        // Dropout is keyed by the step: each timed step draws a fresh mask, as in training.
        step_index = static_cast<int>(i);
        inputs.push_back(rt::Tensor::from<int64_t>({}, {0}));
      } else {
        inputs.push_back(random_input(*graph, graph->find(in.name), in, args.seed, static_cast<int64_t>(i) + 1));
      }
    }
    // Steps cycle through kBatches random batches, as PyTorch's side does: one batch repeated
    // is memorized, and the vanishing gradients turn subnormal, which is not what training
    // costs.
    const int kBatches = margs.train ? 16 : 1;
    std::vector<std::vector<rt::Tensor>> batches(static_cast<size_t>(kBatches));
    for (int k = 0; k < kBatches; ++k)
      for (size_t i = 0; i < spec.inputs.size(); ++i) {
        const auto& in = spec.inputs[i];
        if (in.name == "lr" || in.name == "step" || !margs.train) batches[static_cast<size_t>(k)].push_back(inputs[i].clone());
        else batches[static_cast<size_t>(k)].push_back(random_input(*graph, graph->find(in.name), in, args.seed + 1000 * (k + 1), static_cast<int64_t>(i) + 1));
      }
    for (size_t i = 0; i < spec.outputs.size(); ++i)
      if (spec.outputs[i].name == "loss") loss_index = static_cast<int>(i);
    std::vector<const rt::Tensor*> ptrs(inputs.size());
    for (int s = 0; s < args.warmup + args.steps; ++s) {
      auto& batch = batches[static_cast<size_t>(s % kBatches)];
      if (step_index >= 0) batch[static_cast<size_t>(step_index)].values<int64_t>()[0] = s;
      for (size_t i = 0; i < batch.size(); ++i) ptrs[i] = &batch[i];
      auto t1 = Clock::now();
      auto out = model.run(function, ptrs);
      double ms = ms_since(t1);
      if (s >= args.warmup) times.push_back(ms);
      if (loss_index >= 0) loss = out[loss_index].values<float>()[0];
    }
  } catch (const rt::Error& e) {
    throw Failure{kExitBadInput, e.what()};
  }

  double med = median(times), best = *std::min_element(times.begin(), times.end());
  int threads = stag_get_num_threads();
  // The model's own batch when --batch is not given: the leading dimension of its first input.
  const auto& first_inputs = model.manifest().function(function).inputs;
  int64_t batch = margs.batch;
  if (batch == 0 && !first_inputs.empty() && !first_inputs[0].shape.empty()) batch = first_inputs[0].shape[0];
  size_t kernels = c.program.functions.back().kernels.size();
  std::string extra;
  if (args.matmul > 0) {
    double gflops = 2.0 * std::pow(static_cast<double>(args.matmul), 3) / (med * 1e6);
    extra = args.json ? fmt::format(", \"gflops\": {:.3f}", gflops) : fmt::format("; {:.2f} GFLOP/s", gflops);
  } else if (loss_index >= 0) {
    // JSON has no NaN: a diverged loss is null, which the driver shows instead of a crash.
    extra = args.json ? (std::isfinite(loss) ? fmt::format(", \"loss\": {:.6g}", loss) : ", \"loss\": null")
                      : fmt::format("; last loss {:.6g}", loss);
  }
  if (args.json) {
    fmt::print("{{\"model\": \"{}\", \"function\": \"{}\", \"batch\": {}, \"threads\": {}, \"warmup\": {}, \"steps\": {}, "
               "\"compile_s\": {:.4f}, \"compile_cpu_s\": {:.4f}, \"create_s\": {:.4f}, \"median_ms\": {:.4f}, \"min_ms\": {:.4f}, "
               "\"peak_rss_mb\": {:.1f}, \"kernels\": {}, \"workspace_bytes\": {}, \"compile_parts\": {}, \"cached_parts\": {}, {}{}}}\n",
               graph->name, function, batch, threads, args.warmup, args.steps, compile_s, compile_cpu_s, c.model_ms / 1e3, med, best, peak_rss_mb(),
               kernels, c.program.workspace_bytes, c.code->times().parts, c.code->times().cached_parts, compile_phases_json(load_ms, c), extra);
  } else {
    fmt::print("{} {} (batch {}) on {} thread{}: median {:.3f} ms, min {:.3f} ms over {} steps after {} warm-up{}; "
               "compile {:.2f} s ({} kernels{}), model created in {:.2f} s; peak RSS {:.1f} MB\n",
               graph->name, function, batch, threads, threads == 1 ? "" : "s", med, best, args.steps, args.warmup, extra,
               compile_s, kernels, cache_note(c.code->times()), c.model_ms / 1e3, peak_rss_mb());
  }
  return kExitOk;
}

}  // namespace

Command add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "Time a model's compiled forward or train step (or an N x N matmul)");
  args->program.add_to(*cmd);
  cmd->get_option("file")->required(false);
  cmd->add_option("--threads", args->threads, "Threads to run on (default: all)")->check(CLI::Range(1, 1024));
  cmd->add_option("--warmup", args->warmup, "Untimed steps first")->check(CLI::Range(0, 1000000));
  cmd->add_option("--steps", args->steps, "Timed steps")->check(CLI::Range(1, 1000000));
  cmd->add_option("--matmul", args->matmul, "Time an N x N x N f32 matmul instead of a model")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 16));
  cmd->add_option("--seed", args->seed, "Seed of the initialisation and the random inputs");
  cmd->add_flag("--json", args->json, "Print one JSON object");
  cmd->add_flag("--separate-steps", args->separate, "A GAN: time its discriminator and generator steps compiled apart, not as one pair step");
  cmd->add_flag("--peak", args->peak, "Measure the host's f32 FMA (and bf16 dot-product) peaks on 1 and --threads threads");
  return {cmd, [args] { return run_bench(*args); }};
}

}  // namespace stag::cli
