#include "ir/analysis.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace stag {

namespace {
// Ops whose results hold their operand's values, rearranged: a bound on the result's uses
// is a bound on the operand.
bool moves_values(Op op) {
  switch (op) {
    case Op::reshape: case Op::flatten: case Op::transpose: case Op::broadcast_to: case Op::slice:
    case Op::concat: case Op::split: case Op::cast: return true;
    default: return false;
  }
}
}  // namespace

int64_t index_bound(const Graph& g, const Value* v, int64_t fallback) {
  int64_t bound = std::numeric_limits<int64_t>::max();
  std::vector<const Value*> work = {v};
  for (size_t w = 0; w < work.size() && w < 1024; ++w) {
    for (const auto& n : g.nodes)
      for (size_t i = 0; i < n->operands.size(); ++i) {
        if (n->operands[i] != work[w]) continue;
        if (n->op == Op::embedding && i == 1) bound = std::min(bound, n->operands[0]->type.dims[0]);
        if ((n->op == Op::cross_entropy || n->op == Op::nll) && i == 1) bound = std::min(bound, n->operands[0]->type.dims[1]);
        if (n->op == Op::embedding_grad && i == 1) bound = std::min(bound, n->i("num_embeddings"));
        if (n->op == Op::one_hot) bound = std::min(bound, n->i("num_classes"));
        if (moves_values(n->op))
          for (const auto& r : n->results) work.push_back(r.get());
      }
  }
  return bound == std::numeric_limits<int64_t>::max() ? fallback : bound;
}

std::map<const Value*, int> use_counts(const Graph& g) {
  std::map<const Value*, int> uses;
  for (const auto& n : g.nodes)
    for (const Value* v : n->operands) ++uses[v];
  for (const auto& o : g.outputs) ++uses[o.value];
  for (const auto& u : g.updates) ++uses[u.value], ++uses[u.target];
  return uses;
}

}  // namespace stag
