// libonnx's version converter, run where a malformed model cannot take stag down with it.
#pragma once

#include <string>

#include <onnx/onnx_pb.h>

namespace stag::onnx_import {

/// Converts `model` to `opset` with libonnx's version converter in a child process: its adapters
/// trust their input (Gemm 6 -> 7 reads its operands' first two sizes whether or not the model
/// gives them), so a model they crash on must end in an error, not a crash. Returns "" and
/// replaces `model`, or returns what went wrong.
std::string convert_version_isolated(onnx::ModelProto& model, int opset);

}  // namespace stag::onnx_import
