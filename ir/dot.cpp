#include "ir/dot.h"

#include "ir/dot_parts.h"

#include <fmt/format.h>

#include <unordered_map>

namespace stag {

namespace dot {

// A DOT string literal: quotes and backslashes escaped, and each '\n' written as DOT's own
// line break (the two characters \n), which Graphviz draws as a new line.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '"' || c == '\\') out += std::string("\\") + c;
    else out += c;
  }
  return out + "\"";
}

// One line for the op, then one for each result: "%name: type".
std::string node_label(const Node& n) {
  std::string label(n.info().name);
  for (const auto& r : n.results) label += fmt::format("\n%{}: {}", r->name, to_string(r->type));
  return label;
}

std::string node_style(const Node& n) {
  if (n.op == Op::parameter) return "shape=ellipse, style=filled, fillcolor=lightyellow";
  if (n.op == Op::input || n.op == Op::constant) return "shape=ellipse";
  return "shape=box";
}

std::string graph_header(const std::string& name) {
  return fmt::format("digraph {} {{\n  rankdir=TB;\n  fontname=\"sans-serif\";\n  node [fontname=\"monospace\", fontsize=10];\n",
                     quoted(name));
}

}  // namespace dot

namespace {

using dot::node_label;
using dot::node_style;
using dot::quoted;

// Which cluster draws each node: kernels' by the name of the node's first result, else -1.
using ClusterOf = std::unordered_map<const Node*, int>;

ClusterOf cluster_of(const Graph& g, const std::vector<DotCluster>& clusters) {
  std::unordered_map<std::string, int> by_value;
  for (size_t c = 0; c < clusters.size(); ++c)
    for (const auto& v : clusters[c].values) by_value.emplace(v, static_cast<int>(c));
  ClusterOf out;
  for (const auto& n : g.nodes) {
    auto it = n->results.empty() ? by_value.end() : by_value.find(n->result()->name);
    out[n.get()] = it == by_value.end() ? -1 : it->second;
  }
  return out;
}

struct Writer {
  const Graph& g;
  std::unordered_map<const Node*, int> id;
  std::string out;

  std::string node_line(const Node& n) {
    return fmt::format("n{} [label={}, {}];\n", id[&n], quoted(node_label(n)), node_style(n));
  }

  // Parameters in one box, so a train step's weights and optimizer state do not scatter through
  // it. (rank=min would line them up at the top, but Graphviz 2.42 then fails on GPT's train
  // step with "trouble in init_rank".)
  void parameters() {
    std::string body;
    int count = 0;
    for (const auto& n : g.nodes)
      if (n->op == Op::parameter) body += "    " + node_line(*n), ++count;
    if (count == 0) return;
    out += fmt::format("  subgraph cluster_parameters {{\n    label={};\n    style=dashed;\n    color=gray50;\n{}  }}\n",
                       quoted(fmt::format("parameters ({})", count)), body);
  }

  // Kernel clusters first, then the nodes no cluster holds (inputs on the first rank).
  void nodes(const std::vector<DotCluster>& clusters, const ClusterOf& where) {
    std::vector<std::string> bodies(clusters.size());
    std::string inputs;
    for (const auto& n : g.nodes) {
      if (n->op == Op::parameter) continue;  // parameters() drew it
      int c = where.at(n.get());
      if (c >= 0) bodies[static_cast<size_t>(c)] += "    " + node_line(*n);
      else if (n->op == Op::input) inputs += "    " + node_line(*n);
      else out += "  " + node_line(*n);
    }
    if (!inputs.empty()) out += "  {\n    rank=source;\n" + inputs + "  }\n";
    for (size_t c = 0; c < clusters.size(); ++c)
      if (!bodies[c].empty())
        out += fmt::format("  subgraph cluster_{} {{\n    label={};\n    style=filled;\n    color=lightblue;\n{}  }}\n", c,
                           quoted(clusters[c].label), bodies[c]);
  }

  void edges() {
    for (const auto& n : g.nodes)
      for (const Value* v : n->operands) out += fmt::format("  n{} -> n{};\n", id[v->def], id[n.get()]);
  }

  // Outputs and updates as houses on the last rank.
  void sinks() {
    std::string ranks;
    for (size_t i = 0; i < g.outputs.size(); ++i) {
      out += fmt::format("  out{} [label={}, shape=house];\n  n{} -> out{};\n", i, quoted("output\n" + g.outputs[i].name),
                         id[g.outputs[i].value->def], i);
      ranks += fmt::format(" out{};", i);
    }
    for (size_t i = 0; i < g.updates.size(); ++i) {
      out += fmt::format("  upd{} [label={}, shape=house];\n  n{} -> upd{};\n", i,
                         quoted("update\n%" + g.updates[i].target->name), id[g.updates[i].value->def], i);
      ranks += fmt::format(" upd{};", i);
    }
    if (!ranks.empty()) out += fmt::format("  {{ rank=sink;{} }}\n", ranks);
  }
};

// Graphviz's crossing minimisation runs for many minutes on a few thousand nodes (GPT's train
// step); fewer passes of it draw such a graph in about a minute.
std::string layout_limits(const Graph& g) {
  constexpr size_t kLarge = 400;
  return g.nodes.size() > kLarge ? "  mclimit=0.2;\n  nslimit=2;\n  remincross=false;\n" : "";
}

}  // namespace

std::string to_dot(const Graph& g, const std::vector<DotCluster>& clusters) {
  Writer w{g, {}, dot::graph_header(g.name) + "  newrank=true;\n"};
  w.out += layout_limits(g);
  for (const auto& n : g.nodes) w.id[n.get()] = static_cast<int>(w.id.size());
  w.parameters();
  w.nodes(clusters, cluster_of(g, clusters));
  w.edges();
  w.sinks();
  return w.out + "}\n";
}

}  // namespace stag
