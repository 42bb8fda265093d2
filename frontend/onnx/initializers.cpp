// The weights of an ONNX file without its graph: what `--init-from FILE.onnx` takes, so that a
// model stag cannot import (an unsupported op elsewhere in the graph) still gives its weights.
#include <fmt/format.h>

#include <filesystem>

#include "frontend/onnx/ctx.h"
#include "frontend/onnx/tensor.h"

namespace stag::onnx_import {

std::map<std::string, RefTensor> read_initializers(const std::string& path, const std::string& bytes) {
  onnx::ModelProto model;
  if (!model.ParseFromString(bytes) || !model.has_graph())
    throw std::runtime_error(fmt::format("{}: not an ONNX model: the protobuf is truncated or malformed", path));
  std::string dir = std::filesystem::path(path).parent_path().string();
  std::map<std::string, RefTensor> out;
  std::map<std::string, std::string> onnx_names;
  for (const auto& t : model.graph().initializer()) {
    // Only float initializers are weights; one of a type stag lacks (FLOAT16) matches no parameter.
    if (t.data_type() != onnx::TensorProto::FLOAT && t.data_type() != onnx::TensorProto::DOUBLE) continue;
    try {
      std::string name = ir_name(t.name());
      if (auto [it, fresh] = onnx_names.emplace(name, t.name()); !fresh)
        fail(fmt::format("the names '{}' and '{}' both become '{}' in stag's IR", it->second, t.name(), name));
      out[name] = to_ref(t, dir);
    } catch (const ConvertError& e) {
      throw std::runtime_error(fmt::format("{}: initializer '{}': {}", path, t.name(), e.what()));
    }
  }
  return out;
}

}  // namespace stag::onnx_import
