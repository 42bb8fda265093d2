#pragma once
/// A model's training settings as the frontend writes them: flat `train.*` graph attributes (so
/// that IR text carries them), read here into one typed struct for the compiler and the
/// commands. The runtime, which has no IR, reads the same attributes from the manifest
/// (runtime/trainer.h's settings_from_manifest).

#include <cstdint>
#include <optional>
#include <string>

#include "ir/graph.h"

namespace stag {

/// The optimizer of a train step and its torch.optim hyper-parameters (compiler/train/optimizer.h
/// appends its update to a graph).
struct OptimizerConfig {
  std::string kind = "adam";  ///< sgd, adam, adamw, adamax, adagrad, rmsprop
  double weight_decay = 0;    ///< L2 added to the gradient; decoupled for adamw
  double momentum = 0, dampening = 0;  ///< sgd, rmsprop (momentum)
  bool nesterov = false;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  ///< adam, adamw, adamax (eps also adagrad 1e-10, rmsprop 1e-8)
  double alpha = 0.99;   ///< rmsprop smoothing
  bool centered = false; ///< rmsprop
  double lr_decay = 0, initial_accumulator = 0;  ///< adagrad
  /// l1 * sign(p) added to each gradient before clipping: the gradient of l1 * sum(|p|) added
  /// to the loss, as PyTorch users write L1 regularisation (the reported loss leaves it out).
  double l1 = 0;
  double clip_norm = 0;   ///< clip gradients by their global norm first (0: off)
  double clip_value = 0;  ///< clip each gradient element to [-v, v] (0: off)
  /// The step counter's name: two optimizers of one program (a GAN's) need two.
  std::string step_state = "optim.step";
};

struct TrainConfig {
  OptimizerConfig optimizer;
  double lr = 1e-3;
  std::string schedule = "constant";  ///< the runtime's --schedule spelling
  int64_t epochs = 10;
  std::optional<std::string> data;    ///< unset: the runtime's default
};

/// The settings of `g`'s `train.*` attributes, defaults where absent.
TrainConfig train_config(const Graph& g);

}  // namespace stag
