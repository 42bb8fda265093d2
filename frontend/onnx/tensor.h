#pragma once
/// ONNX element types and tensors as stag's (internal to frontend/onnx).

#include <string>
#include <string_view>

#include "frontend/onnx/onnx.h"
#include "frontend/onnx/proto.h"

namespace stag::onnx_import {

std::string elem_type_name(int32_t t);
/// The stag element type of an ONNX one; fails for types stag does not have.
DType to_dtype(int32_t t);
int32_t to_elem_type(DType t);
/// A valid stag type (no empty dimension, no overflow) or a failure naming `what`.
Type checked_type(DType dtype, const Dims& dims, std::string_view what);
/// The tensor's values; external data is read from under `dir` and never outside it.
RefTensor to_ref(const onnx::TensorProto& t, const std::string& dir);

}  // namespace stag::onnx_import
