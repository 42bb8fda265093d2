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

constexpr std::pair<const char*, double TrainConfig::*> kNumbers[] = {
    {"train.lr", &TrainConfig::lr},
    {"train.weight_decay", &TrainConfig::weight_decay},
    {"train.momentum", &TrainConfig::momentum},
    {"train.dampening", &TrainConfig::dampening},
    {"train.alpha", &TrainConfig::alpha},
    {"train.lr_decay", &TrainConfig::lr_decay},
    {"train.initial_accumulator_value", &TrainConfig::initial_accumulator_value},
    {"train.l1", &TrainConfig::l1},
    {"train.grad_clip", &TrainConfig::grad_clip},
    {"train.grad_clip_value", &TrainConfig::grad_clip_value},
};

constexpr std::pair<const char*, bool TrainConfig::*> kFlags[] = {
    {"train.nesterov", &TrainConfig::nesterov},
    {"train.centered", &TrainConfig::centered},
};

constexpr std::pair<const char*, std::string TrainConfig::*> kTexts[] = {
    {"train.optimizer", &TrainConfig::optimizer},
    {"train.schedule", &TrainConfig::schedule},
};

}  // namespace

TrainConfig train_config(const Graph& g) {
  TrainConfig c;
  for (auto [key, member] : kNumbers)
    if (auto v = number(g, key)) c.*member = *v;
  for (auto [key, member] : kFlags)
    if (const bool* v = get<bool>(g, key)) c.*member = *v;
  for (auto [key, member] : kTexts)
    if (const std::string* v = get<std::string>(g, key)) c.*member = *v;
  if (const Floats* betas = get<Floats>(g, "train.betas"); betas && betas->size() == 2) {
    c.beta1 = (*betas)[0];
    c.beta2 = (*betas)[1];
  }
  c.eps = number(g, "train.eps");
  if (auto v = number(g, "train.epochs")) c.epochs = static_cast<int64_t>(*v);
  if (const std::string* v = get<std::string>(g, "train.data")) c.data = *v;
  return c;
}

}  // namespace stag
