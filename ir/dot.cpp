#include "ir/dot.h"

#include <fmt/format.h>

#include <unordered_map>

namespace stag {

namespace {

// A DOT string literal: quotes and backslashes escaped.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string to_dot(const Graph& g, const std::vector<DotCluster>& clusters) {
  std::string out = fmt::format("digraph {} {{\n  rankdir=TB;\n  node [fontname=\"monospace\", fontsize=10];\n", quoted(g.name));
  std::unordered_map<const Node*, int> id;
  for (const auto& n : g.nodes) id[n.get()] = static_cast<int>(id.size());
  auto node_line = [&](const Node& n) {
    std::string results;
    for (const auto& r : n.results) results += fmt::format("%{}: {}\\n", r->name, to_string(r->type));
    bool source = n.op == Op::input || n.op == Op::parameter || n.op == Op::constant;
    return fmt::format("n{} [label={}, shape={}{}];\n", id[&n], quoted(fmt::format("{}\\n{}", n.info().name, results)),
                       source ? "ellipse" : "box", n.op == Op::parameter ? ", style=filled, fillcolor=lightyellow" : "");
  };
  std::unordered_map<std::string, int> cluster_of;
  for (size_t c = 0; c < clusters.size(); ++c)
    for (const auto& v : clusters[c].values) cluster_of.emplace(v, static_cast<int>(c));
  std::vector<std::string> bodies(clusters.size());
  for (const auto& n : g.nodes) {
    auto it = n->results.empty() ? cluster_of.end() : cluster_of.find(n->result()->name);
    if (it == cluster_of.end()) out += "  " + node_line(*n);
    else bodies[static_cast<size_t>(it->second)] += "    " + node_line(*n);
  }
  for (size_t c = 0; c < clusters.size(); ++c)
    if (!bodies[c].empty())
      out += fmt::format("  subgraph cluster_{} {{\n    label={};\n    style=filled;\n    color=lightblue;\n{}  }}\n", c,
                         quoted(clusters[c].label), bodies[c]);
  for (const auto& n : g.nodes)
    for (const Value* v : n->operands) out += fmt::format("  n{} -> n{};\n", id[v->def], id[n.get()]);
  for (size_t i = 0; i < g.outputs.size(); ++i) {
    out += fmt::format("  out{} [label={}, shape=house];\n", i, quoted("output " + g.outputs[i].name));
    out += fmt::format("  n{} -> out{};\n", id[g.outputs[i].value->def], i);
  }
  for (size_t i = 0; i < g.updates.size(); ++i) {
    out += fmt::format("  upd{} [label={}, shape=house];\n", i, quoted("update %" + g.updates[i].target->name));
    out += fmt::format("  n{} -> upd{};\n", id[g.updates[i].value->def], i);
  }
  return out + "}\n";
}

}  // namespace stag
