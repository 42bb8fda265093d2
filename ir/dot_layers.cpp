// The layer picture of a large graph: a box for each layer and phase (ir/dot.h, to_dot_layers).

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "ir/dot.h"
#include "ir/dot_parts.h"

namespace stag {

using dot::Phase;

namespace {

// One box: the nodes of one layer (or model-level expression, input, the optimizer) in one phase.
struct Box {
  std::string key;  ///< `h.0`, `@45:23` (a model-level expression), `%idx` (an input), `optimizer`
  Phase phase;
  std::string title;
  int nodes = 0;
  int parameters = 0;
  int kernels = 0;
  double share = 0;
  int row = 0;
};

// Which box a node belongs to, by its layer; model-level nodes by the expression that made them.
std::string box_key(const Node& n, const dot::Place& p) {
  if (!p.scope.empty()) return dot::top_layer(p.scope);
  if (p.phase == Phase::update) return "optimizer";
  if (n.op == Op::input || !n.loc.known()) return "%" + n.result()->name;
  return fmt::format("@{}:{}", n.loc.line, n.loc.col);
}

// A box's first line: the layer, the model-level expression's op and line:column, or the input.
std::string box_title(const Node& n, const std::string& key, Phase phase, const std::string& forward_title) {
  std::string base = !forward_title.empty() ? forward_title
                     : key[0] == '@'        ? fmt::format("{} at {}", n.info().name, key.substr(1))
                     : key[0] == '%'        ? std::string(n.info().name) + " " + key
                                            : key;
  return phase == Phase::forward || key == "optimizer" ? base : base + " " + dot::phase_name(phase);
}

struct Boxes {
  std::vector<Box> boxes;
  std::map<std::pair<std::string, Phase>, int> by_key;
  std::unordered_map<const Node*, int> box_of;

  Box& at(int i) { return boxes[static_cast<size_t>(i)]; }
  const Box& at(int i) const { return boxes[static_cast<size_t>(i)]; }

