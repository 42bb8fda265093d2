#pragma once
/// The training step as one graph: the model's training-mode forward, the gradient of its
/// `loss` output for every trainable parameter, and the optimizer's update of each, in place.

#include <memory>
#include <string>

#include "compiler/train/optimizer.h"
#include "ir/diag.h"
#include "ir/graph.h"

namespace stag {

/// The graph attribute naming the train step's output `nonfinite`, one entry per element,
/// comma-separated: `loss`, then `grad.P` for each parameter P. An element is 1 when that value
/// holds a NaN or an infinity; then the step updated nothing (every update is select(all finite,
/// new, old)).
inline constexpr const char* kNonfiniteAttr = "step.nonfinite";

/// The input of a data-parallel gradients function that says which process runs it.
inline constexpr const char* kRankInput = "dp.rank";

/// The optimizer a model's `train { ... }` section asks for (graph attributes train.*), with
/// torch.optim's defaults for what it leaves out.
OptimizerConfig optimizer_from_attrs(const Graph& g);

/// The train step of a training-mode graph with a scalar output `loss`. Its inputs are the
/// model's (and `step` where dropout draws from it) plus `lr: f32[]`; its outputs are the
/// forward's and `nonfinite`; its updates are the parameters', the optimizer state's and running statistics'.
/// User errors (no loss, a missing gradient rule, a bad optimizer setting) go to `diags`.
std::unique_ptr<Graph> build_train_step(const Graph& training_graph, const OptimizerConfig& optimizer,
                                        Diagnostics& diags);

/// The train step in two functions, for data-parallel training: "gradients" (the forward's
/// outputs and `grad.P` for every trainable parameter; running statistics still update) and
/// "update" (inputs `grad.P`, `loss` and `lr`; the optimizer's updates, guarded as
/// build_train_step's; output `nonfinite`), so that the gradients can be averaged across
/// processes between the two. Both read the same parameters by name. {nullptr, nullptr} on error.
/// Where dropout or a keyed random op draws, gradients also takes the input kRankInput (i64[],
/// the process's rank): its masks and numbers are those one process draws for the same rows of
/// the global batch.
std::pair<std::unique_ptr<Graph>, std::unique_ptr<Graph>> build_split_train_step(const Graph& training_graph,
                                                                                 const OptimizerConfig& optimizer,
                                                                                 Diagnostics& diags);

}  // namespace stag
