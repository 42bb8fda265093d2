// Assembles the train step: autodiff of the training-mode graph, then the optimizer update.

#include "compiler/train/train_step.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "compiler/autodiff/autodiff.h"
#include "ir/attention.h"
#include "ir/builder.h"
#include "ir/train_config.h"
#include "ir/verifier.h"

namespace stag {

namespace {

// 1 where `v` holds a NaN or an infinity, else 0, as f32[1]. |x| <= the largest finite value is
// false exactly for those, and unlike x - x == 0 no pass can fold it.
Value* nonfinite_flag(Builder& b, Value* v) {
  DType dt = v->type.dtype;
  double largest = dt == DType::f64 ? std::numeric_limits<double>::max() : std::numeric_limits<float>::max();
  Value* finite = b.le({b.abs({v}), b.scalar(largest, dt)});
  Value* flag = b.max({b.select({finite, b.scalar(0), b.scalar(1)})});
  return b.reshape({flag}, {{"shape", Ints{1}}});
}

// A step whose loss or gradients are not all finite changes nothing: every update becomes
// select(ok, new, old), which fuses into the update's own kernel (checking the new values too
// would keep every update out of place until all are known: mlp's step took 1.6x as long). The
// flags leave as the output `nonfinite` (1 where not finite), in the order the attribute
// kNonfiniteAttr names them, so that the runtime can say what failed.
void guard_updates(Graph& g, Value* loss, const std::vector<std::pair<Value*, Value*>>& grads) {
  Builder b(g);
  // Each flag where its value is made (the gradient's layer), so pictures and profiles show it there.
  auto flag_of = [&b](Value* v) {
    b.set_loc(v->def ? v->def->loc : Loc{});
    return nonfinite_flag(b, v);
  };
  std::vector<Value*> flags = {flag_of(loss)};
  std::string names = "loss";
  for (const auto& [param, grad] : grads) {
    flags.push_back(flag_of(grad));
    names += ",grad." + param->name;
  }
  b.set_loc({});
  Value* all = b.concat(flags, {{"axis", int64_t{0}}});
  Value* ok = b.eq({b.max({all}), b.scalar(0)});
  for (auto& u : g.updates) u.value = b.select({ok, u.value, u.target});
  b.output("nonfinite", all);
  g.set_attr(kNonfiniteAttr, names);
}

// A parameter node's attributes by name, to declare the same parameter in another function.
NamedAttrs named_attrs(const Node& n) {
  NamedAttrs out;
  for (size_t i = 0; i < n.attrs.size(); ++i) out.emplace_back(n.info().attrs[i].name, n.attrs[i]);
  return out;
}

// The optimizer's half of a split step: each trainable parameter again, its averaged gradient
// and the loss as inputs, then the same update and guard as the fused step's.
std::unique_ptr<Graph> update_graph(const Graph& grads_graph, const std::vector<std::pair<Value*, Value*>>& grads,
                                    const OptimizerConfig& optimizer, Diagnostics& diags) {
  auto g = std::make_unique<Graph>(grads_graph.name);
  g->attrs = grads_graph.attrs;
  Builder b(*g);
  std::vector<std::pair<Value*, Value*>> pairs;
  for (const auto& [param, grad] : grads) {
    Value* p = b.parameter(param->name, param->type, named_attrs(*param->def));
    pairs.emplace_back(p, b.input("grad." + param->name, grad->type));
  }
  const Output* loss = nullptr;
  for (const auto& o : grads_graph.outputs) if (o.name == "loss") loss = &o;
  Value* loss_in = b.input("loss", loss->value->type);
  if (auto err = append_optimizer(*g, pairs, optimizer); !err.empty()) {
    diags.error({}, fmt::format("optimizer: {}", err), "train");
    return nullptr;
  }
  guard_updates(*g, loss_in, pairs);
  return g;
}

// A keyed dropout or random draw (a GAN's noise), or an attention (or its gradient) keying its
// dropout, that has no part yet.
bool keyed_without_part(const Node& n) {
  if (n.op == Op::dropout) return n.operands.size() == 2;
  if (n.op == Op::random_normal || n.op == Op::random_uniform) return n.operands.size() == 1;
  if (n.op != Op::attention && n.op != Op::attention_grad) return false;
  AttentionOperands at(n);
  return at.key >= 0 && at.part < 0;
}

// Whether a keyed dropout draws in g or in a loop body inside it.
bool draws(const Graph& g) {
  return std::any_of(g.nodes.begin(), g.nodes.end(), [](const auto& n) { return keyed_without_part(*n) || (n->body && draws(*n->body)); });
}

// Every keyed dropout of g takes `rank` as its part; a loop whose body draws reads it as one
// more invariant (its body copied first: bodies may be shared with the graph differentiated).
void pass_rank(Graph& g, Value* rank) {
  for (auto& n : g.nodes) {
    if (keyed_without_part(*n)) n->operands.push_back(rank);
    if (!n->body || !draws(*n->body)) continue;
    std::shared_ptr<Graph> body = n->body->clone();
    auto last_input = std::find_if(body->nodes.rbegin(), body->nodes.rend(), [](const auto& m) { return m->op == Op::input; });
    auto at = static_cast<long>(body->nodes.rend() - last_input);
    Value* inner = Builder(*body).input(body->fresh_name(), rank->type);
    std::rotate(body->nodes.begin() + at, body->nodes.end() - 1, body->nodes.end());  // after the other inputs
    pass_rank(*body, inner);
    n->body = std::move(body);
    n->operands.push_back(rank);
  }
}

// Data parallelism: every keyed dropout (attention's too) and random draw takes the input
// `dp.rank` as its part (ops.def), so the process of rank r draws the masks (and a GAN's noise) of
// rows [r*b, (r+1)*b) of the global batch wherever the batch is the outermost factor of the first
// axis, as in every catalog model (the test of tests/frontend/test_catalog.cpp checks it). A runtime input, not an attribute: one
// compiled step serves every rank (a `stag build` trainer, the JIT cache). The gradient's dropouts
// are the forward's with the same operands, so they draw the same masks. Dropouts inside loop
// bodies (a `for` loop's step, its gradient's) read the rank through their loops.
bool give_dropout_rank(Graph& g, Diagnostics& diags) {
  auto first = std::find_if(g.nodes.begin(), g.nodes.end(), [](const auto& n) { return keyed_without_part(*n) || (n->body && draws(*n->body)); });
  if (first == g.nodes.end()) return true;
  if (g.has_name(kRankInput)) {
    diags.error({}, fmt::format("the name '{}' is reserved for the process's rank in data-parallel training", kRankInput), "train");
    return false;
  }
  size_t at = static_cast<size_t>(first - g.nodes.begin());
  Value* rank = Builder(g).input(kRankInput, {DType::i64, {}});
  // The input node goes before the first dropout (nodes stay in execution order).
  std::rotate(g.nodes.begin() + static_cast<long>(at), g.nodes.end() - 1, g.nodes.end());
  pass_rank(g, rank);
  return true;
}

}  // namespace

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
  auto loss = std::find_if(g->outputs.begin(), g->outputs.end(), [](const Output& o) { return o.name == "loss"; });
  guard_updates(*g, loss->value, grads);
  // The train section's precision is the step's (autocast-bf16 reads it; --precision overrides).
  if (const Attr* precision = g->attr("train.precision"); precision && !g->attr("precision")) g->set_attr("precision", *precision);
  if (!verify(*g, diags)) return nullptr;
  return g;
}

std::pair<std::unique_ptr<Graph>, std::unique_ptr<Graph>> build_split_train_step(const Graph& training_graph,
                                                                                 const OptimizerConfig& optimizer,
                                                                                 Diagnostics& diags) {
  auto g = differentiate(training_graph, "loss", diags);
  if (!g || !give_dropout_rank(*g, diags)) return {};
  if (const Attr* precision = g->attr("train.precision"); precision && !g->attr("precision")) g->set_attr("precision", *precision);
  std::vector<std::pair<Value*, Value*>> grads;
  for (const auto& o : g->outputs)
    if (Value* param = o.name.starts_with("grad.") ? g->find(o.name.substr(5)) : nullptr) grads.emplace_back(param, o.value);
  auto update = update_graph(*g, grads, optimizer, diags);
  if (!update || !verify(*g, diags) || !verify(*update, diags)) return {};
  return {std::move(g), std::move(update)};
}

}  // namespace stag
