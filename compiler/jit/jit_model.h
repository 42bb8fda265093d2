#pragma once
/// A graph compiled in process and wrapped as a runtime model: the path `stag run` takes.

#include <memory>

#include "compiler/jit/jit.h"
#include "compiler/lower/kernel_ir.h"
#include "ir/graph.h"
#include "runtime/model.h"

namespace stag {

struct CompiledModel {
  kir::Program program;
  std::unique_ptr<JitProgram> code;
  std::unique_ptr<rt::Model> model;  ///< owns the parameters and the workspace
};

/// Lowers, compiles and links a verified graph against this process's runtime.
CompiledModel compile_jit(const Graph& g, int opt_level = 3);
/// The same for a program of several functions (see lower.h), e.g. forward and train_step.
CompiledModel compile_jit(const std::vector<std::pair<std::string, const Graph*>>& functions, int opt_level = 3);

}  // namespace stag
