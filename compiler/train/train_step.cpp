// Assembles the train step: autodiff of the training-mode graph, then the optimizer update.

#include "compiler/train/train_step.h"

#include <fmt/format.h>

#include "compiler/autodiff/autodiff.h"
#include "ir/train_config.h"
#include "ir/verifier.h"

namespace stag {

OptimizerConfig optimizer_from_attrs(const Graph& g) { return train_config(g).optimizer; }

std::unique_ptr<Graph> build_train_step(const Graph& training_graph, const OptimizerConfig& optimizer,
                                        Diagnostics& diags) {
  auto g = differentiate(training_graph, "loss", diags);
  if (!g) return nullptr;
  // The gradients feed the optimizer instead of leaving the function.
  std::vector<std::pair<Value*, Value*>> grads;
  std::vector<Output> kept;
  for (const auto& o : g->outputs) {
    if (!o.name.starts_with("grad.")) {
      kept.push_back(o);
      continue;
    }
    Value* param = g->find(o.name.substr(5));
    if (param) grads.emplace_back(param, o.value);
  }
  g->outputs = std::move(kept);
  if (auto err = append_optimizer(*g, grads, optimizer); !err.empty()) {
    diags.error({}, fmt::format("optimizer: {}", err), "train");
    return nullptr;
  }
  // The train section's precision is the step's (autocast-bf16 reads it; --precision overrides).
  if (const Attr* precision = g->attr("train.precision"); precision && !g->attr("precision")) g->set_attr("precision", *precision);
  if (!verify(*g, diags)) return nullptr;
  return g;
}

}  // namespace stag
