// Reverse-mode autodiff: appends to a copy of the forward graph the backward of every node on a
// path from a trainable parameter to the loss, using the per-op rules of gradients.cpp.

#include "compiler/autodiff/autodiff.h"

#include <fmt/format.h>

#include <unordered_map>
#include <unordered_set>

namespace stag {

namespace {

bool is_trainable(const Node& n) { return n.op == Op::parameter && n.b("trainable"); }

// Where to point a diagnostic about a node when it has no source location.
std::string where(const Node& n) { return n.results.empty() ? std::string(n.info().name) : "%" + n.result()->name; }

// Values that depend on a trainable parameter through float values: only they carry gradients.
std::unordered_set<const Value*> depends_on_params(const std::vector<Node*>& nodes) {
  std::unordered_set<const Value*> s;
  for (Node* n : nodes) {
    bool from = is_trainable(*n);
    for (Value* v : n->operands) from = from || s.count(v);
    if (!from || (autodiff::is_non_differentiable(n->op) && !is_trainable(*n))) continue;
    for (auto& r : n->results)
      if (is_float(r->type.dtype)) s.insert(r.get());
  }
  return s;
}

// Values the loss depends on.
std::unordered_set<const Value*> feeds_loss(const std::vector<Node*>& nodes, const Value* loss) {
  std::unordered_set<const Value*> s{loss};
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
    bool used = false;
    for (auto& r : (*it)->results) used = used || s.count(r.get());
    if (used) s.insert((*it)->operands.begin(), (*it)->operands.end());
  }
  return s;
}

class Backward {
 public:
  Backward(Graph& g, Diagnostics& diags, autodiff::GradRule (*rules)(Op)) : b_(g), diags_(diags), rules_(rules) {}

  void run(const std::vector<Node*>& forward, Value* loss) {
    auto from = depends_on_params(forward);
    auto to = feeds_loss(forward, loss);
    for (const Value* v : from)
      if (to.count(v)) active_.insert(v);
    if (!active_.count(loss)) return;  // no parameter reaches the loss: every gradient is zero
    b_.set_loc(loss->def->loc);
    grads_[loss] = b_.constant(loss->type, {1.0});
    for (auto it = forward.rbegin(); it != forward.rend(); ++it) backward(**it);
  }

  Value* grad(const Value* v) const {
    auto it = grads_.find(v);
    return it == grads_.end() ? nullptr : it->second;
  }

 private:
  void backward(const Node& n) {
    autodiff::GradCtx c{b_, n, {}, {}, scalars_};
    bool any_dy = false, any_want = false;
    for (auto& r : n.results) {
      c.dy.push_back(grad(r.get()));
      any_dy = any_dy || c.dy.back();
    }
    for (Value* v : n.operands) {
      c.wants.push_back(active_.count(v) > 0);
      any_want = any_want || c.wants.back();
    }
    if (!any_dy || !any_want) return;
    auto rule = rules_(n.op);
    if (!rule) {
      diags_.error(n.loc, fmt::format("no gradient rule for op '{}' (node {})", n.info().name, where(n)), where(n));
      return;
    }
    b_.set_loc(n.loc);
    std::vector<Value*> dx;
    size_t first_new = b_.graph().nodes.size();
    try {
      dx = rule(c);
      inherit_precision(n, first_new);
    } catch (const BuildError& e) {
      diags_.error(n.loc, fmt::format("internal error: the gradient rule of '{}' (node {}) built an invalid node: {}",
                                      n.info().name, where(n), e.what()), where(n));
      return;
    }
    for (size_t i = 0; i < n.operands.size() && i < dx.size(); ++i) {
      if (!c.wants[i] || !dx[i]) continue;
      Value* x = n.operands[i];
      if (dx[i]->type != x->type) {
        diags_.error(n.loc, fmt::format("internal error: the gradient rule of '{}' (node {}) gave {} for operand {} of type {}",
                                        n.info().name, where(n), to_string(dx[i]->type), i, to_string(x->type)), where(n));
        continue;
      }
      Value*& acc = grads_[x];
      acc = acc ? b_.add({acc, dx[i]}) : dx[i];  // a value used several times: gradients add
    }
  }

  // The products a bf16 product's rule built are bf16 too: autocast runs the backward of a
  // product in the forward's precision.
  void inherit_precision(const Node& n, size_t first_new) {
    if (!n.in_bf16()) return;
    auto& nodes = b_.graph().nodes;
    for (size_t i = first_new; i < nodes.size(); ++i)
      if (nodes[i]->info().has(MixedPrecision)) nodes[i]->set_precision("bf16");
  }

  Builder b_;
  Diagnostics& diags_;
  autodiff::GradRule (*rules_)(Op);
  std::map<std::pair<double, DType>, Value*> scalars_;
  std::unordered_set<const Value*> active_;
  std::unordered_map<const Value*, Value*> grads_;
};

}  // namespace

std::unique_ptr<Graph> differentiate(const Graph& g, const std::string& loss_output, Diagnostics& diags) {
  return autodiff::differentiate_with(g, loss_output, diags, autodiff::gradient_rule);
}

std::unique_ptr<Graph> autodiff::differentiate_with(const Graph& src, const std::string& loss_output,
                                                    Diagnostics& diags, GradRule (*rules)(Op)) {
  auto g = src.clone();
  Value* loss = nullptr;
  for (const auto& o : g->outputs)
    if (o.name == loss_output) loss = o.value;
  if (!loss) {
    diags.error({}, fmt::format("autodiff: the graph has no output named '{}'", loss_output), g->name);
    return nullptr;
  }
  if (!is_float(loss->type.dtype) || *checked_numel(loss->type.dims) != 1) {
    diags.error({}, fmt::format("autodiff: the loss '{}' must be a float scalar, got {}", loss_output,
                                to_string(loss->type)), "%" + loss->name);
    return nullptr;
  }
  std::vector<Node*> forward;
  for (auto& n : g->nodes) forward.push_back(n.get());
  Backward bw(*g, diags, rules);
  bw.run(forward, loss);
  if (diags.has_errors()) return nullptr;
  Builder b(*g);
  try {
    for (Node* n : forward) {
      if (!is_trainable(*n)) continue;
      Value* p = n->result();
      Value* d = bw.grad(p);
      b.set_loc(n->loc);
      b.output(grad_output_name(p->name), d ? d : b.constant(p->type, {0.0}));
    }
  } catch (const BuildError& e) {
    diags.error({}, fmt::format("autodiff: {}", e.what()), g->name);
    return nullptr;
  }
  return g;
}

}  // namespace stag
