#include "compiler/jit/jit_model.h"

#include <iostream>

#include "compiler/codegen/manifest.h"
#include "compiler/lower/lower.h"
#include "runtime/checks.h"
#include "runtime/thread_pool.h"

namespace stag {

CompiledModel compile_jit(const Graph& g, int opt_level, const PassOptions& passes) {
  return compile_jit({{"forward", &g}}, opt_level, passes);
}

CompiledModel compile_jit(const std::vector<std::pair<std::string, const Graph*>>& functions, int opt_level,
                          const PassOptions& passes) {
  CompiledModel c;
  c.program = compile_program(functions, passes, std::cerr);
  JitOptions options;
  options.opt_level = opt_level;
  options.symbols = {{"stag_parallel_for", reinterpret_cast<void*>(&stag_parallel_for)},
                     {"stag_check_failed", reinterpret_cast<void*>(&stag_check_failed)}};
  c.code = JitProgram::compile(c.program, options);
  JitProgram* code = c.code.get();
  c.model = std::make_unique<rt::Model>(rt::Manifest::parse(manifest_json(c.program)),
                                        [code](const std::string& f) { return code->entry(f); });
  return c;
}

}  // namespace stag
