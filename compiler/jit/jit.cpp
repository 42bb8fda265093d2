// The LLVM back end: the host target machine, the O3 pipeline, ORC LLJIT and object emission.

#include "compiler/jit/jit.h"

#include <llvm/Support/CommandLine.h>
#include <llvm/Support/DynamicLibrary.h>
#include <llvm/Config/llvm-config.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Passes/StandardInstrumentations.h>
#include <llvm/Support/FileSystem.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/SmallVectorMemoryBuffer.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/TargetParser/Host.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "compiler/codegen/codegen.h"
#include "compiler/jit/object_cache.h"
#include "compiler/jit/pipeline.h"
#include "compiler/target/host.h"

namespace stag {

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

void init_llvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    // LLVM's own options (-debug-pass..., -time-passes) for whoever tunes the back end.
    set_backend_defaults();
    const char* argv[] = {"stag"};
    llvm::cl::ParseCommandLineOptions(1, argv, "", nullptr, "STAG_LLVM_FLAGS");
  });
}

// Position-independent, small code model: objects link into PIE executables, and the JIT
// uses the same settings.
std::unique_ptr<llvm::TargetMachine> host_machine() {
  init_llvm();
  std::string triple = llvm::sys::getProcessTriple(), error;
  const llvm::Target* target = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target) throw std::runtime_error("LLVM has no target for " + triple + ": " + error);
  llvm::TargetOptions options;
  std::unique_ptr<llvm::TargetMachine> tm(target->createTargetMachine(
      triple, host_info().cpu, host_feature_string(), options, llvm::Reloc::PIC_, std::nullopt,
      llvm::CodeGenOptLevel::Aggressive));
  if (!tm) throw std::runtime_error("cannot create a target machine for " + triple);
  return tm;
}

// Bump when optimize() or the object emission changes: cached objects of older ones are stale.
constexpr int kPipelineVersion = 4;

void optimize(llvm::Module& m, llvm::TargetMachine& tm) {
  m.setTargetTriple(tm.getTargetTriple().str());
  m.setDataLayout(tm.createDataLayout());
  for (auto& f : m) {
    if (f.isDeclaration()) continue;
    f.addFnAttr("target-cpu", tm.getTargetCPU());
    f.addFnAttr("target-features", tm.getTargetFeatureString());
  }
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PipelineTuningOptions tuning;
  tuning.LoopVectorization = true;
  tuning.SLPVectorization = true;
  // The vectorizer still interleaves (4 vectors an iteration); unrolling its loops further, or
  // the small loops it leaves, made the GRU step's optimized IR 1.6 times as long, ResNet's
  // compile 2.4 times as slow, and no step measurably faster (README).
  tuning.LoopUnrolling = false;
  // Functions marked optnone (the entry functions: codegen.cpp) are left as they are; LLVM's
  // -time-passes and -print-after from STAG_LLVM_FLAGS work; pipeline.h picks each function's passes.
  llvm::PassInstrumentationCallbacks instrumentation;
  llvm::StandardInstrumentations standard(m.getContext(), false);
  standard.registerCallbacks(instrumentation, &mam);
  gate_passes(instrumentation);
  llvm::PassBuilder pb(&tm, tuning, std::nullopt, &instrumentation);  // without the machine nothing vectorizes
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3).run(m, mam);
}

template <typename T>
T check(llvm::Expected<T> v, const char* what) {
  if (!v) throw std::runtime_error(std::string(what) + ": " + llvm::toString(v.takeError()));
  return std::move(*v);
}

void check(llvm::Error e, const char* what) {
  if (e) throw std::runtime_error(std::string(what) + ": " + llvm::toString(std::move(e)));
}

}  // namespace

struct JitProgram::Impl {
  std::unique_ptr<llvm::orc::LLJIT> jit;
  const kir::Program* program = nullptr;
  std::string name;
  std::vector<std::string> functions;
  std::vector<Entry> entries;
};

JitProgram::JitProgram() : impl_(std::make_unique<Impl>()) {}
JitProgram::~JitProgram() = default;

