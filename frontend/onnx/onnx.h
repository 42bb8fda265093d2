#pragma once
/// ONNX import: reads a `.onnx` model (Debian's libonnx protobuf classes) into a verified stag
/// graph. Initializers of float type become parameters with their ONNX names, the others
/// constants; graph inputs become inputs; shape arithmetic folds at import time.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>
#include <string>

#include "ir/diag.h"
#include "ir/graph.h"
#include "ir/reference.h"

namespace stag::onnx_import {

struct Options {
  /// Binds every symbolic (named or unknown) dimension that `dims` does not name.
  std::optional<int64_t> batch;
  /// Binds symbolic dimensions by their ONNX name (`--dim N=8`).
  std::map<std::string, int64_t> dims;
  /// `KIND:OUTPUT:LABEL` adds the output `loss`: KIND (cross_entropy, mse, bce_with_logits) of
  /// the model's output OUTPUT against a new input LABEL (class indices i64[N] for
  /// cross_entropy, OUTPUT's type otherwise), so that the model trains and differentiates.
  std::string loss;
  /// Graph inputs taken as constants of these values (a conformance test's shape inputs).
  std::map<std::string, RefTensor> constant_inputs;
  /// When set, receives the graph inputs a converter needed as compile-time values.
  std::vector<std::string>* wanted_constants = nullptr;
};

/// The graph attribute naming the file a graph was imported from: commands read the
/// initial parameter values from it (initializers()).
inline constexpr const char* kSourceAttr = "onnx";

/// The domain of stag's own ops that ONNX 1.12 lacks (GELU): `stag export` writes them as
/// model-local functions of this domain, whose bodies other runtimes run; the importer reads
/// the op itself.
inline constexpr const char* kStagDomain = "ai.stag";

/// Imports `bytes` (the contents of `path`; external data is looked up beside it). User errors
/// (bad protobuf, unsupported ops, bad shapes) go to `diags` and give nullptr.
std::unique_ptr<Graph> import(const std::string& path, const std::string& bytes, const Options& options,
                              Diagnostics& diags);

/// The float initializers of the model imported from `path` (the values its parameters start
/// from), by ONNX name. Kept from the last import of that path; empty if there was none.
const std::map<std::string, RefTensor>& initializers(const std::string& path);

/// The float initializers of the ONNX model `bytes` (read from `path`; external data is looked
/// up beside it, never outside its directory) by their IR names, without importing its graph:
/// what `--init-from FILE.onnx` takes. Throws std::runtime_error naming the file and the problem.
std::map<std::string, RefTensor> read_initializers(const std::string& path, const std::string& bytes);

/// The name an ONNX value (input, initializer, output) or graph has in stag's IR: characters
/// the IR text cannot spell become '_', and a name that does not start with a letter or '_'
/// gains a leading '_' (`onnx::Conv_12` -> `onnx__Conv_12`, `13` -> `_13`). PyTorch's parameter
/// names (`conv1.weight`) are kept as they are.
std::string ir_name(const std::string& onnx_name);

/// Reads a serialized TensorProto (a conformance test's input_N.pb). Throws std::runtime_error
/// naming the problem; external data is looked up under `dir`.
RefTensor read_tensor(const std::string& bytes, const std::string& dir, std::string* name = nullptr);

}  // namespace stag::onnx_import
