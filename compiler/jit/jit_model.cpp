#include "compiler/jit/jit_model.h"

#include <chrono>
#include <ctime>
#include <iostream>

#include "compiler/codegen/manifest.h"
#include "compiler/lower/lower.h"
#include "runtime/checks.h"
#include "runtime/exchange.h"
#include "runtime/profile.h"
#include "runtime/thread_pool.h"

namespace stag {

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
double cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}
}  // namespace

CompiledModel compile_jit(const Graph& g, const JitModelOptions& options) { return compile_jit({{"forward", &g}}, options); }

CompiledModel compile_jit(const std::vector<std::pair<std::string, const Graph*>>& functions, const JitModelOptions& options) {
  CompiledModel c;
  auto t0 = Clock::now();
  c.program = compile_program(functions, options.passes, std::cerr);
  c.passes_ms = ms_since(t0);
  JitOptions jit;
  jit.opt_level = options.opt_level;
  jit.profile = options.profile;
  jit.symbols = {{"stag_parallel_for", reinterpret_cast<void*>(&stag_parallel_for)},
                 {"stag_check_failed", reinterpret_cast<void*>(&stag_check_failed)},
                 {"stag_exchange", reinterpret_cast<void*>(&stag_exchange)}};
  if (options.profile) {
    jit.symbols.emplace_back("stag_profile_enter", reinterpret_cast<void*>(&stag_profile_enter));
    jit.symbols.emplace_back("stag_profile_leave", reinterpret_cast<void*>(&stag_profile_leave));
    jit.symbols.emplace_back("stag_profile_begin", reinterpret_cast<void*>(&stag_profile_begin));
    jit.symbols.emplace_back("stag_profile_end", reinterpret_cast<void*>(&stag_profile_end));
  }
  c.code = JitProgram::compile(c.program, jit);
  JitProgram* code = c.code.get();
  auto t1 = Clock::now();
  double cpu1 = cpu_ms();
  c.model = std::make_unique<rt::Model>(rt::Manifest::parse(manifest_json(c.program)),
                                        [code](const std::string& f) { return code->entry(f); });
  c.model_ms = ms_since(t1);
  c.model_cpu_ms = cpu_ms() - cpu1;
  return c;
}

}  // namespace stag
