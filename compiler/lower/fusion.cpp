// Fusion planning: values computed where they are read, and elementwise chains applied in a
// producer's store (epilogues).

#include "compiler/lower/fusion.h"

#include <algorithm>
#include <map>

#include "compiler/lower/families.h"
#include "ir/analysis.h"

namespace stag::lowering {

namespace {

// Who reads what, and where each node stands in the graph.
struct Uses {
  std::map<const Value*, int> count;  ///< uses, outputs included
  std::unordered_map<const Value*, std::vector<const Node*>> users;
  std::unordered_map<const Node*, size_t> position;
  std::unordered_set<const Value*> outputs, updated;
};

Uses uses_of(const Graph& graph) {
  Uses u;
  u.count = use_counts(graph);
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = *graph.nodes[i];
    u.position[&n] = i;
    for (const Value* v : n.operands) u.users[v].push_back(&n);
  }
  // Outputs are never fused away, so their extra count in `count` changes no decision.
  for (const auto& o : graph.outputs) u.outputs.insert(o.value);
  for (const auto& up : graph.updates) u.updated.insert(up.value);
  return u;
}

// Does `consumer` read each element of its operand `v` once, so that computing `v` inside it
// costs no more than reading a buffer? (A matmul reads each element N times; softmax reads a
// row three times.) The op table says which ops do (ir/ops.h).
bool reads_once(const Node& consumer, const Value* v) {
  const OpInfo& info = consumer.info();
  if (info.has(Elementwise)) return v->type.dims == consumer.result()->type.dims;
  if (info.has(ReadsOnce)) return true;
  if (consumer.op == Op::conv2d_weight_grad) return v == consumer.operands[1] && v != consumer.operands[0] && weight_grad_copies_dy(consumer);
  const auto& xs = consumer.operands;
  if (info.has(ReadsLastOnce)) return v == xs.back() && std::count(xs.begin(), xs.end(), v) == 1;
  return false;
}

// The fused tree under `v` were it computed where read: its ops, and the distinct buffers of
// v's size it reads (per-channel or scalar operands are a rounding error beside them).
void fused_tree(const Value* v, const FusionPlan& plan, int& ops, std::unordered_set<const Value*>& big) {
  ++ops;
  for (const Value* x : v->def->operands) {
    if (plan.fused_away.count(x) && !plan.carriers.count(x)) fused_tree(x, plan, ops, big);
    else if (numel(x->type) >= numel(v->type)) big.insert(x);
  }
}

// A cheap value read by k = 2..4 kernels, each reading every element once: stored, it costs
// reading its L operand buffers, one write and k reads, L + 1 + k passes over memory; computed
// in each reader, k L. Recompute when that is no more (L = 1 always; L = 2 up to k = 3), which
// also saves a kernel launch; a batch norm's normalised input and ReLU gradient are read by
// two reductions and the input gradient. The tree is kept small, since each reader repeats it.
bool pays_to_recompute(const Node& n, Uses& uses, const FusionPlan& plan) {
  constexpr int kMaxReaders = 4, kMaxTreeOps = 6;
  const Value* v = n.result();
  int k = static_cast<int>(uses.users[v].size());
  if (!n.info().has(Cheap) || k < 2 || k > kMaxReaders || uses.count[v] != k) return false;
  int ops = 0;
  std::unordered_set<const Value*> big;
  fused_tree(v, plan, ops, big);
  int L = static_cast<int>(big.size());
  return ops <= kMaxTreeOps && k * L <= L + 1 + k;
}

}  // namespace

std::vector<std::vector<const Update*>> group_updates(const Graph& graph) {
  std::vector<std::vector<const Update*>> groups;
  std::map<int64_t, size_t> by_size;
  for (const auto& u : graph.updates) {
    auto [it, fresh] = by_size.emplace(numel(u.target->type), groups.size());
    if (fresh) groups.emplace_back();
    groups[it->second].push_back(&u);
  }
  return groups;
}

