// Merging scans: two scans over the same operands whose carries evolve alike run as one loop,
// the second's per-step outputs added to the first's. A scan's gradient re-runs the forward to
// stack each step's carries; merged, the forward runs once and stacks them itself.

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "compiler/passes/pass.h"
#include "compiler/passes/splice.h"
#include "ir/builder.h"
#include "ir/printer.h"
#include "ir/scan.h"

namespace stag {

namespace {

std::string key_of(const Node& n, const std::vector<const Value*>& operands) {
  std::string key = fmt::format("{}", static_cast<int>(n.op));
  for (const Value* v : operands) key += fmt::format(" {}", static_cast<const void*>(v));
  for (const Attr& a : n.attrs) key += " " + to_string(a);
  for (const auto& r : n.results) key += " " + to_string(r->type);
  if (n.body) key += " " + print(*n.body);
  return key;
}

bool same_scan(const Node& a, const Node& b) {
  return a.operands == b.operands && a.attrs == b.attrs && a.body != b.body;
}

// B's body values as values of A's body: matched node by node (op, attributes, operands), the
// nodes A lacks appended to it. Empty when B's carries do not come out as A's.
std::map<const Value*, Value*> map_body(Graph& a, const Graph& b, int64_t carries) {
  std::map<const Value*, Value*> map;
  auto ins_a = a.inputs(), ins_b = b.inputs();
  for (size_t i = 0; i < ins_b.size(); ++i) map[ins_b[i]] = ins_a[i];
  std::map<std::string, Node*> known;
  for (auto& n : a.nodes) {
    if (n->op == Op::input) continue;
    known.emplace(key_of(*n, {n->operands.begin(), n->operands.end()}), n.get());
  }
  for (const auto& n : b.nodes) {
    if (n->op == Op::input) continue;
    std::vector<Value*> ops;
    for (const Value* v : n->operands) ops.push_back(map.at(v));
    std::string key = key_of(*n, {ops.begin(), ops.end()});
    Node* m = known.count(key) ? known[key] : nullptr;
    if (!m) {
      std::vector<Type> types;
      std::vector<std::string> names;
      for (const auto& r : n->results) types.push_back(r->type), names.push_back(a.fresh_name());
      m = a.append(n->op, ops, n->attrs, types, names, n->loc);
      m->body = n->body;
      known.emplace(key, m);
    }
    for (size_t i = 0; i < n->results.size(); ++i) map[n->result(i)] = m->result(i);
  }
  for (int64_t i = 0; i < carries; ++i)
    if (map.at(b.outputs[static_cast<size_t>(i)].value) != a.outputs[static_cast<size_t>(i)].value) return {};
  return map;
}

// B's per-step outputs join A's; A's node is rebuilt with the extra results and both are replaced.
void merge(Graph& g, Node& a, Node& b, const std::map<const Value*, Value*>& map) {
  ScanShape s(a);
  size_t nc = static_cast<size_t>(s.carries);
  for (size_t k = nc; k < b.body->outputs.size(); ++k)
    a.body->outputs.push_back({fmt::format("merged{}", k - nc), map.at(b.body->outputs[k].value), {}});
  size_t from = g.nodes.size();
  Builder bld(g);
  bld.set_loc(a.loc);
  NamedAttrs attrs;
  for (size_t i = 0; i < a.attrs.size(); ++i) attrs.emplace_back(a.info().attrs[i].name, a.attrs[i]);
  auto results = bld.create(Op::scan, a.operands, attrs, {}, {}, a.body);
  place_after(g, a, from);
  for (size_t i = 0; i < a.results.size(); ++i) g.replace_uses(a.result(i), results[i]);
  for (size_t i = 0; i < nc; ++i) g.replace_uses(b.result(i), results[i]);
  for (size_t k = nc; k < b.results.size(); ++k) g.replace_uses(b.result(k), results[a.results.size() + k - nc]);
  g.erase_nodes([&](const Node& m) { return &m == &a || &m == &b; });
}

}  // namespace

bool merge_scans(Graph& g, PassCounters& c) {
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& a = *g.nodes[i];
    if (a.op != Op::scan) continue;
    for (size_t j = i + 1; j < g.nodes.size(); ++j) {
      Node& b = *g.nodes[j];
      if (b.op != Op::scan || !same_scan(a, b)) continue;
      auto body = a.body->clone();
      auto map = map_body(*body, *b.body, ScanShape(a).carries);
      if (map.empty()) continue;
      a.body = std::shared_ptr<Graph>(std::move(body));
      merge(g, a, b, map);
      c.add("scans merged");
      merge_scans(g, c);  // the node list changed: start over
      return true;
    }
  }
  return false;
}

}  // namespace stag
