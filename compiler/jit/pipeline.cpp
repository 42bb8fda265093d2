// The per-function choice of LLVM's optimization passes, as a gate in the pass instrumentation,
// and the code generator's options.

#include "compiler/jit/pipeline.h"

#include <llvm/ADT/Any.h>
#include <llvm/Analysis/LoopInfo.h>
#include <llvm/IR/Function.h>
#include <llvm/IR/PassInstrumentation.h>
#include <llvm/Support/CommandLine.h>

#include <algorithm>
#include <array>

#include "compiler/codegen/codegen.h"

namespace stag {

namespace {

// The function a function or loop pass is about to run on; null for module and call-graph passes.
const llvm::Function* function_of(const llvm::Any& ir) {
  if (const auto* f = llvm::any_cast<const llvm::Function*>(&ir)) return *f;
  if (const auto* l = llvm::any_cast<const llvm::Loop*>(&ir)) return (*l)->getHeader()->getParent();
  return nullptr;
}

}  // namespace

void set_backend_defaults() {
  auto& options = llvm::cl::getRegisteredOptions();
  // Loop strength reduction took a quarter of the machine-code time of the GRU step (a fifth
  // of the GEMM function's) and made no train step or product measurably faster: the kernels'
  // loops already address their buffers from the induction variable. It rewrites integer
  // arithmetic only, so no result changes.
  if (auto* lsr = options.lookup("disable-lsr")) *static_cast<llvm::cl::opt<bool>*>(lsr) = true;
}

bool pass_runs(std::string_view pass, const llvm::Function& f) {
  // What codegen writes is counted loops over buffers in alias scopes, calling nothing but a
  // GEMM function and the C library's math, branching on little but loop exits and bounds
  // checks, every loop already in the form the vectorizer wants (an i64 induction variable
  // from the start by 1). On it, these passes of O3 took two fifths of the optimizer's time on the GRU step and
  // changed no bit of its or the LSTM's checkpoints: control-flow cleanups for branchy code
  // (jump threading, value-range propagation, constraint elimination, unswitching,
  // speculation, call-site splitting), redundancy and dead-store elimination across blocks
  // (GVN, SCCP, bit-tracking and aggressive DCE, DSE, memcpy forming, merged load/store
  // motion, auto-init moves, idiom recognition), loop canonicalizations (induction-variable
  // rewriting, loop deletion, distribution, load elimination, sinking, loop-level
  // simplification) and the vector combiner. InstCombine, SROA, EarlyCSE, LICM, rotation,
  // the loop and SLP vectorizers keep running: they shape the arithmetic and its speed.
  static constexpr std::array<std::string_view, 28> kSkipped = {
      "ADCEPass", "AggressiveInstCombinePass", "BDCEPass", "CallSiteSplittingPass", "ConstraintEliminationPass",
      "CorrelatedValuePropagationPass", "DSEPass", "DivRemPairsPass", "Float2IntPass", "GVNPass", "IndVarSimplifyPass",
      "JumpThreadingPass", "LibCallsShrinkWrapPass", "LoopDeletionPass", "LoopDistributePass", "LoopIdiomRecognizePass",
      "LoopInstSimplifyPass", "LoopLoadEliminationPass", "LoopSimplifyCFGPass", "LoopSinkPass", "MemCpyOptPass",
      "MergedLoadStoreMotionPass", "MoveAutoInitPass", "SCCPPass", "SimpleLoopUnswitchPass", "SpeculativeExecutionPass",
      "TailCallElimPass", "VectorCombinePass"};
  if (!f.hasFnAttribute(kGeneratedAttribute)) return true;
  return std::find(kSkipped.begin(), kSkipped.end(), pass) == kSkipped.end();
}

void gate_passes(llvm::PassInstrumentationCallbacks& callbacks) {
  callbacks.registerShouldRunOptionalPassCallback([](llvm::StringRef pass, llvm::Any ir) {
    const llvm::Function* f = function_of(ir);
    return !f || pass_runs(std::string_view(pass.data(), pass.size()), *f);
  });
}

}  // namespace stag
