// The optimizer step as graph ops. Each update is torch.optim's single-tensor algorithm
// (PyTorch 1.13 docs and source), written with the op set; `optim.step` counts steps from 0.

#include "compiler/train/optimizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "ir/builder.h"

namespace stag {

std::string optimizer_state_name(const std::string& state, const std::string& param) {
  return fmt::format("optim.{}.{}", state, param);
}

namespace {

struct Step {
  Builder& b;
  DType dt;
  Value* lr;
  Value* t;  ///< the step number being taken, 1-based, as a scalar of dt

  Value* c(double v) { return b.scalar(v, dt); }
  Value* add(Value* x, Value* y) { return b.add({x, y}); }
  Value* sub(Value* x, Value* y) { return b.sub({x, y}); }
  Value* mul(Value* x, Value* y) { return b.mul({x, y}); }
  Value* div(Value* x, Value* y) { return b.div({x, y}); }
  Value* sqrt(Value* x) { return b.sqrt({x}); }
  // 1 - beta^t
  Value* bias_correction(double beta) { return sub(c(1), b.pow({c(beta), t})); }

  Value* state(Value* p, const std::string& name, double init = 0) {
    std::string full = optimizer_state_name(name, p->name);
    NamedAttrs attrs = {{"trainable", false}};
    if (init != 0) attrs = {{"init", std::string("constant")}, {"value", init}, {"trainable", false}};
    return b.parameter(full, p->type, attrs);
  }
};

std::string check(const OptimizerConfig& c) {
  static const char* kinds[] = {"sgd", "adam", "adamw", "adamax", "adagrad", "rmsprop"};
  if (std::find(std::begin(kinds), std::end(kinds), c.kind) == std::end(kinds))
    return fmt::format("unknown optimizer '{}'; expected sgd, adam, adamw, adamax, adagrad or rmsprop", c.kind);
  auto in01 = [](double v) { return v >= 0 && v < 1; };
  if (c.weight_decay < 0) return fmt::format("weight_decay must be >= 0, got {}", c.weight_decay);
  if (c.momentum < 0) return fmt::format("momentum must be >= 0, got {}", c.momentum);
  if (c.nesterov && (c.momentum <= 0 || c.dampening != 0)) return "nesterov needs momentum > 0 and dampening 0";
  if (!in01(c.beta1) || !in01(c.beta2)) return fmt::format("betas must be in [0, 1), got [{}, {}]", c.beta1, c.beta2);
  if (c.eps < 0) return fmt::format("eps must be >= 0, got {}", c.eps);
  if (c.alpha < 0) return fmt::format("alpha must be >= 0, got {}", c.alpha);
  if (c.clip_norm < 0 || c.clip_value < 0) return "gradient clipping thresholds must be >= 0";
  if (c.l1 < 0) return fmt::format("l1 must be >= 0, got {}", c.l1);
  return {};
}

}  // namespace

std::string append_optimizer(Graph& g, const std::vector<std::pair<Value*, Value*>>& grads,
                             const OptimizerConfig& cfg) {
  if (auto err = check(cfg); !err.empty()) return err;
  if (grads.empty()) return "there are no trainable parameters to optimize";
  Builder b(g);
  DType dt = grads[0].first->type.dtype;
  Value* lr = b.input("lr", {dt, {}});
  Value* step = b.parameter(cfg.step_state, {dt, {}}, {{"trainable", false}});
  Step s{b, dt, lr, nullptr};
  s.t = s.add(step, s.c(1));
  b.update(step, s.t);

  std::vector<Value*> gs;
  for (const auto& [p, grad] : grads) gs.push_back(cfg.l1 > 0 ? s.add(grad, s.mul(s.c(cfg.l1), b.sign({p}))) : grad);
  // Clipping sees the raw gradients of all parameters, as torch.nn.utils.clip_grad_* do.
  if (cfg.clip_value > 0)
    for (auto& grad : gs) grad = b.minimum({b.maximum({grad, s.c(-cfg.clip_value)}), s.c(cfg.clip_value)});
  if (cfg.clip_norm > 0) {
    Value* total = nullptr;
    for (Value* grad : gs) total = total ? s.add(total, b.l2_penalty({grad})) : b.l2_penalty({grad});
    // coef = min(max_norm / (norm + 1e-6), 1)
    Value* coef = b.minimum({s.div(s.c(cfg.clip_norm), s.add(s.sqrt(total), s.c(1e-6))), s.c(1)});
    for (auto& grad : gs) grad = s.mul(grad, coef);
  }

  for (size_t i = 0; i < grads.size(); ++i) {
    Value* p = grads[i].first;
    Value* grad = gs[i];
    Value* wd = s.c(cfg.weight_decay);
    if (cfg.weight_decay != 0 && cfg.kind != "adamw") grad = s.add(grad, s.mul(wd, p));
    Value* next = nullptr;
    if (cfg.kind == "sgd") {
      Value* d = grad;
      if (cfg.momentum != 0) {
        Value* buf = s.state(p, "momentum_buffer");
        // The first step starts the buffer at the gradient itself, undamped.
        Value* later = s.add(s.mul(s.c(cfg.momentum), buf), s.mul(s.c(1 - cfg.dampening), grad));
        Value* nb = b.select({b.eq({step, s.c(0)}), grad, later});
        b.update(buf, nb);
        d = cfg.nesterov ? s.add(grad, s.mul(s.c(cfg.momentum), nb)) : nb;
      }
      next = s.sub(p, s.mul(lr, d));
    } else if (cfg.kind == "adam" || cfg.kind == "adamw") {
      Value* base = p;
      if (cfg.kind == "adamw" && cfg.weight_decay != 0) base = s.mul(p, s.sub(s.c(1), s.mul(lr, wd)));
      Value* m = s.state(p, "exp_avg");
      Value* v = s.state(p, "exp_avg_sq");
      Value* nm = s.add(s.mul(s.c(cfg.beta1), m), s.mul(s.c(1 - cfg.beta1), grad));
      Value* nv = s.add(s.mul(s.c(cfg.beta2), v), s.mul(s.c(1 - cfg.beta2), b.square({grad})));
      b.update(m, nm);
      b.update(v, nv);
      // p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
      Value* denom = s.add(s.div(s.sqrt(nv), s.sqrt(s.bias_correction(cfg.beta2))), s.c(cfg.eps));
      next = s.sub(base, s.mul(s.div(lr, s.bias_correction(cfg.beta1)), s.div(nm, denom)));
    } else if (cfg.kind == "adamax") {
      Value* m = s.state(p, "exp_avg");
      Value* u = s.state(p, "exp_inf");
      Value* nm = s.add(s.mul(s.c(cfg.beta1), m), s.mul(s.c(1 - cfg.beta1), grad));
      Value* nu = b.maximum({s.mul(s.c(cfg.beta2), u), s.add(b.abs({grad}), s.c(cfg.eps))});
      b.update(m, nm);
      b.update(u, nu);
      next = s.sub(p, s.mul(s.div(lr, s.bias_correction(cfg.beta1)), s.div(nm, nu)));
    } else if (cfg.kind == "adagrad") {
      Value* sum = s.state(p, "sum", cfg.initial_accumulator);
      Value* ns = s.add(sum, b.square({grad}));
      b.update(sum, ns);
      Value* clr = s.div(lr, s.add(s.c(1), s.mul(step, s.c(cfg.lr_decay))));
      next = s.sub(p, s.mul(clr, s.div(grad, s.add(s.sqrt(ns), s.c(cfg.eps)))));
    } else {  // rmsprop
      Value* v = s.state(p, "square_avg");
      Value* nv = s.add(s.mul(s.c(cfg.alpha), v), s.mul(s.c(1 - cfg.alpha), b.square({grad})));
      b.update(v, nv);
      Value* avg;
      if (cfg.centered) {
        Value* ga = s.state(p, "grad_avg");
        Value* nga = s.add(s.mul(s.c(cfg.alpha), ga), s.mul(s.c(1 - cfg.alpha), grad));
        b.update(ga, nga);
        avg = s.add(s.sqrt(s.sub(nv, b.square({nga}))), s.c(cfg.eps));
      } else {
        avg = s.add(s.sqrt(nv), s.c(cfg.eps));
      }
      if (cfg.momentum > 0) {
        Value* buf = s.state(p, "momentum_buffer");
        Value* nb = s.add(s.mul(s.c(cfg.momentum), buf), s.div(grad, avg));
        b.update(buf, nb);
        next = s.sub(p, s.mul(lr, nb));
      } else {
        next = s.sub(p, s.mul(lr, s.div(grad, avg)));
      }
    }
    b.update(p, next);
  }
  return {};
}

}  // namespace stag