namespace {

// One part of a program (codegen.h), optimized and compiled to an object in its own context.
struct CompiledPart {
  llvm::SmallVector<char, 0> object;
  CompileTimes times;
  bool cached = false;
  std::exception_ptr error;
};

void compile_part(const kir::Program& p, const JitOptions& options, const ObjectCache& cache, int parts, int part, CompiledPart& out) {
  try {
    auto t0 = Clock::now();
    llvm::LLVMContext ctx;
    CodegenOptions codegen_options;
    codegen_options.profile = options.profile;
    codegen_options.parts = parts;
    codegen_options.part = part;
    auto module = codegen(p, ctx, codegen_options);
    out.times.codegen_ms = ms_since(t0);
    auto t1 = Clock::now();
    auto tm = host_machine();
    std::string key;
    if (cache.enabled()) {
      // Everything the object depends on besides the bitcode: LLVM, the target, our pipeline
      // (kPipelineVersion changes with optimize()) and LLVM flags from the environment.
      const char* flags = std::getenv("STAG_LLVM_FLAGS");
      key = ObjectCache::key(*module, fmt::format("llvm {} | {} | {} | {} | O{} | pipeline {} | flags {}", LLVM_VERSION_STRING,
                                                  tm->getTargetTriple().str(), tm->getTargetCPU().str(),
                                                  tm->getTargetFeatureString().str(), options.opt_level, kPipelineVersion, flags ? flags : ""));
      if (auto object = cache.load(key)) {
        out.object.assign(object->begin(), object->end());
        out.cached = true;
        return;
      }
    }
    if (options.opt_level > 0) optimize(*module, *tm);
    else {
      module->setTargetTriple(tm->getTargetTriple().str());
      module->setDataLayout(tm->createDataLayout());
    }
    out.times.optimize_ms = ms_since(t1);
    auto t2 = Clock::now();
    llvm::raw_svector_ostream os(out.object);
    llvm::legacy::PassManager pm;
    if (tm->addPassesToEmitFile(pm, os, nullptr, llvm::CodeGenFileType::ObjectFile))
      throw std::runtime_error("the target cannot emit objects");
    pm.run(*module);
    out.times.machine_ms = ms_since(t2);
    cache.store(key, std::string_view(out.object.data(), out.object.size()));
  } catch (...) {
    out.error = std::current_exception();
  }
}

int compile_threads(const kir::Program& p, int asked) {
  size_t kernels = 0;
  for (const auto& f : p.functions) kernels += f.kernels.size();
  if (asked <= 0)
    if (const char* env = std::getenv("STAG_COMPILE_THREADS")) asked = std::atoi(env);
  int threads = asked > 0 ? asked : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // A part's fixed cost (a context, a target machine, a GEMM function it may repeat) is
  // worth paying from a few dozen kernels up.
  return static_cast<int>(std::clamp<size_t>(kernels / 24, 1, static_cast<size_t>(std::min(threads, 16))));
}

}  // namespace

