#pragma once
/// The ONNX protobuf classes from Debian's libonnx-dev.

#include <onnx/onnx_pb.h>
