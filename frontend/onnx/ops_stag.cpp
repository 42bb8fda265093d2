// Converters of stag's own ops (domain ai.stag): the ops ONNX 1.12 lacks, which `stag export`
// writes as model-local functions. Reading the op, not its body, gives back stag's own kernel.
#include "frontend/onnx/ctx.h"
#include "frontend/onnx/onnx.h"

namespace stag::onnx_import {

namespace {

template <bool Tanh>
std::vector<Value*> gelu(Ctx& c) {
  return {c.op(Op::gelu, {c.in(0)}, {{"approximate", std::string(Tanh ? "tanh" : "none")}})};
}

}  // namespace

const std::vector<OpEntry>& stag_ops() {
  static const std::vector<OpEntry> table = {{"Gelu", gelu<false>}, {"GeluTanh", gelu<true>}};
  return table;
}

Converter find_converter(const onnx::NodeProto& n) {
  if (n.domain() != kStagDomain) return n.domain().empty() || n.domain() == "ai.onnx" ? find_converter(n.op_type()) : nullptr;
  for (const OpEntry& e : stag_ops())
    if (e.name == n.op_type()) return e.convert;
  return nullptr;
}

}  // namespace stag::onnx_import
