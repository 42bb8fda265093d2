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
  double passes_ms = 0;  ///< the optimizer's passes and the lowering to kernels (code->times() has the rest)
  double model_ms = 0;   ///< the runtime model's manifest, parameters and workspace
  double model_cpu_ms = 0;  ///< this process's CPU time (all threads, kernel's included) for model_ms
};

struct JitModelOptions {
  int opt_level = 3;
  /// Instrument the kernels for runtime/profile.h: a Profiler then sees every kernel call.
  bool profile = false;
  /// The optimizer's pipeline (the default unless it says otherwise); dumps go to stderr.
  PassOptions passes;
};

/// Optimizes, lowers, compiles and links a verified graph against this process's runtime.
CompiledModel compile_jit(const Graph& g, const JitModelOptions& options = {});
/// The same for a program of several functions (see lower.h), e.g. forward and train_step.
CompiledModel compile_jit(const std::vector<std::pair<std::string, const Graph*>>& functions,
                          const JitModelOptions& options = {});

}  // namespace stag
