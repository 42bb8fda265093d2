// Hoisting out of scans: a product of a per-step input and an invariant weight is computed for
// every step before the loop, as one product, and read per step (x_t W of a loop whose input
// projection was written in its body); a carry that only accumulates, c' = c + G, becomes a
// per-step output G summed once after the loop; a G that is a product A_t^T B_t is summed as one
// product of the stacked operands, sum_t A_t^T B_t = [A_0; A_1; ...]^T [B_0; B_1; ...] (a weight's
// gradient in a recurrent layer's backward: one [T*B, in]^T x [T*B, out] product instead of T
// small ones).

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "compiler/passes/pass.h"
#include "compiler/passes/splice.h"
#include "ir/builder.h"
#include "ir/scan.h"

namespace stag {

namespace {

// A stacked [T, ...] value seen from outside the loop: a per-step input's operand, or a new
// per-step output of the rebuilt scan.
struct Stacked {
  int operand = -1, ys = -1;
};

// How an accumulated G is summed over the steps after the loop.
struct Recipe {
  enum Kind { product, reduction, stack } kind = stack;
  Stacked a, b;  ///< product: A and B (sum_t A_t^T B_t); otherwise a is the stacked value
  Ints axes;     ///< reduction: the body's sum axes
  Type type;     ///< G's type
  size_t carry = 0;
};

struct Scan {
  Node& n;
  Graph& body;
  ScanShape s;
  std::vector<Value*> params;
  std::vector<Value*> new_ys;  ///< body values to stack, in the order of their new outputs
};

// The stacked form of body value v: a per-step input's operand or a new per-step output.
Stacked stacked(Scan& L, Value* v) {
  auto p = std::find(L.params.begin(), L.params.end(), v);
  auto k = static_cast<int64_t>(p - L.params.begin());
  if (p != L.params.end() && k >= L.s.carries && k < L.s.carries + L.s.xs) return {static_cast<int>(k), -1};
  auto y = std::find(L.new_ys.begin(), L.new_ys.end(), v);
  if (y == L.new_ys.end()) L.new_ys.push_back(v), y = L.new_ys.end() - 1;
  return {-1, static_cast<int>(y - L.new_ys.begin())};
}

bool is_param(const Scan& L, const Value* v) { return std::find(L.params.begin(), L.params.end(), v) != L.params.end(); }
bool invariant(const Scan& L, const Value* v) {
  auto p = std::find(L.params.begin(), L.params.end(), v);
  return p != L.params.end() && p - L.params.begin() >= L.s.carries + L.s.xs;
}

// The recipe of G: a transposed-A product of rank-2 step values, a sum, or G itself stacked.
Recipe recipe_of(Scan& L, Value* g, size_t carry) {
  Recipe r;
  r.type = g->type, r.carry = carry;
  Value* x = g;
  while (x->def->op == Op::reshape) x = x->def->operands[0];
  const Node& d = *x->def;
  if (d.op == Op::matmul && d.b("transpose_a") && !d.b("transpose_b") && d.operands[0]->type.rank() == 2 &&
      d.operands[1]->type.rank() == 2 && !invariant(L, d.operands[0]) && !invariant(L, d.operands[1]) && !d.in_bf16()) {
    r.kind = Recipe::product;
    r.a = stacked(L, d.operands[0]), r.b = stacked(L, d.operands[1]);
    return r;
  }
  if (d.op == Op::sum && !d.b("keepdims") && !invariant(L, d.operands[0])) {
    r.kind = Recipe::reduction, r.axes = d.ints("axes");
    if (r.axes.empty())
      for (size_t a = 0; a < d.operands[0]->type.rank(); ++a) r.axes.push_back(static_cast<int64_t>(a));
    r.a = stacked(L, d.operands[0]);
    return r;
  }
  r.a = stacked(L, g);
  return r;
}

// The accumulated part G of carry i when its new value is c + G and c is read nowhere else.
Value* accumulated(const Scan& L, size_t i, const std::map<const Value*, int>& uses) {
  Value* c = L.params[i];
  Value* next = L.body.outputs[i].value;
  auto count = [&](const Value* v) { auto it = uses.find(v); return it == uses.end() ? 0 : it->second; };
  if (!is_float(c->type.dtype) || next->def->op != Op::add || count(c) != 1 || count(next) != 1) return nullptr;
  Value *a = next->def->operands[0], *b = next->def->operands[1];
  Value* g = a == c ? b : b == c ? a : nullptr;
  if (!g || g == c || g->type != c->type || is_param(L, g)) return nullptr;
  return g;
}

Value* outside(const Node& scan, const std::vector<Value*>& results, size_t carries, Stacked s) {
  return s.operand >= 0 ? scan.operands[static_cast<size_t>(s.operand)] : results[carries + static_cast<size_t>(s.ys)];
}

// sum_t G_t after the loop, from the rebuilt scan's results.
Value* summed(Builder& b, const Scan& L, const Recipe& r, const std::vector<Value*>& results, size_t carries, size_t old_ys) {
  Value* a = outside(L.n, results, carries + old_ys, r.a);
  Value* out;
  if (r.kind == Recipe::product) {
    Value* bb = outside(L.n, results, carries + old_ys, r.b);
    auto rows = [&](Value* v) {
      const Dims& d = v->type.dims;
      return b.reshape({v}, {{"shape", Ints{d[0] * d[1], d[2]}}});
    };
    out = b.matmul({rows(a), rows(bb)}, {{"transpose_a", true}});
  } else {
    Ints axes{0};
    if (r.kind == Recipe::reduction)
      for (int64_t x : r.axes) axes.push_back(x + 1);
    out = b.sum({a}, {{"axes", axes}});
  }
  if (out->type.dims != r.type.dims) out = b.reshape({out}, {{"shape", Ints(r.type.dims)}});
  return out;
}

// The body without the hoisted carries' inputs and outputs, with the new per-step outputs.
void rebuild_body(Scan& L, const std::set<size_t>& hoisted) {
  std::vector<Output> outs;
  for (size_t i = 0; i < L.body.outputs.size(); ++i)
    if (!hoisted.count(i)) outs.push_back(L.body.outputs[i]);
  std::set<const Node*> gone;
  for (size_t i : hoisted) gone.insert(L.body.outputs[i].value->def), gone.insert(L.params[i]->def);
  for (size_t k = 0; k < L.new_ys.size(); ++k) outs.push_back({fmt::format("hoisted{}", k), L.new_ys[k], {}});
  L.body.outputs = std::move(outs);
  L.body.erase_nodes([&](const Node& m) { return gone.count(&m) > 0; });
}

bool hoist(Graph& g, Node& n, PassCounters& c) {
  Scan L{n, *n.body, ScanShape(n), n.body->inputs(), {}};
  if (L.s.axis != 0) return false;
  auto uses = use_counts(L.body);
  std::vector<Recipe> recipes;
  std::set<size_t> hoisted;
  for (size_t i = 0; i < static_cast<size_t>(L.s.carries); ++i)
    if (Value* acc = accumulated(L, i, uses)) recipes.push_back(recipe_of(L, acc, i)), hoisted.insert(i);
  if (recipes.empty()) return false;
  size_t old_ys = L.s.ys(L.body);
  rebuild_body(L, hoisted);
  std::vector<Value*> operands;
  for (size_t i = 0; i < n.operands.size(); ++i)
    if (!hoisted.count(i)) operands.push_back(n.operands[i]);
  size_t from = g.nodes.size();
  Builder b(g);
  b.set_loc(n.loc);
  int64_t carries = L.s.carries - static_cast<int64_t>(hoisted.size());
  NamedAttrs attrs{{"num_carries", carries}, {"num_xs", L.s.xs}, {"length", L.s.length}, {"reverse", L.s.reverse}};
  auto results = b.create(Op::scan, operands, attrs, {}, {}, n.body);
  std::vector<Value*> replace(n.results.size());
  size_t at = 0;
  for (size_t i = 0; i < static_cast<size_t>(L.s.carries); ++i)
    if (!hoisted.count(i)) replace[i] = results[at++];
  for (size_t k = 0; k < old_ys; ++k) replace[static_cast<size_t>(L.s.carries) + k] = results[at++];
  for (const Recipe& r : recipes)
    replace[r.carry] = b.add({n.operands[r.carry], summed(b, L, r, results, static_cast<size_t>(carries), old_ys)});
  splice(g, n, from, replace);
  c.add("accumulating carries hoisted out of scans", static_cast<int64_t>(recipes.size()));
  return true;
}

// A body product x_t W of a per-step input (rank 2) and an invariant matrix, or nullptr.
Node* step_product(const Scan& L) {
  for (auto& m : L.body.nodes) {
    if (m->op != Op::matmul || m->b("transpose_a")) continue;
    auto p = std::find(L.params.begin(), L.params.end(), m->operands[0]);
    auto k = p - L.params.begin();
    if (p == L.params.end() || k < L.s.carries || k >= L.s.carries + L.s.xs) continue;
    if (m->operands[0]->type.rank() == 2 && m->operands[1]->type.rank() == 2 && invariant(L, m->operands[1])) return m.get();
  }
  return nullptr;
}

// Every step's x_t W before the loop as one product of the stacked x, read as a new per-step input.
bool hoist_product(Graph& g, Node& n, PassCounters& c) {
  Scan L{n, *n.body, ScanShape(n), n.body->inputs(), {}};
  Node* m = L.s.axis == 0 ? step_product(L) : nullptr;
  if (!m) return false;
  size_t x = static_cast<size_t>(std::find(L.params.begin(), L.params.end(), m->operands[0]) - L.params.begin());
  size_t w = static_cast<size_t>(std::find(L.params.begin(), L.params.end(), m->operands[1]) - L.params.begin());
  size_t at = static_cast<size_t>(L.s.carries + L.s.xs);  // the new per-step input's place
  NamedAttrs mattrs;
  for (size_t i = 0; i < m->attrs.size(); ++i) mattrs.emplace_back(m->info().attrs[i].name, m->attrs[i]);
  // The new body input, placed among the inputs before the invariants.
  Node* in = L.body.append(Op::input, {}, {}, {m->result()->type}, {L.body.fresh_name()}, m->loc);
  auto first_invariant = at < L.params.size() ? L.params[at]->def : nullptr;
  auto it = std::find_if(L.body.nodes.begin(), L.body.nodes.end(), [&](const auto& q) { return q.get() == first_invariant; });
  if (first_invariant) std::rotate(it, L.body.nodes.end() - 1, L.body.nodes.end());
  L.body.replace_uses(m->result(), in->result());
  L.body.erase_nodes([&](const Node& q) { return &q == m; });
  size_t from = g.nodes.size();
  Builder b(g);
  b.set_loc(n.loc);
  std::vector<Value*> operands(n.operands);
  operands.insert(operands.begin() + static_cast<long>(at), b.matmul({n.operands[x], n.operands[w]}, mattrs));
  NamedAttrs attrs{{"num_carries", L.s.carries}, {"num_xs", L.s.xs + 1}, {"length", L.s.length}, {"reverse", L.s.reverse}};
  auto results = b.create(Op::scan, operands, attrs, {}, {}, n.body);
  splice(g, n, from, results);
  c.add("per-step products hoisted before scans");
  return true;
}

}  // namespace

bool hoist_scan(Graph& g, PassCounters& c) {
  bool changed = false;
  std::vector<Node*> scans;
  for (auto& n : g.nodes)
    if (n->op == Op::scan) scans.push_back(n.get());
  for (Node* n : scans) changed |= hoist(g, *n, c);
  // Products one at a time: each rebuilds its scan node.
  for (bool again = true; again;) {
    again = false;
    for (auto& n : g.nodes)
      if (n->op == Op::scan && hoist_product(g, *n, c)) {
        again = changed = true;
        break;
      }
  }
  return changed;
}

}  // namespace stag
