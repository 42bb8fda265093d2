#pragma once
/// How LLVM compiles stag's code: O3, less the passes that find nothing to do in the functions
/// codegen writes (pass_runs() lists them), and the code generator's options (set_backend_defaults()).

#include <string_view>

namespace llvm {
class Function;
class PassInstrumentationCallbacks;
}  // namespace llvm

namespace stag {

/// Sets the LLVM code generator's options the way stag compiles (process-wide, before LLVM
/// reads STAG_LLVM_FLAGS, which may override them).
void set_backend_defaults();

/// Whether LLVM's optional pass `pass` (its class name, e.g. "GVNPass") runs on `f`.
bool pass_runs(std::string_view pass, const llvm::Function& f);

/// Makes the pass managers using `callbacks` ask pass_runs() before each optional pass on a
/// function or loop (required passes, and module and call-graph passes, always run).
void gate_passes(llvm::PassInstrumentationCallbacks& callbacks);

}  // namespace stag
