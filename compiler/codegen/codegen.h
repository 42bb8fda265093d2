#pragma once
/// Kernel IR to LLVM IR: one LLVM function per kernel, and one entry function per program
/// function with the C signature
///   void stag_<model>_<function>(void** params, void** inputs, void** outputs, void* workspace)
/// Generated code calls two runtime functions: stag_parallel_for (runtime/thread_pool.h) for
/// parallel kernels and stag_check_failed(code, value) when a data check fails; profiling builds
/// also call the stag_profile_* functions of runtime/profile.h.

#include <memory>
#include <string>
#include <string_view>

#include "compiler/lower/kernel_ir.h"

namespace llvm {
class LLVMContext;
class Module;
}  // namespace llvm

namespace stag {

/// The C symbol of a program function: `stag_<model>_<function>`, with characters that are
/// not letters, digits or `_` replaced by `_`.
std::string entry_symbol(const kir::Program& p, const std::string& function);

struct CodegenOptions {
  /// Bracket each entry function with stag_profile_enter/leave and each kernel call with
  /// stag_profile_begin/end (runtime/profile.h). Off, the code has no trace of profiling.
  bool profile = false;
  /// Emit part `part` of a program split over `parts` modules, to be optimized and compiled in
  /// parallel and linked together: each part defines its share of the kernels (external,
  /// uniquely named) and declares the rest; part 0 also has the entry functions and constants.
  int parts = 1, part = 0;
};

/// The function attribute on the functions codegen writes for kernels (kernel and GEMM functions,
/// not entry functions): the JIT chooses their optimization passes by it (compiler/jit/pipeline.h).
inline constexpr const char* kGeneratedAttribute = "stag-generated";

std::unique_ptr<llvm::Module> codegen(const kir::Program& p, llvm::LLVMContext& ctx, const CodegenOptions& options = {});

/// Adds `const char stag_<model>_manifest[]`, the program's manifest as a C string, so that
/// a program linked ahead of time carries its buffer names and types.
void embed_manifest(llvm::Module& m, const kir::Program& p, const std::string& json);

/// Adds the fixed names a standalone trainer's main (runtime/trainer_main.cpp) links against:
/// `stag_trainer_manifest`, `stag_trainer_function_names`, `stag_trainer_function_entries`
/// and `stag_trainer_function_count`; and `stag_trainer_initial_weights` (safetensors bytes the
/// trainer starts from, an imported model's initializers) with `stag_trainer_initial_weights_size`
/// (0: none, the model's own initialisation).
void embed_trainer_table(llvm::Module& m, const kir::Program& p, const std::string& json, std::string_view initial_weights = {});

}  // namespace stag
