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

struct TrainConfig {
  // The optimizer and its torch.optim hyper-parameters; eps unset takes the optimizer's default.
  std::string optimizer = "adam";
  double lr = 1e-3;
  double weight_decay = 0, momentum = 0, dampening = 0;
  bool nesterov = false;
  double beta1 = 0.9, beta2 = 0.999;
  std::optional<double> eps;
  double alpha = 0.99;
  bool centered = false;
  double lr_decay = 0, initial_accumulator_value = 0;
  double l1 = 0, grad_clip = 0, grad_clip_value = 0;
  // The run.
  std::string schedule = "constant";  ///< the runtime's --schedule spelling
  int64_t epochs = 10;
  std::optional<std::string> data;    ///< unset: the runtime's default
};

/// The settings of `g`'s `train.*` attributes, defaults where absent.
TrainConfig train_config(const Graph& g);

}  // namespace stag
