// One layer of a graph in full, its borders as notes (ir/dot.h, to_dot_scope).

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

#include "ir/dot.h"
#include "ir/dot_parts.h"

namespace stag {

using dot::Phase;

namespace {

struct ScopeView {
  const Graph& g;
  std::string scope;
  std::vector<Phase> phases;
  dot::Places places;
  std::unordered_map<const Node*, int> id;
  std::string out;

  bool inside(const Node& n) const {
    const dot::Place& p = places.at(&n);
    if (std::find(phases.begin(), phases.end(), p.phase) == phases.end()) return false;
    if (scope == "optimizer") return p.phase == Phase::update && p.scope.empty();
    return !p.scope.empty() && dot::within(p.scope, scope);
  }

  // Where a node outside the picture stands, as a note says it: `h.1 forward`, `optimizer`.
  std::string where(const Node& n) const {
    const dot::Place& p = places.at(&n);
    if (p.scope.empty())
      return p.phase == Phase::update ? "optimizer" : std::string("the model ") + dot::phase_name(p.phase);
    bool same_layer = dot::within(p.scope, scope);
    return (same_layer ? scope : dot::top_layer(p.scope)) + " " + dot::phase_name(p.phase);
  }

  std::string node_line(const Node& n) {
    return fmt::format("n{} [label={}, {}];\n", id.at(&n), dot::quoted(dot::node_label(n)), dot::node_style(n));
  }

  // The phase's nodes as a cluster, the kernels' nodes among them as clusters inside it.
  void phase_cluster(Phase phase, const std::vector<DotCluster>& clusters,
                     const std::unordered_map<std::string, int>& kernel_of) {
    std::map<int, std::string> kernels;
    std::string loose;
    for (const auto& n : g.nodes) {
      if (!id.count(n.get()) || places.at(n.get()).phase != phase) continue;
      auto k = kernel_of.find(n->result()->name);
      (k == kernel_of.end() ? loose : kernels[k->second]) += "      " + node_line(*n);
    }
    if (loose.empty() && kernels.empty()) return;
    out += fmt::format("  subgraph cluster_{0} {{\n    label={1};\n    style=dashed;\n    color=gray50;\n{2}",
                       dot::phase_name(phase), dot::quoted(scope + " " + dot::phase_name(phase)), loose);
    for (const auto& [k, body] : kernels)
      out += fmt::format(
          "    subgraph cluster_k{}_{} {{\n      label={};\n      style=filled;\n      color=lightblue;\n{}    }}\n", k,
          dot::phase_name(phase), dot::quoted(clusters[static_cast<size_t>(k)].label), body);
    out += "  }\n";
  }

  // Edges inside the layer; one between phases does not rank its nodes, so the phases stand side
  // by side. Values crossing the border are gathered by the place they come from or go to.
  void edges(std::map<std::string, std::vector<std::pair<const Value*, const Node*>>>& from,
             std::map<std::string, std::vector<std::pair<const Value*, const Node*>>>& to) {
    for (const auto& n : g.nodes)
      for (const Value* v : n->operands) {
        bool in_def = id.count(v->def), in_use = id.count(n.get());
        if (in_def && in_use) {
          bool across = places.at(v->def).phase != places.at(n.get()).phase;
          out += fmt::format("  n{} -> n{}{};\n", id.at(v->def), id.at(n.get()),
                             across ? " [constraint=false, color=gray60]" : "");
        } else if (in_use)
          from[where(*v->def)].push_back({v, n.get()});
        else if (in_def)
          to[where(*n)].push_back({v, n.get()});
      }
  }

