// Products in bf16 where the graph asks for it (its `precision` attribute, set by --precision
// bf16 or a train section's `precision = bf16`): PyTorch's CPU autocast, as an attribute on
// each f32 matmul and convolution (their operands rounded to bf16, sums in f32); every other op,
// the weights and the optimizer's state stay f32.

#include "compiler/passes/pass.h"

namespace stag {

bool autocast_bf16(Graph& g, PassCounters& c) {
  const Attr* precision = g.attr("precision");
  if (!precision || std::get<std::string>(*precision) != "bf16") return false;
  bool changed = false;
  for (auto& n : g.nodes) {
    if (!n->info().has(MixedPrecision) || n->in_bf16() || n->result()->type.dtype != DType::f32) continue;
    n->set_precision("bf16");
    c.add("products in bf16");
    changed = true;
  }
  return changed;
}

}  // namespace stag
