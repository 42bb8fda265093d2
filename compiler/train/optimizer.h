#pragma once
/// Optimizers as graph ops: the update of every trainable parameter appended to a graph that
/// computes its gradients, with torch.optim's equations, so one compiled function performs
/// forward, backward and update in place.

#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"
#include "ir/train_config.h"  // OptimizerConfig

namespace stag {

/// Names of the optimizer state of parameter `p`: `optim.<state>.<p>`; the step counter is
/// `optim.step` (OptimizerConfig::step_state). They are non-trainable parameters, so checkpoints carry them.
std::string optimizer_state_name(const std::string& state, const std::string& param);

/// Appends the optimizer step for (parameter, gradient) pairs: `update`s of each parameter and
/// of its state, reading the learning rate from a new input `lr: f32[]`. Returns an error
/// message for a bad configuration (unknown kind, negative rates), empty on success.
std::string append_optimizer(Graph& g, const std::vector<std::pair<Value*, Value*>>& grads,
                             const OptimizerConfig& config);

}  // namespace stag
