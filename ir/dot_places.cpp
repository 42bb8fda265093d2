// Where each node of a graph stands in its model, for the layer pictures of ir/dot_layers.cpp.

#include <unordered_set>

#include "ir/dot_parts.h"

namespace stag::dot {

namespace {

using NodeSet = std::unordered_set<const Node*>;

// The nodes the graph's outputs need, but its gradients (`grad.NAME`, which autodiff adds) and
// a train step's `nonfinite` flags (read from every gradient).
NodeSet forward_nodes(const Graph& g) {
  NodeSet seen;
  std::vector<const Node*> stack;
  for (const auto& o : g.outputs)
    if (o.name.rfind("grad.", 0) != 0 && o.name != "nonfinite") stack.push_back(o.value->def);
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (!seen.insert(n).second) continue;
    for (const Value* v : n->operands) stack.push_back(v->def);
  }
  return seen;
}

// A parameter of the model itself (ViT's `cls_token`), a layer of its own.
bool model_parameter(const Node& n, const NodeSet& forward) {
  return n.op == Op::parameter && n.loc.scope.empty() && forward.count(&n);
}

Phase phase_of(const Node& n, const NodeSet& forward) {
  if (forward.count(&n) || (n.op == Op::parameter && !n.loc.scope.empty())) return Phase::forward;
  return n.loc.known() ? Phase::backward : Phase::update;
}

// The longest dotted prefix `a` and `b` share: `h.0.attn` and `h.0.mlp` give `h.0`.
std::string common_scope(const std::string& a, const std::string& b) {
  size_t end = 0;
  for (size_t i = 0; i <= a.size() && i <= b.size(); ++i) {
    bool a_ends = i == a.size() || a[i] == '.', b_ends = i == b.size() || b[i] == '.';
    if (a_ends && b_ends) end = i;
    if (i == a.size() || i == b.size() || a[i] != b[i]) break;
  }
  return a.substr(0, end);
}

// The layers that claim an update node: those of the parameters it is computed for. Claims from
// several model-level layers (a global gradient norm) leave it to the optimizer: empty.
struct Claim {
  std::string scope;
  bool set = false;

  void add(const std::string& s) {
    scope = !set ? s : top_layer(scope) == top_layer(s) ? common_scope(scope, s) : "";
    set = true;
  }
};

// Each update node's layer, from the last node back: the updates claim their values, every
// update node its operands.
void claim_update_nodes(const Graph& g, Places& places) {
  std::unordered_map<const Node*, Claim> claims;
  for (const auto& u : g.updates)
    if (const Place& target = places[u.target->def]; !target.scope.empty()) claims[u.value->def].add(target.scope);
  for (auto it = g.nodes.rbegin(); it != g.nodes.rend(); ++it) {
    Place& p = places[it->get()];
    if (p.phase != Phase::update) continue;
    p.scope = claims[it->get()].scope;
    for (const Value* v : (*it)->operands)
      if (places[v->def].phase == Phase::update) claims[v->def].add(p.scope);
  }
}

}  // namespace

const char* phase_name(Phase p) {
  return p == Phase::forward ? "forward" : p == Phase::backward ? "backward" : "update";
}

std::string top_layer(const std::string& scope) {
  size_t dot = scope.find('.');
  if (dot == std::string::npos) return scope;
  size_t next = scope.find('.', dot + 1);
  std::string second = scope.substr(dot + 1, next == std::string::npos ? std::string::npos : next - dot - 1);
  bool index = !second.empty() && second.find_first_not_of("0123456789") == std::string::npos;
  return index ? scope.substr(0, next) : scope.substr(0, dot);
}

bool within(const std::string& scope, const std::string& name) {
  return scope.rfind(name, 0) == 0 && (scope.size() == name.size() || scope[name.size()] == '.');
}

Places place_nodes(const Graph& g) {
  NodeSet forward = forward_nodes(g);
  Places places;
  for (const auto& n : g.nodes) {
    places[n.get()] = {phase_of(*n, forward), model_parameter(*n, forward) ? n->result()->name : n->loc.scope};
  }
  claim_update_nodes(g, places);
  return places;
}

}  // namespace stag::dot
