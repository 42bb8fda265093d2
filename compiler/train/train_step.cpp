// Assembles the train step: autodiff of the training-mode graph, then the optimizer update.

#include "compiler/train/train_step.h"

#include <fmt/format.h>

#include "compiler/autodiff/autodiff.h"
#include "ir/verifier.h"

namespace stag {

namespace {

double attr_f(const Graph& g, const std::string& key, double fallback) {
  const Attr* a = g.attr(key);
  if (!a) return fallback;
  if (auto* d = std::get_if<double>(a)) return *d;
  if (auto* i = std::get_if<int64_t>(a)) return static_cast<double>(*i);
  return fallback;
}

}  // namespace

OptimizerConfig optimizer_from_attrs(const Graph& g) {
  OptimizerConfig c;
  if (const Attr* a = g.attr("train.optimizer"); a && std::holds_alternative<std::string>(*a)) c.kind = std::get<std::string>(*a);
  // torch.optim's defaults differ by optimizer.
  if (c.kind == "adagrad") c.eps = 1e-10;
  c.weight_decay = attr_f(g, "train.weight_decay", 0);
  c.momentum = attr_f(g, "train.momentum", 0);
  c.dampening = attr_f(g, "train.dampening", 0);
  if (const Attr* a = g.attr("train.nesterov"); a && std::holds_alternative<bool>(*a)) c.nesterov = std::get<bool>(*a);
  if (const Attr* a = g.attr("train.betas"); a && std::holds_alternative<Floats>(*a) && std::get<Floats>(*a).size() == 2) {
    c.beta1 = std::get<Floats>(*a)[0];
    c.beta2 = std::get<Floats>(*a)[1];
  }
  c.eps = attr_f(g, "train.eps", c.eps);
  c.alpha = attr_f(g, "train.alpha", c.alpha);
  if (const Attr* a = g.attr("train.centered"); a && std::holds_alternative<bool>(*a)) c.centered = std::get<bool>(*a);
  c.lr_decay = attr_f(g, "train.lr_decay", 0);
  c.initial_accumulator = attr_f(g, "train.initial_accumulator_value", 0);
  c.clip_norm = attr_f(g, "train.grad_clip", 0);
  c.clip_value = attr_f(g, "train.grad_clip_value", 0);
  return c;
}

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
  if (!verify(*g, diags)) return nullptr;
  return g;
}

}  // namespace stag
