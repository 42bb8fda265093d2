#include "ir/analysis.h"

#include <algorithm>
#include <limits>

namespace stag {

int64_t index_bound(const Graph& g, const Value* v, int64_t fallback) {
  int64_t bound = std::numeric_limits<int64_t>::max();
  for (const auto& n : g.nodes)
    for (size_t i = 0; i < n->operands.size(); ++i) {
      if (n->operands[i] != v) continue;
      if (n->op == Op::embedding && i == 1) bound = std::min(bound, n->operands[0]->type.dims[0]);
      if ((n->op == Op::cross_entropy || n->op == Op::nll) && i == 1) bound = std::min(bound, n->operands[0]->type.dims[1]);
      if (n->op == Op::one_hot) bound = std::min(bound, n->i("num_classes"));
    }
  return bound == std::numeric_limits<int64_t>::max() ? fallback : bound;
}

}  // namespace stag
