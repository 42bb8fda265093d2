// The main of a standalone trainer (`stag build`): the compiled model's object provides the
// manifest and the entry points under fixed names; this file and the runtime do the rest,
// with the same flags as `stag train`. No LLVM here.

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <span>
#include <string>

#include "runtime/dist/dist.h"
#include "runtime/error.h"
#include "runtime/gan_trainer.h"
#include "runtime/run_dir.h"
#include "runtime/safetensors.h"
#include "runtime/stop_signal.h"
#include "runtime/trainer.h"

extern "C" {
extern const char stag_trainer_manifest[];
extern const char* const stag_trainer_function_names[];
extern const stag::rt::Entry stag_trainer_function_entries[];
extern const int64_t stag_trainer_function_count;
extern const unsigned char stag_trainer_initial_weights[];
extern const int64_t stag_trainer_initial_weights_size;
}

namespace {

using namespace stag::rt;

// Under mpirun: one process of a data-parallel run, if this trainer was built for as many
// processes (`stag build --processes N`: its gradients and update take B/N examples).
int train_in_job(Model& model, TrainSettings& settings, const CLI::App& app) {
  const auto& attrs = model.manifest().attrs;
  int built = attrs.contains("dp.processes") ? std::stoi(attrs.at("dp.processes")) : 1;  // JSON text of an integer
  int ranks = stag::dist::launched_ranks();
  if (built != ranks)
    throw Error(fmt::format("this trainer was built for {} process{}, and mpirun started {}: build it with `stag build "
                            "--processes {}`", built, built == 1 ? "" : "es", ranks, ranks));
  if (app.get_option("--threads")->count() == 0) settings.threads = stag::dist::threads_per_process();
  return stag::dist::run_job(settings.dist_timeout, 1, [&](const Collective& dp) {
    try {
      if (is_gan(model.manifest())) train_gan(model, settings, gan_settings_from_manifest(model.manifest()), {}, &dp);
      else train(model, settings, nullptr, &dp);
    } catch (const StopRequested& stop) {
      fmt::print(stderr, "{}\n", stop.what());
      return stop.exit_code;
    }
    return 0;
  });
}

// An imported model's trainer starts from the initializers built into it, then --init-from.
void start_from_built_in_weights(TrainSettings& s) {
  if (stag_trainer_initial_weights_size == 0) return;
  s.initialize = [from = s.init_from](Model& m) {
    std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(stag_trainer_initial_weights),
                                     static_cast<size_t>(stag_trainer_initial_weights_size));
    init_from(m, decode_safetensors(bytes, "the built-in initializers").tensors, "the built-in initializers");
    if (!from.empty()) init_from(m, read_safetensors(from).tensors, from);
  };
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Manifest manifest = Manifest::parse(stag_trainer_manifest);
    TrainSettings settings = settings_from_manifest(manifest);
    CLI::App app{fmt::format("Trains {}, compiled ahead of time by stag (defaults: the model's train section).", manifest.model)};
    add_train_flags(app, settings);
    CLI11_PARSE(app, argc, argv);
    settings.command.assign(argv, argv + argc);
    settings.model_hash = "sha256:" + sha256_hex(stag_trainer_manifest);
    settings.model_hash_of = "manifest";
    start_from_built_in_weights(settings);
    Model model(std::move(manifest), [](const std::string& name) -> Entry {
      for (int64_t i = 0; i < stag_trainer_function_count; ++i)
        if (name == stag_trainer_function_names[i]) return stag_trainer_function_entries[i];
      return nullptr;
    });
    if (stag::dist::launched_ranks() > 1) return train_in_job(model, settings, app);
    if (model.manifest().attrs.contains("dp.processes"))
      throw Error("this trainer was built for several processes (stag build --processes): start it with mpirun");
    if (is_gan(model.manifest())) train_gan(model, settings, gan_settings_from_manifest(model.manifest()));
    else train(model, settings);
  } catch (const StopRequested& stop) {
    fmt::print(stderr, "{}\n", stop.what());
    return stop.exit_code;
  } catch (const Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "internal error: {}\n", e.what());
    return 70;
  }
  return 0;
}
