#pragma once
/// The training loop of a GAN program (compiler/train/gan.h): the discriminator's and the
/// generator's compiled steps alternate over the real images; both models, both optimizers and
/// the data position are one checkpoint, so a resumed run repeats the uninterrupted one.

#include <cstdint>
#include <functional>
#include <string>

#include "runtime/model.h"
#include "runtime/progress.h"
#include "runtime/trainer.h"

namespace stag::rt {

/// What a GAN run reads beyond TrainSettings; defaults from the manifest's gan.* attributes.
struct GanSettings {
  int64_t d_steps = 1;     ///< discriminator steps (each on its own real batch) per generator step
  double lr_generator = 2e-4, lr_discriminator = 2e-4;
  int64_t grid_count = 64;  ///< images in each epoch's grid of fixed noise (run folder, samples/)
  double image_low = -1, image_high = 1;  ///< the generator's range, drawn black to white
};

/// Called after every epoch (1-based); may add fields to the epoch's log record and summary line
/// (quality scores).
using GanEpochHook = std::function<void(int64_t epoch, LogRecord& record, std::string& summary)>;

GanSettings gan_settings_from_manifest(const Manifest& m);

/// True for a GAN program (functions d_step and g_step, or pair_step, or split for data
/// parallelism: d_gradients, d_update, g_gradients and g_update).
bool is_gan(const Manifest& m);

/// The noise a GAN program's `forward` takes, N(0, 1) from the seed alone: `rows` rows of the
/// model's noise shape (a whole number of batches, the last padded).
Tensor gan_noise(const Manifest& m, int64_t rows, uint64_t seed);

/// Runs the generator (`forward`) on `z` [N, ...] batch by batch; returns the images [N, C, H, W].
Tensor generate_images(Model& model, const Tensor& z);

/// Trains; prints progress and each epoch's means (losses, D's accuracy on real and generated
/// images, examples/s). Keeps a run folder as train() does (run_dir.h), with a grid of the fixed
/// noise's images after each epoch; writes a checkpoint however the run ends, and on SIGINT or
/// SIGTERM throws StopRequested after it. Throws Error on bad data or settings.
///
/// With `collective` (data parallelism), the program is split and compiled for this process's
/// share of the batch: every process draws the same global batches, runs its rows (and its rows of
/// the noise) through each step's gradients, averages them, the loss and D's accuracies with the
/// others and applies the step's update, so all keep the same parameters. Rank 0 alone prints,
/// logs, checkpoints and draws the grids; all stop after the same step.
void train_gan(Model& model, const TrainSettings& s, const GanSettings& g, const GanEpochHook& on_epoch = {},
               const Collective* collective = nullptr);

}  // namespace stag::rt