  // A note for each place beyond the border, naming up to three of the values that cross it.
  void notes(const std::map<std::string, std::vector<std::pair<const Value*, const Node*>>>& crossing, bool incoming) {
    int i = 0;
    std::string ranked;
    for (const auto& [place, uses] : crossing) {
      std::vector<std::string> names;
      for (const auto& [v, _] : uses)
        if (std::find(names.begin(), names.end(), "%" + v->name) == names.end()) names.push_back("%" + v->name);
      std::string shown =
          names.size() <= 3
              ? fmt::format("{}", fmt::join(names, ", "))
              : fmt::format("{}, ... ({} values)", fmt::join(names.begin(), names.begin() + 3, ", "), names.size());
      std::string note = fmt::format("{}{}", incoming ? "i" : "o", i++);
      ranked += " " + note + ";";
      out += fmt::format("  {} [label={}, shape=note, fontcolor=gray30, color=gray60];\n", note,
                         dot::quoted((incoming ? "from " : "to ") + place + "\n" + shown));
      std::set<std::pair<int, std::string>> drawn;
      for (const auto& [v, user] : uses) {
        int inner = id.at(incoming ? user : v->def);
        if (drawn.insert({inner, note}).second)
          out += incoming ? fmt::format("  {} -> n{} [color=gray60];\n", note, inner)
                          : fmt::format("  n{} -> {} [color=gray60, weight=0];\n", inner, note);
      }
    }
    // Where values come from above the layer, where they go below it.
    if (!ranked.empty()) out += fmt::format("  {{ rank={};{} }}\n", incoming ? "min" : "max", ranked);
  }

  // The graph's outputs and updates that the layer computes, as houses.
  void sinks() {
    for (size_t i = 0; i < g.outputs.size(); ++i)
      if (id.count(g.outputs[i].value->def))
        out += fmt::format("  out{0} [label={1}, shape=house];\n  n{2} -> out{0};\n", i,
                           dot::quoted("output\n" + g.outputs[i].name), id.at(g.outputs[i].value->def));
    for (size_t i = 0; i < g.updates.size(); ++i)
      if (id.count(g.updates[i].value->def))
        out += fmt::format("  upd{0} [label={1}, shape=house];\n  n{2} -> upd{0};\n", i,
                           dot::quoted("update\n%" + g.updates[i].target->name), id.at(g.updates[i].value->def));
  }
};

std::unordered_map<std::string, int> kernel_of_values(const std::vector<DotCluster>& clusters) {
  std::unordered_map<std::string, int> out;
  for (size_t c = 0; c < clusters.size(); ++c)
    for (const auto& v : clusters[c].values) out.emplace(v, static_cast<int>(c));
  return out;
}

// `h.0` (its forward and backward), `h.0:update`, `optimizer` (its update nodes).
std::pair<std::string, std::vector<Phase>> scope_and_phases(const std::string& name) {
  size_t colon = name.find(':');
  std::string scope = name.substr(0, colon);
  if (scope == "optimizer") return {scope, {Phase::update}};
  if (colon == std::string::npos) return {scope, {Phase::forward, Phase::backward}};
  for (Phase p : {Phase::forward, Phase::backward, Phase::update})
    if (name.substr(colon + 1) == dot::phase_name(p)) return {scope, {p}};
  throw std::invalid_argument(fmt::format("'{}': a layer's phase is forward, backward or update", name));
}

}  // namespace

std::string to_dot_scope(const Graph& g, const std::string& name, const std::vector<DotCluster>& clusters) {
  auto [scope, phases] = scope_and_phases(name);
  ScopeView view{g,      scope,
                 phases, dot::place_nodes(g),
                 {},     dot::graph_header(g.name + " " + name) + "  newrank=true;\n  nodesep=0.15;\n  ranksep=0.3;\n"};
  // A layer's update is a chain for each parameter, side by side: drawn left to right, they stack.
  // (The optimizer's own nodes are one long sum of squares: top to bottom.)
  if (phases == std::vector<Phase>{Phase::update} && scope != "optimizer") view.out += "  rankdir=LR;\n";
  for (const auto& n : g.nodes)
    if (view.inside(*n)) view.id[n.get()] = static_cast<int>(view.id.size());
  if (view.id.empty())
    throw std::invalid_argument(fmt::format("{} has no layer '{}' with {} nodes; its layers: {}", g.name, scope,
                                            dot::phase_name(phases[0]), fmt::join(dot_layers(g), ", ")));
  auto kernel_of = kernel_of_values(clusters);
  for (Phase p : {Phase::forward, Phase::backward, Phase::update}) view.phase_cluster(p, clusters, kernel_of);
  std::map<std::string, std::vector<std::pair<const Value*, const Node*>>> from, to;
  view.edges(from, to);
  view.notes(from, true);
  view.notes(to, false);
  view.sinks();
  return view.out + "}\n";
}

}  // namespace stag