std::unique_ptr<JitProgram> JitProgram::compile(const kir::Program& p, const JitOptions& options) {
  std::unique_ptr<JitProgram> out(new JitProgram());
  init_llvm();
  // The kernels are split over modules that LLVM optimizes and compiles on all cores at once;
  // the JIT then links the objects.
  int parts = compile_threads(p, options.compile_threads);
  ObjectCache cache = options.cache_dir.empty() ? ObjectCache::from_environment()
                                                : ObjectCache(options.cache_dir == "off" ? "" : options.cache_dir);
  std::vector<CompiledPart> compiled(static_cast<size_t>(parts));
  {
    std::vector<std::thread> workers;
    for (int i = 1; i < parts; ++i) {
      try {
        workers.emplace_back(compile_part, std::cref(p), std::cref(options), std::cref(cache), parts, i,
                             std::ref(compiled[static_cast<size_t>(i)]));
      } catch (const std::system_error&) {
        compile_part(p, options, cache, parts, i, compiled[static_cast<size_t>(i)]);  // no thread to be had: here
      }
    }
    compile_part(p, options, cache, parts, 0, compiled[0]);
    for (auto& w : workers) w.join();
  }
  for (auto& c : compiled) {
    if (c.error) std::rethrow_exception(c.error);
    // The parts ran side by side: each phase counts as long as its slowest part.
    out->times_.codegen_ms = std::max(out->times_.codegen_ms, c.times.codegen_ms);
    out->times_.optimize_ms = std::max(out->times_.optimize_ms, c.times.optimize_ms);
    out->times_.machine_ms = std::max(out->times_.machine_ms, c.times.machine_ms);
    out->times_.parts += 1;
    out->times_.part_ms.push_back(c.times.total_ms());
    out->times_.cached_parts += c.cached;
  }

  auto t2 = Clock::now();
  auto jtmb = check(llvm::orc::JITTargetMachineBuilder::detectHost(), "detecting the host");
  jtmb.setCPU(host_info().cpu);
  jtmb.setRelocationModel(llvm::Reloc::PIC_);
  jtmb.setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  jtmb.addFeatures(llvm::SubtargetFeatures(host_feature_string()).getFeatures());
  auto jit = check(llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(std::move(jtmb)).create(), "creating the JIT");
  auto& dylib = jit->getMainJITDylib();
  // The runtime's entry points by address, then libm and libc from the process.
  llvm::orc::SymbolMap symbols;
  for (const auto& [name, address] : options.symbols)
    symbols[jit->mangleAndIntern(name)] = {llvm::orc::ExecutorAddr::fromPtr(address), llvm::JITSymbolFlags::Exported};
  check(dylib.define(llvm::orc::absoluteSymbols(std::move(symbols))), "defining runtime symbols");
  // glibc's vector math (codegen names its functions for the vectorizer).
  static const bool libmvec_loaded = !llvm::sys::DynamicLibrary::LoadLibraryPermanently("libmvec.so.1");
  (void)libmvec_loaded;
  dylib.addGenerator(check(llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
                               jit->getDataLayout().getGlobalPrefix()),
                           "searching the process"));
  for (size_t i = 0; i < compiled.size(); ++i) {
    auto& object = compiled[i].object;
    check(jit->addObjectFile(std::make_unique<llvm::SmallVectorMemoryBuffer>(std::move(object), fmt::format("{}.part{}.o", p.name, i), false)),
          "adding an object");
  }
  for (const auto& f : p.functions) {
    auto addr = check(jit->lookup(entry_symbol(p, f.name)), "linking");
    out->impl_->functions.push_back(f.name);
    out->impl_->entries.push_back(addr.toPtr<Entry>());
  }
  out->times_.machine_ms += ms_since(t2);
  out->impl_->jit = std::move(jit);
  return out;
}

JitProgram::Entry JitProgram::entry(const std::string& function) const {
  for (size_t i = 0; i < impl_->functions.size(); ++i)
    if (impl_->functions[i] == function) return impl_->entries[i];
  return nullptr;
}

std::string llvm_ir_text(const kir::Program& p, bool optimized) {
  llvm::LLVMContext ctx;
  auto module = codegen(p, ctx);
  if (optimized) {
    auto tm = host_machine();
    optimize(*module, *tm);
  }
  std::string text;
  llvm::raw_string_ostream os(text);
  module->print(os, nullptr);
  return os.str();
}

static void emit(const kir::Program& p, const std::string& manifest, llvm::raw_pwrite_stream& os,
                 llvm::CodeGenFileType type, CompileTimes& times, bool trainer_table = false,
                 std::string_view initial_weights = {}) {
  auto t0 = Clock::now();
  llvm::LLVMContext ctx;
  auto module = codegen(p, ctx);
  if (!manifest.empty()) embed_manifest(*module, p, manifest);
  if (trainer_table) embed_trainer_table(*module, p, manifest, initial_weights);
  times.codegen_ms = ms_since(t0);
  auto t1 = Clock::now();
  auto tm = host_machine();
  optimize(*module, *tm);
  times.optimize_ms = ms_since(t1);
  auto t2 = Clock::now();
  llvm::legacy::PassManager pm;
  if (tm->addPassesToEmitFile(pm, os, nullptr, type)) throw std::runtime_error("the target cannot emit this file type");
  pm.run(*module);
  times.machine_ms = ms_since(t2);
}

std::string assembly_text(const kir::Program& p) {
  llvm::SmallString<0> buffer;
  llvm::raw_svector_ostream os(buffer);
  CompileTimes times;
  emit(p, {}, os, llvm::CodeGenFileType::AssemblyFile, times);
  return std::string(buffer.str());
}

CompileTimes emit_object(const kir::Program& p, const std::string& manifest_json, const std::string& path,
                         bool trainer_table, std::string_view initial_weights) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec) throw std::runtime_error("cannot write " + path + ": " + ec.message());
  CompileTimes times;
  emit(p, manifest_json, os, llvm::CodeGenFileType::ObjectFile, times, trainer_table, initial_weights);
  return times;
}

}  // namespace stag