  int box_for(const Node& n, const dot::Place& p) {
    std::string key = box_key(n, p);
    auto [it, fresh] = by_key.emplace(std::pair{key, p.phase}, static_cast<int>(boxes.size()));
    if (fresh) {
      auto fwd = by_key.find({key, Phase::forward});
      std::string forward_title = fwd == by_key.end() || p.phase == Phase::forward ? "" : at(fwd->second).title;
      boxes.push_back({key, p.phase, box_title(n, key, p.phase, forward_title)});
    }
    return it->second;
  }
};

// Each node's box, with the boxes' counts of nodes and parameters.
Boxes box_nodes(const Graph& g, const dot::Places& places) {
  Boxes b;
  for (const auto& n : g.nodes) {
    int i = b.box_for(*n, places.at(n.get()));
    b.box_of[n.get()] = i;
    ++b.at(i).nodes;
    if (n->op == Op::parameter) ++b.at(i).parameters;
  }
  return b;
}

// Rows top to bottom: a forward box below every forward box it reads; the backward and the update
// of a layer beside its forward; the optimizer's box on the first row.
void assign_rows(const Graph& g, const dot::Places& places, Boxes& b) {
  std::unordered_map<const Node*, int> depth;
  for (const auto& n : g.nodes) {
    int d = 0;
    for (const Value* v : n->operands)
      if (places.at(v->def).phase == Phase::forward)
        d = std::max(d, depth[v->def] + (b.box_of[v->def] != b.box_of[n.get()]));
    depth[n.get()] = d;
    Box& box = b.at(b.box_of[n.get()]);
    if (box.phase == Phase::forward) box.row = std::max(box.row, d);
  }
  for (Box& box : b.boxes) {
    auto fwd = b.by_key.find({box.key, Phase::forward});
    if (box.phase != Phase::forward) box.row = fwd == b.by_key.end() ? 0 : b.at(fwd->second).row;
  }
}

// Each kernel counts in the box that holds most of its nodes; one that writes an update, in the
// box of the update's value.
void count_kernels(const Graph& g, const std::vector<DotCluster>& clusters, Boxes& b) {
  std::unordered_map<std::string, int> box_of_value;
  for (const auto& n : g.nodes)
    for (const auto& r : n->results) box_of_value[r->name] = b.box_of[n.get()];
  for (const auto& u : g.updates) box_of_value[u.target->name] = b.box_of[u.value->def];
  for (const auto& c : clusters) {
    std::map<int, int> votes;
    for (const auto& v : c.values)
      if (auto it = box_of_value.find(v); it != box_of_value.end()) ++votes[it->second];
    if (votes.empty()) continue;
    auto most = std::max_element(votes.begin(), votes.end(), [](auto& x, auto& y) { return x.second < y.second; });
    Box& box = b.at(most->first);
    ++box.kernels;
    box.share += c.share;
  }
}

std::string plural(int n, const char* what) { return fmt::format("{} {}{}", n, what, n == 1 ? "" : "s"); }

std::string box_label(const Box& box) {
  std::string label = box.title + "\n" + plural(box.nodes, "node");
  // An update's parameters are the optimizer's state (Adam's moments, the step count).
  if (box.parameters)
    label += ", " + plural(box.parameters, box.phase == Phase::forward ? "parameter" : "state tensor");
  if (box.kernels) label += "\n" + plural(box.kernels, "kernel");
  if (box.share > 0) label += fmt::format(", {:.1f}% of the time", 100 * box.share);
  return label;
}

std::string box_style(const Box& box) {
  if (box.key[0] == '%' && box.nodes == 1) return "shape=ellipse";
  const char* fill = box.phase == Phase::forward    ? "aliceblue"
                     : box.phase == Phase::backward ? "mistyrose"
                                                    : "honeydew";
  return fmt::format("shape=box, style=\"rounded,filled\", fillcolor={}", fill);
}

// The values that cross from one box into another, by the pair of boxes.
using Crossings = std::map<std::pair<int, int>, std::set<const Value*>>;

Crossings crossings(const Graph& g, const Boxes& b) {
  Crossings out;
  for (const auto& n : g.nodes)
    for (const Value* v : n->operands) {
      int from = b.box_of.at(v->def), to = b.box_of.at(n.get());
      // A layer's parameters feed its own backward and update: no edge says more than the row. A
      // constant one box made and others reuse (autodiff's GELU coefficients) is not dataflow.
      bool own_parameter = v->def->op == Op::parameter && b.at(from).key == b.at(to).key;
      if (from != to && !own_parameter && v->def->op != Op::constant) out[{from, to}].insert(v);
    }
  return out;
}

// An edge from box to box, drawn downwards: one that climbs rows is written reversed.
std::string crossing_edge(const Boxes& b, int from, int to, const std::set<const Value*>& values) {
  const Box &src = b.at(from), &dst = b.at(to);
  std::string attrs;
  if (src.phase == Phase::forward && dst.phase != Phase::forward)
    attrs = "style=dashed, color=gray60";
  else if (src.phase == Phase::forward && values.size() == 1)
    attrs = "label=" + dot::quoted(to_string((*values.begin())->type));
  else if (values.size() > 1)
    attrs = fmt::format("label=\"{} values\"", values.size());
  if (src.row > dst.row)
    return fmt::format("  b{} -> b{} [dir=back{}{}];\n", to, from, attrs.empty() ? "" : ", ", attrs);
  return fmt::format("  b{} -> b{} [{}];\n", from, to, attrs);
}

std::string rows(const Boxes& b) {
  std::map<int, std::string> by_row;
  for (size_t i = 0; i < b.boxes.size(); ++i) by_row[b.boxes[i].row] += fmt::format(" b{};", i);
  std::string out;
  for (const auto& [row, names] : by_row) out += fmt::format("  {{ rank=same;{} }}\n", names);
  return out;
}

std::string outputs(const Graph& g, const Boxes& b) {
  std::string out;
  for (size_t i = 0; i < g.outputs.size(); ++i)
    out += fmt::format("  out{} [label={}, shape=house];\n  b{} -> out{};\n", i,
                       dot::quoted("output\n" + g.outputs[i].name), b.box_of.at(g.outputs[i].value->def), i);
  return out;
}

}  // namespace

std::string to_dot_layers(const Graph& g, const std::vector<DotCluster>& clusters) {
  dot::Places places = dot::place_nodes(g);
  Boxes b = box_nodes(g, places);
  assign_rows(g, places, b);
  count_kernels(g, clusters, b);
  std::string out =
      dot::graph_header(g.name) + "  nodesep=0.4;\n  ranksep=0.5;\n  edge [fontname=\"sans-serif\", fontsize=9];\n";
  for (size_t i = 0; i < b.boxes.size(); ++i)
    out += fmt::format("  b{} [label={}, {}];\n", i, dot::quoted(box_label(b.boxes[i])), box_style(b.boxes[i]));
  out += rows(b);
  for (const auto& [ends, values] : crossings(g, b)) out += crossing_edge(b, ends.first, ends.second, values);
  return out + outputs(g, b) + "}\n";
}

std::vector<std::string> dot_layers(const Graph& g) {
  dot::Places places = dot::place_nodes(g);
  std::vector<std::string> layers;
  bool optimizer = false;
  for (const auto& n : g.nodes) {
    const dot::Place& p = places.at(n.get());
    if (p.scope.empty())
      optimizer |= p.phase == Phase::update;
    else if (std::find(layers.begin(), layers.end(), dot::top_layer(p.scope)) == layers.end())
      layers.push_back(dot::top_layer(p.scope));
  }
  if (optimizer) layers.push_back("optimizer");
  return layers;
}

}  // namespace stag
