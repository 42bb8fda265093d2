// Reads the `train.*` attributes through tables of keys and members, so that a setting is one row.

#include "ir/train_config.h"

#include <utility>

namespace stag {

namespace {

std::optional<double> number(const Graph& g, const char* key) {
  const Attr* a = g.attr(key);
  if (!a) return std::nullopt;
  if (const auto* d = std::get_if<double>(a)) return *d;
  if (const auto* i = std::get_if<int64_t>(a)) return static_cast<double>(*i);
  return std::nullopt;
}

template <class T>
const T* get(const Graph& g, const char* key) {
  const Attr* a = g.attr(key);
  return a ? std::get_if<T>(a) : nullptr;
}

constexpr std::pair<const char*, double OptimizerConfig::*> kNumbers[] = {
    {"train.weight_decay", &OptimizerConfig::weight_decay},
    {"train.momentum", &OptimizerConfig::momentum},
    {"train.dampening", &OptimizerConfig::dampening},
    {"train.eps", &OptimizerConfig::eps},
    {"train.alpha", &OptimizerConfig::alpha},
    {"train.lr_decay", &OptimizerConfig::lr_decay},
    {"train.initial_accumulator_value", &OptimizerConfig::initial_accumulator},
    {"train.l1", &OptimizerConfig::l1},
    {"train.grad_clip", &OptimizerConfig::clip_norm},
    {"train.grad_clip_value", &OptimizerConfig::clip_value},
};

constexpr std::pair<const char*, bool OptimizerConfig::*> kFlags[] = {
    {"train.nesterov", &OptimizerConfig::nesterov},
    {"train.centered", &OptimizerConfig::centered},
};

OptimizerConfig optimizer_config(const Graph& g) {
  OptimizerConfig c;
  if (const std::string* kind = get<std::string>(g, "train.optimizer")) c.kind = *kind;
  if (c.kind == "adagrad") c.eps = 1e-10;  // torch.optim's defaults differ by optimizer
  for (auto [key, member] : kNumbers)
    if (auto v = number(g, key)) c.*member = *v;
  for (auto [key, member] : kFlags)
    if (const bool* v = get<bool>(g, key)) c.*member = *v;
  if (const Floats* betas = get<Floats>(g, "train.betas"); betas && betas->size() == 2) {
    c.beta1 = (*betas)[0];
    c.beta2 = (*betas)[1];
  }
  return c;
}

}  // namespace

TrainConfig train_config(const Graph& g) {
  TrainConfig c;
  c.optimizer = optimizer_config(g);
  if (auto v = number(g, "train.lr")) c.lr = *v;
  if (const std::string* v = get<std::string>(g, "train.schedule")) c.schedule = *v;
  if (auto v = number(g, "train.epochs")) c.epochs = static_cast<int64_t>(*v);
  if (const std::string* v = get<std::string>(g, "train.data")) c.data = *v;
  return c;
}

}  // namespace stag
