#pragma once
/// Compiles kernel programs to native code for the host CPU: in process with ORC LLJIT, or to
/// an object file for linking ahead of time. Also renders the LLVM IR and assembly stages.

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "compiler/lower/kernel_ir.h"

namespace stag {

struct CompileTimes {
  double codegen_ms = 0;   ///< kernel IR to LLVM IR
  double optimize_ms = 0;  ///< LLVM's O3 pipeline
  double machine_ms = 0;   ///< instruction selection and linking (JIT) or object emission
  int parts = 0;           ///< modules compiled side by side (JIT)
  int cached_parts = 0;    ///< of them, found in the object cache (object_cache.h)
  /// Each part's codegen, optimize and machine-code time (JIT; linking not counted): how evenly
  /// the split shared the work.
  std::vector<double> part_ms;
  double total_ms() const { return codegen_ms + optimize_ms + machine_ms; }
};

struct JitOptions {
  /// Runtime functions the generated code calls, by C name (stag_parallel_for,
  /// stag_check_failed). Everything else (libm) resolves from the process.
  std::vector<std::pair<std::string, void*>> symbols;
  int opt_level = 3;
  /// Instrument kernel calls for runtime/profile.h (see CodegenOptions); then the stag_profile_*
  /// functions must be among `symbols`.
  bool profile = false;
  /// Threads LLVM compiles on (the program is split into as many modules); 0: all cores, fewer
  /// for small programs.
  int compile_threads = 0;
  /// The persistent object cache's directory (object_cache.h); empty: from the environment
  /// (STAG_JIT_CACHE), "off": none.
  std::string cache_dir;
};

/// A program compiled in process. Entry points stay valid while this object lives.
class JitProgram {
 public:
  /// Throws std::runtime_error when LLVM fails (an internal error, never a user error).
  static std::unique_ptr<JitProgram> compile(const kir::Program& p, const JitOptions& options);
  ~JitProgram();

  using Entry = void (*)(void** params, void** inputs, void** outputs, void* workspace);
  /// The entry point of a program function ("init", "forward", ...).
  Entry entry(const std::string& function) const;
  const CompileTimes& times() const { return times_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  CompileTimes times_;
  JitProgram();
};

/// The program's LLVM IR, before or after the O3 pipeline for the host.
std::string llvm_ir_text(const kir::Program& p, bool optimized);
/// The host assembly of the optimized program.
std::string assembly_text(const kir::Program& p);
/// Writes a relocatable, position-independent object file for the host, with the manifest
/// embedded (see codegen.h): with `trainer_table`, a trainer's fixed names and the initial
/// weights it starts from (safetensors bytes; empty: the model's own initialisation). Returns the times.
CompileTimes emit_object(const kir::Program& p, const std::string& manifest_json, const std::string& path,
                         bool trainer_table = false, std::string_view initial_weights = {});

}  // namespace stag
