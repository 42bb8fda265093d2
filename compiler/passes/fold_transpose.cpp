// Transpose folding: matmul(transpose(x)) with the transpose swapping the last two dims
// becomes matmul(x) with the operand's transpose flag flipped; the kernel reads x in the
// other order instead of a materialized copy.

#include "compiler/passes/pass.h"

namespace stag {

namespace {

// Does `perm` swap the last two dims and keep the others?
bool swaps_last_two(const Ints& perm) {
  size_t r = perm.size();
  if (r < 2) return false;
  auto axis = [&](size_t d) { return perm[d] < 0 ? perm[d] + static_cast<int64_t>(r) : perm[d]; };
  for (size_t d = 0; d + 2 < r; ++d)
    if (axis(d) != static_cast<int64_t>(d)) return false;
  return axis(r - 2) == static_cast<int64_t>(r - 1) && axis(r - 1) == static_cast<int64_t>(r - 2);
}

}  // namespace

bool fold_transpose(Graph& g, PassCounters& c) {
  int64_t folded = 0;
  for (auto& n : g.nodes) {
    if (n->op != Op::matmul) continue;
    for (int side = 0; side < 2; ++side) {
      const Node* t = n->operands[side]->def;
      if (t->op != Op::transpose || !swaps_last_two(t->ints("perm"))) continue;
      n->operands[side] = t->operands[0];
      int flag = n->info().attr_index(side == 0 ? "transpose_a" : "transpose_b");
      n->attrs[flag] = !std::get<bool>(n->attrs[flag]);
      ++folded;
    }
  }
  if (folded) c.add("transposes folded into matmul", folded);
  return folded > 0;
}

}  // namespace stag
