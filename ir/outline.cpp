// Outlining a loop body: the placeholder-dependent nodes move into a body graph whose inputs
// are the placeholders, then the outer values those nodes read.

#include "ir/outline.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace stag {

namespace {

std::string unused_name(const Graph& g, const std::string& base) {
  std::string name = base;
  for (int i = 1; g.has_name(name); ++i) name = fmt::format("{}_{}", base, i);
  return name;
}

// The nodes from `first` on that read a placeholder, directly or through another such node.
std::unordered_set<const Node*> dependent(const Graph& g, const OutlineSpec& s) {
  std::unordered_set<const Value*> inside(s.params.begin(), s.params.end());
  std::unordered_set<const Node*> moved;
  for (size_t i = s.first; i < g.nodes.size(); ++i) {
    const Node& n = *g.nodes[i];
    if (std::none_of(n.operands.begin(), n.operands.end(), [&](const Value* v) { return inside.count(v); })) continue;
    moved.insert(&n);
    for (const auto& r : n.results) inside.insert(r.get());
  }
  return moved;
}

struct Mover {
  Graph& body;
  std::unordered_map<const Value*, Value*> map;
  std::vector<Value*> invariants;

  // An outer value the body reads: an invariant input, made before any computing node so that
  // the body's inputs come first.
  void note(Value* v) {
    if (map.count(v) || v->def->op == Op::constant) return;
    map[v] = body.append(Op::input, {}, {}, {v->type}, {unused_name(body, v->name)}, v->def->loc)->result();
    invariants.push_back(v);
  }
  // The body's value for v; an outer constant is copied in where it is first read.
  Value* of(Value* v) {
    if (auto it = map.find(v); it != map.end()) return it->second;
    const Node& d = *v->def;
    return map[v] = body.append(Op::constant, {}, d.attrs, {v->type}, {body.fresh_name()}, d.loc)->result();
  }
  void copy(const Node& n) {
    std::vector<Value*> ops;
    for (Value* v : n.operands) ops.push_back(of(v));
    std::vector<Type> types;
    std::vector<std::string> names;
    for (const auto& r : n.results) types.push_back(r->type), names.push_back(body.fresh_name());
    Node* c = body.append(n.op, std::move(ops), n.attrs, types, names, n.loc);
    c->body = n.body;
    for (size_t i = 0; i < n.results.size(); ++i) map[n.result(i)] = c->result(i);
  }
};

}  // namespace

Outlined outline_body(Graph& g, const OutlineSpec& s) {
  auto moved = dependent(g, s);
  auto body = std::make_shared<Graph>("body");
  Mover m{*body, {}, {}};
  for (size_t i = 0; i < s.params.size(); ++i)
    m.map[s.params[i]] = body->append(Op::input, {}, {}, {s.params[i]->type}, {unused_name(*body, s.param_names[i])},
                                      s.params[i]->def->loc)->result();
  for (const auto& n : g.nodes)
    if (moved.count(n.get()))
      for (Value* v : n->operands)
        if (!moved.count(v->def)) m.note(v);
  for (Value* v : s.outs)
    if (!moved.count(v->def)) m.note(v);
  for (const auto& n : g.nodes)
    if (moved.count(n.get())) m.copy(*n);
  for (size_t i = 0; i < s.outs.size(); ++i) body->outputs.push_back({s.out_names[i], m.of(s.outs[i]), s.outs[i]->def->loc});
  std::unordered_set<const Value*> params(s.params.begin(), s.params.end());
  std::unordered_set<const Node*> made(moved);  // the body's nodes, and constants only they read
  for (size_t i = s.first; i < g.nodes.size(); ++i)
    if (g.nodes[i]->op == Op::constant) made.insert(g.nodes[i].get());
  for (const auto& n : g.nodes)
    if (!moved.count(n.get()))
      for (const Value* v : n->operands) made.erase(v->def);
  for (const auto& o : g.outputs) made.erase(o.value->def);
  for (const auto& u : g.updates) made.erase(u.value->def);
  g.erase_nodes([&](const Node& n) { return made.count(&n) || (n.op == Op::input && params.count(n.result())); });
  return {body, std::move(m.invariants)};
}

}  // namespace stag
