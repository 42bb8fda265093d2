// Splicing a rewrite's new nodes in place of the node they replace (see splice.h).

#include "compiler/passes/splice.h"

#include <algorithm>

namespace stag {

void place_after(Graph& g, const Node& at, size_t from) {
  auto pos = std::find_if(g.nodes.begin(), g.nodes.end(), [&](const auto& m) { return m.get() == &at; });
  std::rotate(pos + 1, g.nodes.begin() + static_cast<long>(from), g.nodes.end());
}

void splice(Graph& g, Node& old, size_t from, const std::vector<Value*>& with) {
  place_after(g, old, from);
  for (size_t i = 0; i < with.size(); ++i) g.replace_uses(old.result(i), with[i]);
  g.erase_nodes([&](const Node& m) { return &m == &old; });
}

}  // namespace stag
