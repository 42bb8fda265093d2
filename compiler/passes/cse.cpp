// Common-subexpression elimination: a node with the op, operands, attributes and result
// types of an earlier node is replaced by it. Random draws are never merged: two dropout
// masks that happen to agree in every attribute are still meant to be two draws.

#include <fmt/format.h>

#include <set>
#include <unordered_map>

#include "compiler/passes/pass.h"

namespace stag {

namespace {

std::string key_of(const Node& n) {
  std::string key = fmt::format("{}", static_cast<int>(n.op));
  for (const Value* v : n.operands) key += fmt::format(" {}", static_cast<const void*>(v));
  for (const Attr& a : n.attrs) key += " " + to_string(a);
  for (const auto& r : n.results) key += " " + to_string(r->type);
  return key;
}

}  // namespace

bool cse(Graph& g, PassCounters& c) {
  std::unordered_map<std::string, const Node*> seen;
  std::vector<const Node*> merged;
  for (const auto& n : g.nodes) {
    if (n->op == Op::input || n->op == Op::parameter || n->info().has(Stochastic)) continue;
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
