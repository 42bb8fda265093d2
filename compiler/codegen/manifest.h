#pragma once
/// The manifest of a compiled program: its buffers by name, type and role, as the JSON that
/// runtime/model.h reads (from memory after a JIT compile, or embedded in an AOT object).

#include <string>

#include "compiler/lower/kernel_ir.h"

namespace stag {

std::string manifest_json(const kir::Program& p);

}  // namespace stag
