#pragma once
/// What ir/dot.cpp and ir/dot_layers.cpp share: DOT text, node labels, and where each node of a
/// graph stands in its model (forward, backward or update; which layer). Internal to ir/.

#include <string>
#include <unordered_map>

#include "ir/graph.h"

namespace stag::dot {

/// A DOT string literal whose '\n's Graphviz draws as line breaks.
std::string quoted(const std::string& s);
/// The op on one line, then each result as `%name: type`.
std::string node_label(const Node& n);
/// Box, ellipse, or a yellow ellipse for a parameter.
std::string node_style(const Node& n);
/// The header every picture starts with: the graph's name, ranked top to bottom, its fonts.
std::string graph_header(const std::string& name);

enum class Phase { forward, backward, update };
const char* phase_name(Phase p);

/// Where a node stands: its phase and the layer path that made it (`h.0.attn`; empty at the
/// model's own level, and for the optimizer's nodes that serve every parameter).
struct Place {
  Phase phase = Phase::forward;
  std::string scope;
};
using Places = std::unordered_map<const Node*, Place>;

/// Every node's place: forward what the outputs (but gradients) need, backward the other nodes
/// from the model source (autodiff keeps their forward node's location), update the rest (the
/// optimizer's). An update node belongs to the layer of the parameters it is computed for; one that
/// serves parameters of several model-level layers (a global gradient norm) to none.
Places place_nodes(const Graph& g);

/// `h.0.attn.in_proj` -> `h.0`, `lm_head` -> `lm_head`: the model-level layer (and its repeat index).
std::string top_layer(const std::string& scope);

/// True when `scope` is `name` or inside it (`h.0.attn` is in `h.0` and in `h`, not in `h.00`).
bool within(const std::string& scope, const std::string& name);

}  // namespace stag::dot
