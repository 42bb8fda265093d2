#pragma once
/// Optimizers as graph ops: the update of every trainable parameter appended to a graph that
/// computes its gradients, with torch.optim's equations, so one compiled function performs
/// forward, backward and update in place.

#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"

namespace stag {

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

/// Names of the optimizer state of parameter `p`: `optim.<state>.<p>`; the step counter is
/// `optim.step` (OptimizerConfig::step_state). They are non-trainable parameters, so checkpoints carry them.
std::string optimizer_state_name(const std::string& state, const std::string& param);

/// Appends the optimizer step for (parameter, gradient) pairs: `update`s of each parameter and
/// of its state, reading the learning rate from a new input `lr: f32[]`. Returns an error
/// message for a bad configuration (unknown kind, negative rates), empty on success.
std::string append_optimizer(Graph& g, const std::vector<std::pair<Value*, Value*>>& grads,
                             const OptimizerConfig& config);

}  // namespace stag
