// Algebraic simplification: a table of rewrite rules, one a line with the identity it uses.
// Only identities that hold exactly in floating point are here (x*1, not x*0, which is NaN
// for an infinite x; not exp(log(x)), which rounds, nor log(exp(x)), which overflows), up to
// the sign of a zero: x + 0 turns -0 into +0, which XLA's simplifier ignores too. Every rewrite is re-checked
// by the op's shape rule and must keep the node's type, so no rule can change a shape.

#include <algorithm>
#include <optional>
#include <set>

#include "compiler/passes/pass.h"

namespace stag {

namespace {

/// What a rule does: replace the node's result by an existing value, or turn the node into
/// another op in place (its result keeps its name and type).
struct Rewrite {
  Value* value = nullptr;
  std::optional<Op> op;
  std::vector<Value*> operands;
  std::vector<Attr> attrs;
};

using Match = std::optional<Rewrite>;

Match to(Value* v) { return Rewrite{v, std::nullopt, {}, {}}; }
Match become(Op op, std::vector<Value*> operands, std::vector<Attr> attrs = {}) {
  return Rewrite{nullptr, op, std::move(operands), std::move(attrs)};
}

const Node& def(const Value* v) { return *v->def; }
Value* arg(const Node& n, size_t i) { return n.operands[i]; }
Value* arg(const Value* v, size_t i) { return v->def->operands[i]; }

/// Is `v` a constant whose every element equals `x`?
bool is_const(const Value* v, double x) {
  if (def(v).op != Op::constant) return false;
  const Floats& f = def(v).floats("value");
  return std::all_of(f.begin(), f.end(), [&](double e) { return e == x; });
}

Ints normalized(const Ints& perm) {
  Ints p = perm;
  for (auto& a : p)
    if (a < 0) a += static_cast<int64_t>(p.size());
  return p;
}

bool is_identity(const Ints& perm) {
  Ints p = normalized(perm);
  for (size_t d = 0; d < p.size(); ++d)
    if (p[d] != static_cast<int64_t>(d)) return false;
  return true;
}

// transpose(transpose(x, inner), outer) = transpose(x, inner ∘ outer).
Ints compose(const Ints& inner, const Ints& outer) {
  Ints a = normalized(inner), b = normalized(outer), p(b.size());
  for (size_t d = 0; d < b.size(); ++d) p[d] = a[b[d]];
  return p;
}

bool is(const Value* v, Op op) { return def(v).op == op; }

/// An elementwise operand that is a broadcast_to may be read without it when the op's own
/// broadcasting gives the same result type: the first such operand, re-pointed at its source.
Match drop_broadcast(Node& n) {
  for (size_t i = 0; i < n.operands.size(); ++i)
    if (is(arg(n, i), Op::broadcast_to)) {
      std::vector<Value*> ops = n.operands;
      ops[i] = arg(arg(n, i), 0);
      return become(n.op, ops, n.attrs);
    }
  return std::nullopt;
}

struct Rule {
  Op op;
  const char* identity;
  Match (*apply)(Node& n);
};

// clang-format off
const Rule kRules[] = {
  {Op::add, "x + 0 = x",          [](Node& n) { return is_const(arg(n, 1), 0) ? to(arg(n, 0)) : std::nullopt; }},
  {Op::add, "0 + x = x",          [](Node& n) { return is_const(arg(n, 0), 0) ? to(arg(n, 1)) : std::nullopt; }},
  {Op::add, "x + (-y) = x - y",   [](Node& n) { return is(arg(n, 1), Op::neg) ? become(Op::sub, {arg(n, 0), arg(arg(n, 1), 0)}) : std::nullopt; }},
  {Op::sub, "x - 0 = x",          [](Node& n) { return is_const(arg(n, 1), 0) ? to(arg(n, 0)) : std::nullopt; }},
  {Op::sub, "x - (-y) = x + y",   [](Node& n) { return is(arg(n, 1), Op::neg) ? become(Op::add, {arg(n, 0), arg(arg(n, 1), 0)}) : std::nullopt; }},
  {Op::sub, "0 - x = -x",         [](Node& n) { return is_const(arg(n, 0), 0) ? become(Op::neg, {arg(n, 1)}) : std::nullopt; }},
  {Op::mul, "x * 1 = x",          [](Node& n) { return is_const(arg(n, 1), 1) ? to(arg(n, 0)) : std::nullopt; }},
  {Op::mul, "1 * x = x",          [](Node& n) { return is_const(arg(n, 0), 1) ? to(arg(n, 1)) : std::nullopt; }},
  {Op::mul, "x * -1 = -x",        [](Node& n) { return is_const(arg(n, 1), -1) ? become(Op::neg, {arg(n, 0)}) : std::nullopt; }},
  {Op::mul, "-1 * x = -x",        [](Node& n) { return is_const(arg(n, 0), -1) ? become(Op::neg, {arg(n, 1)}) : std::nullopt; }},
  {Op::mul, "x * x = square(x)",  [](Node& n) { return arg(n, 0) == arg(n, 1) ? become(Op::square, {arg(n, 0)}) : std::nullopt; }},
  {Op::mul, "(-x) * (-y) = x * y", [](Node& n) { return is(arg(n, 0), Op::neg) && is(arg(n, 1), Op::neg) ? become(Op::mul, {arg(arg(n, 0), 0), arg(arg(n, 1), 0)}) : std::nullopt; }},
  {Op::div, "x / 1 = x",          [](Node& n) { return is_const(arg(n, 1), 1) ? to(arg(n, 0)) : std::nullopt; }},
  {Op::pow, "x ^ 1 = x",          [](Node& n) { return is_const(arg(n, 1), 1) ? to(arg(n, 0)) : std::nullopt; }},
  {Op::pow, "x ^ 2 = square(x)",  [](Node& n) { return is_const(arg(n, 1), 2) ? become(Op::square, {arg(n, 0)}) : std::nullopt; }},
  {Op::neg, "-(-x) = x",          [](Node& n) { return is(arg(n, 0), Op::neg) ? to(arg(arg(n, 0), 0)) : std::nullopt; }},
  {Op::abs, "|(-x)| = |x|",       [](Node& n) { return is(arg(n, 0), Op::neg) ? become(Op::abs, {arg(arg(n, 0), 0)}) : std::nullopt; }},
  {Op::abs, "||x|| = |x|",        [](Node& n) { return is(arg(n, 0), Op::abs) ? to(arg(n, 0)) : std::nullopt; }},
  {Op::relu, "relu(relu(x)) = relu(x)", [](Node& n) { return is(arg(n, 0), Op::relu) ? to(arg(n, 0)) : std::nullopt; }},
  {Op::square, "(-x)^2 = x^2",    [](Node& n) { return is(arg(n, 0), Op::neg) ? become(Op::square, {arg(arg(n, 0), 0)}) : std::nullopt; }},
  {Op::cast, "cast<T>(x: T) = x", [](Node& n) { return to(arg(n, 0)); }},
  {Op::select, "select(c, x, x) = x", [](Node& n) { return arg(n, 1) == arg(n, 2) ? to(arg(n, 1)) : std::nullopt; }},
  {Op::reshape, "reshape(x: S, S) = x", [](Node& n) { return to(arg(n, 0)); }},
  {Op::reshape, "reshape(reshape(x)) = reshape(x)", [](Node& n) { return is(arg(n, 0), Op::reshape) || is(arg(n, 0), Op::flatten) ? become(Op::reshape, {arg(arg(n, 0), 0)}, n.attrs) : std::nullopt; }},
  {Op::flatten, "flatten(x) = x when nothing merges", [](Node& n) { return to(arg(n, 0)); }},
  {Op::transpose, "transpose(x, identity) = x", [](Node& n) { return is_identity(n.ints("perm")) ? to(arg(n, 0)) : std::nullopt; }},
  {Op::transpose, "transpose(transpose(x, p), q) = transpose(x, p∘q)", [](Node& n) {
     if (!is(arg(n, 0), Op::transpose)) return Match{};
     Ints p = compose(def(arg(n, 0)).ints("perm"), n.ints("perm"));
     return is_identity(p) ? to(arg(arg(n, 0), 0)) : become(Op::transpose, {arg(arg(n, 0), 0)}, {p}); }},
  {Op::broadcast_to, "broadcast_to(x: S, S) = x", [](Node& n) { return to(arg(n, 0)); }},
  {Op::broadcast_to, "broadcast_to(broadcast_to(x)) = broadcast_to(x)", [](Node& n) { return is(arg(n, 0), Op::broadcast_to) ? become(Op::broadcast_to, {arg(arg(n, 0), 0)}, n.attrs) : std::nullopt; }},
  {Op::dropout, "dropout(x, training=false) = x", [](Node& n) { return !n.b("training") || n.f("p") == 0 ? to(arg(n, 0)) : std::nullopt; }},
  {Op::concat, "concat(x) = x",   [](Node& n) { return n.operands.size() == 1 ? to(arg(n, 0)) : std::nullopt; }},
  {Op::slice, "x[all] = x",        [](Node& n) { return to(arg(n, 0)); }},
  {Op::sum, "sum over axes of size 1, kept = x", [](Node& n) { return to(arg(n, 0)); }},
  {Op::mean, "mean over axes of size 1, kept = x", [](Node& n) { return to(arg(n, 0)); }},
  // Broadcast folding: elementwise ops broadcast by themselves.
  {Op::add, "x + broadcast_to(y) = x + y", drop_broadcast},
  {Op::sub, "x - broadcast_to(y) = x - y", drop_broadcast},
  {Op::mul, "x * broadcast_to(y) = x * y", drop_broadcast},
  {Op::div, "x / broadcast_to(y) = x / y", drop_broadcast},
  {Op::maximum, "max(x, broadcast_to(y)) = max(x, y)", drop_broadcast},
  {Op::minimum, "min(x, broadcast_to(y)) = min(x, y)", drop_broadcast},
  {Op::select, "select(c, broadcast_to(x), y) = select(c, x, y)", drop_broadcast},
};
// clang-format on

// Applies a rewrite when it keeps the node's type; returns whether it did.
bool apply(Graph& g, Node& n, const Rewrite& r) {
  const Type& type = n.result()->type;
  if (r.value) {
    if (r.value->type != type || r.value == n.result()) return false;
    g.replace_uses(n.result(), r.value);
    return true;
  }
  std::vector<Type> operand_types, results;
  for (const Value* v : r.operands) operand_types.push_back(v->type);
  const OpInfo& info = op_info(*r.op);
  if (!check_arity(info, r.operands.size()).empty() || !check_attrs(info, r.attrs).empty()) return false;
  if (!infer_types(info, operand_types, r.attrs, {}, results).empty() || results.size() != 1 || results[0] != type) return false;
  if (*r.op == n.op && r.operands == n.operands && r.attrs == n.attrs) return false;
  n.op = *r.op;
  n.operands = r.operands;
  n.attrs = r.attrs;
  return true;
}

}  // namespace

bool simplify(Graph& g, PassCounters& c) {
  bool changed = false;
  std::set<const Node*> replaced;  // dead until dce removes them
  std::map<const Value*, int> uses = use_counts(g);
  for (const auto& n : g.nodes)
    if (n->results.size() == 1 && uses[n->result()] == 0) replaced.insert(n.get());
  // Nodes are in execution order, so one sweep sees a rewritten operand before its users;
  // a second sweep catches what in-place rewrites exposed.
  for (int sweep = 0; sweep < 8; ++sweep) {
    bool fired = false;
    for (auto& node : g.nodes)
      for (const Rule& rule : kRules) {
        if (node->op != rule.op || node->results.size() != 1 || replaced.count(node.get())) continue;
        Match m = rule.apply(*node);
        if (m && apply(g, *node, *m)) {
          c.add(rule.identity);
          fired = true;
          if (!m->op) {
            replaced.insert(node.get());
            break;
          }
        }
      }
    if (!fired) break;
    changed = true;
  }
  return changed;
}

}  // namespace stag
