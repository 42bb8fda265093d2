#pragma once
/// The exporter's op table and what its writers see (internal to frontend/onnx).

#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "frontend/onnx/proto.h"
#include "ir/graph.h"

namespace stag::onnx_export {

/// One stag node being written: the ONNX names of its operands and results, and the graph
/// that receives its ONNX nodes.
struct Emit {
  onnx::GraphProto& graph;
  const Node& node;
  std::vector<std::string> in, out;
  /// The stag-domain functions (GELU) the model uses; the driver adds their definitions.
  std::set<std::string>& functions;

  /// Appends an ONNX node named after the stag result (`%7`, `%7/shape`).
  onnx::NodeProto& add(const std::string& op_type, const std::vector<std::string>& inputs,
                       const std::vector<std::string>& outputs, const std::string& domain = "");
  /// A fresh value name for a helper result of this node.
  std::string temp(std::string_view what) const { return out.at(0) + "/" + std::string(what); }
  /// A Constant node holding `data` as `type`; returns its output's name.
  std::string constant(const Type& type, const std::vector<double>& data, std::string_view what);
  std::string ints(const Ints& v, std::string_view what);
};

/// Writes one node. nullptr in the table: one ONNX node of the same operands and results, its
/// attributes copied by the row's attribute map.
using Writer = void (*)(Emit&);

/// Why a node of a mapped op still cannot be exported (dropout in training mode), or nullptr.
/// `used` holds every value the exported graph reads.
using Refusal = const char* (*)(const Node&, const std::set<const Value*>& used);

struct OpMapping {
  Op op;
  std::string_view onnx;  ///< the ONNX op (informative for ops that a writer expands)
  Writer write = nullptr;
  /// stag attribute -> ONNX attribute, for the plain rows; empty lists are left out (ONNX's
  /// default: every axis).
  std::vector<std::pair<std::string_view, std::string_view>> attrs = {};
  Refusal refuse = nullptr;
};

/// The row of `op`, or nullptr when ONNX has no counterpart.
const OpMapping* find_mapping(Op op);

/// Adds attribute `name` of `a`'s kind (bools and dtypes as ONNX ints, floats as f32).
void set_attr(onnx::NodeProto& n, std::string_view name, const Attr& a);
/// Fills `t`'s type and raw little-endian data from `data` (converted to `type`'s dtype).
void fill_tensor(onnx::TensorProto& t, const Type& type, const std::vector<double>& data);

/// The model-local function of a stag-domain op (`Gelu`, `GeluTanh`): its body in ONNX ops.
onnx::FunctionProto stag_function(const std::string& name);

}  // namespace stag::onnx_export
