#pragma once
/// A graph compiled in process and wrapped as a runtime model: the path `stag run` takes.

#include <memory>

#include "compiler/jit/jit.h"
#include "compiler/lower/kernel_ir.h"
#include "compiler/passes/pass.h"
#include "ir/graph.h"
#include "runtime/model.h"

namespace stag {

struct CompiledModel {
  kir::Program program;
  std::unique_ptr<JitProgram> code;
  std::unique_ptr<rt::Model> model;  ///< owns the parameters and the workspace
};

/// Optimizes (the default pipeline unless `passes` says otherwise), lowers, compiles and
/// links a verified graph against this process's runtime. Pass dumps go to stderr.
CompiledModel compile_jit(const Graph& g, int opt_level = 3, const PassOptions& passes = {});
/// The same for a program of several functions (see lower.h), e.g. forward and train_step.
CompiledModel compile_jit(const std::vector<std::pair<std::string, const Graph*>>& functions, int opt_level = 3,
                          const PassOptions& passes = {});

}  // namespace stag