namespace {

// Elementwise values, broadcasts and reshapes computed inside the kernels that read them.
void plan_inlining(const Graph& graph, Uses& uses, FusionPlan& plan) {
  for (const auto& n : graph.nodes) {
    bool reshape = n->op == Op::reshape || n->op == Op::flatten;
    bool fusible = (n->info().has(Elementwise) && !n->info().has(Stochastic)) || n->op == Op::broadcast_to || reshape;
    if (!fusible || n->results.size() != 1 || uses.outputs.count(n->result())) continue;
    const Value* v = n->result();
    const auto& us = uses.users[v];
    bool once = std::all_of(us.begin(), us.end(), [&](const Node* u) { return reads_once(*u, v); });
    bool by_update = uses.updated.count(v) > 0;
    // A reshape of a buffer is the buffer under other dims: reading through it is free.
    if (reshape && (!plan.fused_away.count(n->operands[0]) || once)) {
      plan.fused_away.insert(v);
      continue;
    }
    // A broadcast is only an index map: any number of readers may do it themselves.
    bool ok = n->op == Op::broadcast_to ? once && (!us.empty() || by_update) : uses.count[v] == 1 && (by_update ? us.empty() : once);
    if (ok || (once && !by_update && pays_to_recompute(*n, uses, plan))) plan.fused_away.insert(v);
  }

  // An update computed in its group's kernel must not read a parameter that an earlier group
  // has already overwritten (its own group's old values are read before any is stored: a
  // fused value reads an operand of its own size at its own element, and the kernel runs an
  // update's loop before the loops that overwrite what it reads).
  plan.update_groups = group_updates(graph);
  std::unordered_set<const Value*> written;
  for (const auto& group : plan.update_groups) {
    for (const Update* u : group) {
      if (!plan.fused_away.count(u->value)) continue;
      std::vector<const Value*> leaves;
      plan.leaves(u->value, leaves);
      if (std::any_of(leaves.begin(), leaves.end(), [&](const Value* l) { return written.count(l) > 0; }))
        plan.fused_away.erase(u->value);
    }
    for (const Update* u : group) written.insert(u->target);
  }
}

// Whether every operand of `u` but `carry` is computed before `producer` runs.
bool ready_before(const Node& u, const Value* carry, const Node& producer, const Uses& uses, const FusionPlan& plan) {
  for (const Value* x : u.operands) {
    if (x == carry) continue;
    std::vector<const Value*> leaves;
    plan.leaves(x, leaves);
    for (const Value* l : leaves)
      if (l->def->op != Op::parameter && l->def->op != Op::input && l->def->op != Op::constant &&
          uses.position.at(l->def) >= uses.position.at(&producer))
        return false;
  }
  return true;
}

// The elementwise nodes of n's result shape that can ride, one after the other, in n's store.
std::vector<const Node*> epilogue_chain(const Node& n, Uses& uses, const FusionPlan& plan) {
  std::vector<const Node*> chain;
  const Value* carry = n.result();
  for (;;) {
    if (uses.outputs.count(carry) || uses.count[carry] != 1 || uses.users[carry].size() != 1) break;
    const Node& u = *uses.users[carry].front();
    if (plan.absorbed.count(&u) || !u.info().has(Elementwise) || u.info().has(Stochastic) || u.results.size() != 1 ||
        u.result()->type != n.result()->type || std::count(u.operands.begin(), u.operands.end(), carry) != 1)
      break;
    if (!ready_before(u, carry, n, uses, plan)) break;
    chain.push_back(&u);
    carry = u.result();
  }
  return chain;
}

// Epilogues: elementwise nodes of the result's shape applied to a producer's accumulator
// (a matmul's, a convolution's) as it is stored. Their other operands must be ready when
// the producer runs. max_pool2d_grad stores once only on its tiled path.
void plan_epilogues(const Graph& graph, Uses& uses, FusionPlan& plan, LowerStats& stats) {
  for (const auto& n : graph.nodes) {
    if (!n->info().has(TakesEpilogue) || (n->op == Op::max_pool2d_grad && !pool_grad_tiles(*n))) continue;
    std::vector<const Node*> chain = epilogue_chain(*n, uses, plan);
    if (chain.empty()) continue;
    plan.fused_away.insert(n->result());  // lowered through the chain's last node
    for (const Node* u : chain) {
      plan.absorbed.insert(u);
      plan.fused_away.erase(u->result());
      if (u != chain.back()) plan.fused_away.insert(u->result());
    }
    stats.epilogue_ops += static_cast<int64_t>(chain.size());
    plan.epilogue[n.get()] = std::move(chain);
  }
  // Chain members and producers are lowered by the producer, not inlined anywhere.
  for (const auto& [producer, chain] : plan.epilogue) {
    plan.carriers.insert(producer->result());
    for (size_t i = 0; i + 1 < chain.size(); ++i) plan.carriers.insert(chain[i]->result());
  }
}

// Followers: the unary elementwise readers of the value a producer stores (its result, or its
// epilogue's end) when that value is read elsewhere too, so that the epilogue stopped there;
// each is computed from the stored value in the same loop and stored beside it (the GELU after
// a linear layer's bias, whose input the backward reads). A follower inlined into its own
// readers stays there.
void plan_followers(const Graph& graph, Uses& uses, FusionPlan& plan, LowerStats& stats) {
  for (const auto& n : graph.nodes) {
    if (!stores_followers(*n)) continue;
    auto chain = plan.epilogue.find(n.get());
    const Value* stored = chain == plan.epilogue.end() ? n->result() : chain->second.back()->result();
    for (const Node* u : uses.users[stored]) {
      const OpInfo& info = u->info();
      if (plan.absorbed.count(u) || !info.has(Elementwise) || info.has(Stochastic) || u->operands.size() != 1 ||
          u->results.size() != 1 || u->result()->type != stored->type || plan.fused_away.count(u->result()))
        continue;
      plan.followers[n.get()].push_back(u);
      plan.absorbed.insert(u);
      ++stats.epilogue_ops;
    }
  }
}

// The buffers `v` reads, as plan.leaves, without duplicates.
std::unordered_set<const Value*> leaf_set(const Value* v, const FusionPlan& plan) {
  std::vector<const Value*> ls;
  plan.leaves(v, ls);
  return {ls.begin(), ls.end()};
}

// Whether reduction `b` can run in `a`'s pass and gains by it: the same input shape, axes and
// loop strategy, a buffer of the input's size read by both, and all b reads computed before
// `a` runs (b then moves up to a, which its readers, all after b, do not mind).
bool siblings(const Node& a, const Node& b, const Uses& uses, const FusionPlan& plan) {
  const Value *x = a.operands[0], *y = b.operands[0];
  if (x->type.dims != y->type.dims || a.ints("axes") != b.ints("axes") || !shares_passes(b)) return false;
  std::unordered_set<const Value*> la = leaf_set(x, plan), lb = leaf_set(y, plan);
  bool shared = std::any_of(lb.begin(), lb.end(), [&](const Value* l) { return la.count(l) && numel(l->type) >= numel(x->type); });
  auto ready = [&](const Value* l) {
    return l->def->op == Op::parameter || l->def->op == Op::input || l->def->op == Op::constant || uses.position.at(l->def) < uses.position.at(&a);
  };
  return shared && std::all_of(lb.begin(), lb.end(), ready);
}

// Pairs of reductions over the same elements, each pair one kernel (reduce.cpp).
void plan_siblings(const Graph& graph, const Uses& uses, FusionPlan& plan, LowerStats& stats) {
  std::vector<const Node*> reductions;
  for (const auto& n : graph.nodes)
    if (shares_passes(*n)) reductions.push_back(n.get());
  for (size_t i = 0; i < reductions.size(); ++i) {
    const Node* a = reductions[i];
    if (plan.absorbed.count(a) || plan.sibling.count(a)) continue;
    for (size_t j = i + 1; j < reductions.size(); ++j) {
      const Node* b = reductions[j];
      if (plan.absorbed.count(b) || plan.sibling.count(b) || !siblings(*a, *b, uses, plan)) continue;
      plan.sibling[a] = b;
      plan.absorbed.insert(b);
      ++stats.sibling_reductions;
      break;
    }
  }
}

}  // namespace

FusionPlan plan_fusion(const Graph& graph, LowerStats& stats) {
  FusionPlan plan;
  Uses uses = uses_of(graph);
  plan_inlining(graph, uses, plan);
  plan_epilogues(graph, uses, plan, stats);
  plan_followers(graph, uses, plan, stats);
  plan_siblings(graph, uses, plan, stats);
  for (const Value* v : plan.fused_away)
    if (!plan.carriers.count(v)) ++stats.inlined;
  return plan;
}

void FusionPlan::leaves(const Value* v, std::vector<const Value*>& out) const {
  if (!fused_away.count(v) || carriers.count(v)) {
    out.push_back(v);
    return;
  }
  for (const Value* x : v->def->operands) leaves(x, out);
}

}  // namespace stag::lowering
