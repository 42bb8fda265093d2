#pragma once
/// A GAN as three graphs over the parameters of its two models: sampling (noise to images),
/// the discriminator's train step and the generator's train step. Each step is a whole compiled
/// function (forward, backward, the optimizer's update), and both read the same parameters.

#include <memory>
#include <optional>
#include <string>

#include "compiler/train/optimizer.h"
#include "ir/diag.h"
#include "ir/graph.h"

namespace stag {

struct GanOptions {
  std::string name = "gan";
  /// non_saturating, minimax, least_squares or hinge (see frontend/gan.h).
  std::string loss = "non_saturating";
  /// Real images arrive in [0, 1] and are mapped to [real_low, real_high], the generator's range.
  double real_low = -1, real_high = 1;
  OptimizerConfig generator_optimizer, discriminator_optimizer;
  /// Data parallelism: each step as its gradients and its update (build_split_train_step), so
  /// that the processes average the gradients between the two.
  bool split = false;
};

/// The functions of a GAN program. Parameters are the models' with the prefixes `generator.` and
/// `discriminator.`; the optimizers' state is named after them, their step counters
/// `optim.generator.step` and `optim.discriminator.step`.
///  - sample (inputs z): the generator with batch statistics, no update of its running ones;
///    output `image`.
///  - d_step (inputs x: real images in [0, 1], key: i64[], lr): z ~ N(0, 1) drawn from `key`;
///    D on x (label 1) and on G(z) (label 0, no gradient into G); updates D and D's running
///    statistics. Outputs `loss`, `d_real_accuracy`, `d_fake_accuracy`, `d_real`, `d_fake`
///    (the mean probabilities D gives real and generated images).
///  - g_step (inputs key, lr): D(G(z)) with label 1, the gradient through D (not updated) into G;
///    updates G and both models' running statistics. Output `loss`.
/// The same key draws the same z in both steps.
/// Split (GanOptions::split): d_step and g_step are the steps' gradients, with the input dp.rank
/// where the noise or dropout draws (each process draws its rows of the global batch's noise);
/// d_update and g_update apply a model's averaged gradients (inputs `grad.P`, `loss`, `lr`).
struct GanGraphs {
  std::unique_ptr<Graph> sample, d_step, g_step;
  std::unique_ptr<Graph> pair_step;  ///< build_pair_step's, when built
  std::unique_ptr<Graph> d_update, g_update;  ///< split only
};

/// Builds the three graphs from the training-mode graphs of the generator (one input, the noise;
/// its first output the images) and the discriminator (one input, the images; its first output
/// one logit an image). A pair that does not fit is reported to `diags` at the GAN's `loc`.
/// The discriminator's step then the generator's, as one function of d_step's inputs (x, key,
/// lr) and the generator's rate `lr_g`, for one D step per G step. Same results bit for bit as
/// running them one after the other with the same key: the draws of z are one draw, so G(z) is
/// computed once (CSE) and feeds D's fake pass and the generator's step. Outputs d_step's, then
/// g_step's with the suffix `_g`. The generator's updates are kept only when D's were.
std::unique_ptr<Graph> build_pair_step(const Graph& d_step, const Graph& g_step);

std::optional<GanGraphs> build_gan(const Graph& generator, const Graph& discriminator, const GanOptions& options,
                                   const Loc& loc, Diagnostics& diags);

}  // namespace stag
