#pragma once
/// ONNX export: writes a stag graph's inference part (its outputs but `loss` and `metric.*`,
/// and the nodes they need) as an ONNX model (opset 17, IR version 8, Debian's libonnx 1.12)
/// that ONNX's checker accepts and stag's importer reads back to the same outputs.
/// Parameters become initializers under their stag names, inputs keep their (fixed) shapes.

#include <map>
#include <stdexcept>
#include <string>

#include "frontend/onnx/onnx.h"
#include "ir/graph.h"

namespace stag::onnx_export {

/// The opset the exporter writes (the newest ONNX 1.12 knows and the importer reads).
inline constexpr int64_t kOpset = 17;

/// stag ops ONNX 1.12 lacks (GELU) are model-local functions of stag's domain
/// (onnx_import::kStagDomain): other runtimes run their bodies, stag's importer the op itself.
using onnx_import::kStagDomain;

/// The graph cannot be exported; the message lists every op without an ONNX mapping with its
/// nodes (`scan (nodes %3, %9); cross_entropy (node %12)`).
struct ExportError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Each parameter's values as raw little-endian bytes of its element type (as safetensors
/// stores them), by parameter name.
using Weights = std::map<std::string, std::string>;

/// Throws ExportError naming every node of the inference part that ONNX cannot express.
void check_exportable(const Graph& g);

struct Exported {
  std::string bytes;    ///< the serialized ModelProto
  std::string summary;  ///< "inputs x f32[4,784]; outputs logits f32[4,10]; 12 nodes, 6 initializers"
};

/// The ONNX model of `g`'s inference part with `weights` as its initializers, checked by
/// onnx::checker::check_model. Throws ExportError (unsupported ops, a missing or mis-sized
/// weight).
Exported export_model(const Graph& g, const Weights& weights);

}  // namespace stag::onnx_export
