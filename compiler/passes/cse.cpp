// Common-subexpression elimination: a node with the op, operands, attributes and result
// types of an earlier node is replaced by it. Random draws are never merged: two dropout
// masks that happen to agree in every attribute are still meant to be two draws. A body is
// part of its node's key (by its text), and a body that draws random numbers is never merged.

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <unordered_map>

#include "compiler/passes/pass.h"
#include "ir/printer.h"

namespace stag {

namespace {

std::string key_of(const Node& n) {
  std::string key = fmt::format("{}", static_cast<int>(n.op));
  for (const Value* v : n.operands) key += fmt::format(" {}", static_cast<const void*>(v));
  for (const Attr& a : n.attrs) key += " " + to_string(a);
  for (const auto& r : n.results) key += " " + to_string(r->type);
  if (n.body) key += " " + print(*n.body);
  return key;
}

bool draws(const Node& n) {
  if (n.info().has(Stochastic)) return true;
  if (!n.body) return false;
  return std::any_of(n.body->nodes.begin(), n.body->nodes.end(), [](const auto& m) { return draws(*m); });
}

}  // namespace

bool cse(Graph& g, PassCounters& c) {
  std::unordered_map<std::string, const Node*> seen;
  std::vector<const Node*> merged;
  for (const auto& n : g.nodes) {
    if (n->op == Op::input || n->op == Op::parameter || draws(*n)) continue;
    auto [it, fresh] = seen.emplace(key_of(*n), n.get());
    if (fresh) continue;
    for (size_t i = 0; i < n->results.size(); ++i) g.replace_uses(n->result(i), it->second->result(i));
    merged.push_back(n.get());
  }
  if (merged.empty()) return false;
  std::set<const Node*> gone(merged.begin(), merged.end());
  g.erase_nodes([&](const Node& n) { return gone.count(&n) > 0; });
  c.add("nodes merged", static_cast<int64_t>(merged.size()));
  return true;
}

}  // namespace stag
