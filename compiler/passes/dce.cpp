// Dead-code elimination: removes nodes whose results nothing reads. Inputs and parameters
// stay: they are the compiled function's signature and the model's state. Bodies are swept
// too: their inputs are the body's parameters and their outputs its results, so both stay.

#include "compiler/passes/pass.h"

#include <set>

namespace stag {

bool dce(Graph& g, PassCounters& c) {
  bool changed = false;
  for (auto& n : g.nodes)
    if (n->body) changed |= dce(*n->body, c);
  // One sweep from the back: a node's operands are counted live before they are visited.
  std::map<const Value*, int> uses = use_counts(g);
  std::vector<const Node*> dead;
  for (auto it = g.nodes.rbegin(); it != g.nodes.rend(); ++it) {
    const Node& n = **it;
    if (n.op == Op::input || n.op == Op::parameter) continue;
    bool used = false;
    for (const auto& r : n.results) used |= uses[r.get()] > 0;
    if (used) continue;
    dead.push_back(&n);
    for (const Value* v : n.operands) --uses[v];
  }
  if (dead.empty()) return changed;
  std::set<const Node*> gone(dead.begin(), dead.end());
  g.erase_nodes([&](const Node& n) { return gone.count(&n) > 0; });
  c.add("nodes removed", static_cast<int64_t>(dead.size()));
  return true;
}

}  // namespace stag
