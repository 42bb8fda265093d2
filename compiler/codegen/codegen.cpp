// Emits LLVM IR for the kernel IR. Variables live in allocas (SROA/mem2reg promote them);
// each statement's expression DAG is emitted once per node.

#include "compiler/codegen/codegen.h"

#include <llvm/ADT/SetVector.h>
#include <llvm/IR/DiagnosticInfo.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/MDBuilder.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Transforms/Utils/ModuleUtils.h>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "compiler/codegen/gemm.h"
#include "compiler/target/host.h"

namespace stag {

using namespace kir;

std::string entry_symbol(const Program& p, const std::string& function) {
  std::string s = "stag_" + p.name + "_" + function;
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') c = '_';
  return s;
}

namespace {

// Whether batch offsets step by one stride (kir::Gemm::sum_batches' dot products step their
// rows and lines from the first batch's).
bool evenly_spaced(const std::vector<int64_t>& offsets) {
  for (size_t b = 2; b < offsets.size(); ++b)
    if (offsets[b] - offsets[b - 1] != offsets[1] - offsets[0]) return false;
  return true;
}

class Codegen {
 public:
  Codegen(const Program& p, llvm::LLVMContext& ctx, const CodegenOptions& options)
      : p_(p), options_(options), ctx_(ctx), m_(std::make_unique<llvm::Module>(p.name, ctx)), b_(ctx) {
    // Reassociation lets LLVM vectorize reductions (partial sums in vector lanes) and contraction
    // fuses multiply-adds; both are fixed at compile time, so results stay deterministic. No
    // assumptions about NaN or infinity are made.
    llvm::FastMathFlags fmf;
    fmf.setAllowReassoc();
    fmf.setAllowContract();
    b_.setFastMathFlags(fmf);
  }

  std::unique_ptr<llvm::Module> run() {
    ptr_ = llvm::PointerType::get(ctx_, 0);
    i64_ = b_.getInt64Ty();
    auto* body_ty = llvm::FunctionType::get(b_.getVoidTy(), {ptr_, i64_, i64_}, false);
    parallel_for_ = m_->getOrInsertFunction("stag_parallel_for",
                                            llvm::FunctionType::get(b_.getVoidTy(), {i64_, i64_, i64_, ptr_, ptr_}, false));
    check_failed_ = m_->getOrInsertFunction("stag_check_failed", llvm::FunctionType::get(b_.getVoidTy(), {i64_, i64_}, false));
    exchange_ = m_->getOrInsertFunction("stag_exchange", llvm::FunctionType::get(b_.getVoidTy(), {i64_, i64_, ptr_, ptr_, i64_}, false));
    if (options_.profile) {
      auto* event = llvm::FunctionType::get(b_.getVoidTy(), {i64_}, false);
      profile_enter_ = m_->getOrInsertFunction("stag_profile_enter", event);
      profile_leave_ = m_->getOrInsertFunction("stag_profile_leave", event);
      profile_begin_ = m_->getOrInsertFunction("stag_profile_begin", event);
      profile_end_ = m_->getOrInsertFunction("stag_profile_end", event);
    }
    // Constants are addressed by the entry functions only, which live in part 0.
    if (options_.part == 0)
      for (size_t i = 0; i < p_.buffers.size(); ++i)
        if (p_.buffers[i].kind == BufKind::Const) const_globals_[static_cast<int>(i)] = constant_global(p_.buffers[i]);
    // Kernels that differ only in the buffers they touch (the layers of a stack, the steps of
    // an unrolled RNN) share one function: each call passes its own buffer pointers.
    Sharing sharing = share_kernels();
    std::vector<int> part_of = assign_parts(sharing);
    std::vector<llvm::Function*> fns(sharing.unique.size(), nullptr);
    size_t flat = 0;
    for (size_t f = 0; f < p_.functions.size(); ++f) {
      std::vector<Call> calls;
      for (size_t i = 0; i < p_.functions[f].kernels.size(); ++i, ++flat) {
        int u = sharing.unique_of[flat];
        if (u < 0) {  // a split point: a call into the runtime, no kernel function
          calls.push_back(Call{nullptr, sharing.buffers[flat]});
          continue;
        }
        if (!fns[u]) fns[u] = kernel(*sharing.unique[u], sharing.buffers[flat], body_ty, static_cast<int>(f), u, part_of[u] == options_.part);
        calls.push_back(Call{fns[u], sharing.buffers[flat]});
      }
      if (options_.part == 0) entry(static_cast<int>(f), calls);
    }
    // The vector variants must survive until the loop vectorizer looks for them; the ones it
    // does not use are removed with the rest of llvm.compiler.used's dead declarations.
    if (!used_vector_fns_.empty())
      llvm::appendToCompilerUsed(*m_, std::vector<llvm::GlobalValue*>(used_vector_fns_.begin(), used_vector_fns_.end()));
    std::string err;
    llvm::raw_string_ostream os(err);
    if (llvm::verifyModule(*m_, &os)) throw std::logic_error("codegen produced invalid LLVM IR: " + os.str());
    return std::move(m_);
  }

 private:
  llvm::Type* scalar_type(DType t) {
    switch (t) {
      case DType::f32: return b_.getFloatTy();
      case DType::f64: return b_.getDoubleTy();
      case DType::i32: return b_.getInt32Ty();
      case DType::i64: return b_.getInt64Ty();
      case DType::b8: return b_.getInt1Ty();
    }
    return nullptr;
  }
  // Booleans are one byte in memory.
  llvm::Type* memory_type(DType t) { return t == DType::b8 ? b_.getInt8Ty() : scalar_type(t); }

  llvm::GlobalVariable* constant_global(const Buffer& buf) {
    std::vector<llvm::Constant*> elems;
    llvm::Type* et = memory_type(buf.type.dtype);
    for (double v : buf.data) {
      if (is_float(buf.type.dtype)) elems.push_back(llvm::ConstantFP::get(et, v));
      else elems.push_back(llvm::ConstantInt::get(et, static_cast<uint64_t>(static_cast<int64_t>(v)), true));
    }
    auto* at = llvm::ArrayType::get(et, elems.size());
    auto* g = new llvm::GlobalVariable(*m_, at, true, llvm::GlobalValue::PrivateLinkage,
                                       llvm::ConstantArray::get(at, elems), "const." + buf.name);
    g->setAlignment(llvm::Align(64));
    return g;
  }

  // ---------------------------------------------------------------- kernels

  struct Call {
    llvm::Function* fn;
    std::vector<int> buffers;  ///< the kernel's buffers, in the order of its pointer slots
  };

  // Buffers a kernel touches, in first-use order. Expressions are DAGs: each node once.
  static void collect(const E& e, std::vector<int>& out, std::set<const Expr*>& seen) {
    if (!seen.insert(e.get()).second) return;
    if (e->kind == EK::Load && std::find(out.begin(), out.end(), e->buffer) == out.end()) out.push_back(e->buffer);
    for (const auto& a : e->args) collect(a, out, seen);
  }
  static void collect(const Stmt& s, std::vector<int>& out) {
    std::set<const Expr*> seen;
    if (s.index) collect(s.index, out, seen);
    if (s.value) collect(s.value, out, seen);
    if (s.kind == SK::Store && std::find(out.begin(), out.end(), s.buffer) == out.end()) out.push_back(s.buffer);
    for (const auto& b : s.body) collect(b, out);
  }
  static std::vector<int> buffers_of(const Kernel& k) {
    if (k.exchange) return k.exchange->buffers;
    std::vector<int> out;
    if (k.gemm)
      for (int b : {k.gemm->a, k.gemm->b, k.gemm->c})
        if (std::find(out.begin(), out.end(), b) == out.end()) out.push_back(b);
    for (const auto& s : k.body) collect(s, out);
    return out;
  }

  // A key equal for kernels that compute the same thing on different buffers: the kernel's
  // structure with buffers numbered by slot (and typed), variables by index. Not its extent,
  // grain or parallelism: its caller passes the range of p it runs, so one function serves
  // every length (the optimizer's updates of parameters of many sizes).
  std::string canonical(const Kernel& k, const std::vector<int>& buffers) const {
    std::string key = fmt::format("{}|", k.vars.size());
    for (int c : memory_classes(buffers)) key += fmt::format("m{},", c);
    for (const auto& v : k.vars) key += fmt::format("{},", static_cast<int>(v.type));
    for (int b : buffers) key += fmt::format("b{},", static_cast<int>(p_.buffers[b].type.dtype));
    std::unordered_map<const Expr*, int> ids;
    auto slot = [&](int b) { return std::find(buffers.begin(), buffers.end(), b) - buffers.begin(); };
    std::function<void(const E&)> expr = [&](const E& e) {
      if (auto it = ids.find(e.get()); it != ids.end()) {
        key += fmt::format("@{}", it->second);
        return;
      }
      ids[e.get()] = static_cast<int>(ids.size());
      key += fmt::format("({} {} {} {} {} {}", static_cast<int>(e->kind), static_cast<int>(e->type), e->i,
                         std::bit_cast<uint64_t>(e->f), e->var, static_cast<int>(e->op));
      if (e->kind == EK::Load) key += fmt::format(" s{}", slot(e->buffer));
      for (const auto& a : e->args) expr(a);
      key += ")";
    };
    std::function<void(const Stmt&)> stmt = [&](const Stmt& st) {
      ids.clear();
      key += fmt::format("[{} {} {} {} {}{}", static_cast<int>(st.kind), st.var, st.begin, st.end, st.code, st.vectorize ? " v" : st.scalar ? " s" : "");
      if (st.kind == SK::Store) key += fmt::format(" s{}", slot(st.buffer));
      if (st.index) expr(st.index);
      if (st.value) expr(st.value);
      for (const auto& b : st.body) stmt(b);
      key += "]";
    };
    for (const auto& st : k.body) stmt(st);
    if (k.gemm) {
      const Gemm& g = *k.gemm;
      key += fmt::format("gemm s{} s{} s{} {}x{}x{} {}{} [{}] [{}] {}", slot(g.a), slot(g.b), slot(g.c), g.M, g.N, g.K, g.ta, g.tb,
                         fmt::join(g.a_offsets, ","), fmt::join(g.b_offsets, ","), static_cast<int>(g.split));
      if (g.split != Gemm::Split::rows) key += fmt::format(" block {}", g.block);
      if (g.precision != Gemm::Precision::f32) key += " bf16";
      if (g.dot) key += g.sum_batches ? " dot_sum" : " dot";
      if (g.causal != Gemm::Causal::none) key += fmt::format(" causal {}", static_cast<int>(g.causal));
      if (g.b_read == Gemm::BRead::lines) key += fmt::format(" lines [{}]", fmt::join(g.b_lines, ","));
      if (g.b_read == Gemm::BRead::patches) {
        const auto& c = g.im2col;
        key += fmt::format(" im2col {} {} {} {} {} {} {} {} {} {} {} {}", c.C, c.H, c.W, c.KH, c.KW, c.OW, c.stride[0], c.stride[1],
                           c.padding[0], c.padding[1], c.dilation[0], c.dilation[1]);
      }
    }
    return key;
  }

  // Which of a kernel's buffers may share memory: the views of one buffer, and the caller's
  // inputs and outputs. Others never do: plan-memory gives no two operands of a kernel the same
  // bytes, and parameters and constants are allocations of their own. For each slot, the first
  // slot whose memory it may share (itself when none before it).
  std::vector<int> memory_classes(const std::vector<int>& buffers) const {
    auto memory = [&](int b) {
      int root = storage_of(p_, b);
      BufKind kind = p_.buffers[static_cast<size_t>(root)].kind;
      return kind == BufKind::Input || kind == BufKind::Output ? -1 : root;
    };
    std::vector<int> classes;
    for (size_t i = 0; i < buffers.size(); ++i) {
      size_t first = 0;
      while (memory(buffers[first]) != memory(buffers[i])) ++first;
      classes.push_back(static_cast<int>(first));
    }
    return classes;
  }

  // Alias scopes that tell LLVM which of a kernel's loads and stores touch memory apart
  // (memory_classes()): without them the vectorizer checks at run time that no two buffers
  // overlap and keeps a scalar copy of each loop for when they do.
  void scope_buffers(const std::vector<int>& buffers) {
    scopes_.clear();
    std::vector<int> classes = memory_classes(buffers);
    if (std::set<int>(classes.begin(), classes.end()).size() < 2) return;
    llvm::MDBuilder md(ctx_);
    llvm::MDNode* domain = md.createAnonymousAliasScopeDomain("buffers");
    std::map<int, llvm::MDNode*> scope;  // ordered: the bitcode, the object cache's key, must not vary
    for (int c : classes)
      if (!scope.count(c)) scope[c] = md.createAnonymousAliasScope(domain, p_.buffers[static_cast<size_t>(buffers[static_cast<size_t>(c)])].name);
    for (size_t i = 0; i < buffers.size(); ++i) {
      std::vector<llvm::Metadata*> others;
      for (const auto& [c, node] : scope)
        if (c != classes[i]) others.push_back(node);
      scopes_[buffers[i]] = {llvm::MDNode::get(ctx_, {scope[classes[i]]}), llvm::MDNode::get(ctx_, others)};
    }
  }
  llvm::Instruction* scoped(llvm::Instruction* access, int buffer) {
    if (auto it = scopes_.find(buffer); it != scopes_.end()) {
      access->setMetadata(llvm::LLVMContext::MD_alias_scope, it->second.first);
      access->setMetadata(llvm::LLVMContext::MD_noalias, it->second.second);
    }
    return access;
  }

  struct Sharing {
    std::vector<const Kernel*> unique;   ///< one kernel of each shape, in first-use order
    std::vector<int> unique_of;          ///< the program's kernels (counted through the functions) -> unique
    std::vector<std::vector<int>> buffers;  ///< the program's kernels -> their buffers
  };
  Sharing share_kernels() const {
    Sharing s;
    std::unordered_map<std::string, int> by_shape;
    for (const auto& fn : p_.functions)
      for (const auto& k : fn.kernels) {
        s.buffers.push_back(buffers_of(k));
        if (k.exchange) {
          s.unique_of.push_back(-1);
          continue;
        }
        auto [it, fresh] = by_shape.try_emplace(canonical(k, s.buffers.back()), static_cast<int>(s.unique.size()));
        if (fresh) s.unique.push_back(&k);
        s.unique_of.push_back(it->second);
      }
    return s;
  }

  // The module each unique kernel is defined in, balancing LLVM's work over the parts:
  // greedy, largest first, by IR size. Kernels on one GEMM layout share its (large) function,
  // so they go together; part 0 also holds the entry functions.
  std::vector<int> assign_parts(const Sharing& s) const {
    std::vector<int> part(s.unique.size(), 0);
    if (options_.parts <= 1) return part;
    std::vector<std::vector<int>> groups;
    std::vector<double> cost;
    std::unordered_map<std::string, size_t> by_layout;
    for (size_t u = 0; u < s.unique.size(); ++u) {
      const Kernel& k = *s.unique[u];
      double c = kKernelFunctionSize + static_cast<double>(ir_size(k));
      size_t g = groups.size();
      if (k.gemm) {
        auto [it, fresh] = by_layout.try_emplace(gemm_layout_name(*k.gemm, tile_), groups.size());
        g = it->second;
        if (fresh) c += kGemmFunctionSize;
      }
      if (g == groups.size()) {
        groups.emplace_back();
        cost.push_back(0);
      }
      groups[g].push_back(static_cast<int>(u));
      cost[g] += c;
    }
    std::vector<size_t> order(groups.size());
    for (size_t g = 0; g < order.size(); ++g) order[g] = g;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return cost[a] > cost[b]; });
    std::vector<double> load(static_cast<size_t>(options_.parts), 0);
    for (const auto& k : p_.functions) load[0] += static_cast<double>(k.kernels.size()) * kCallSize;  // the entry functions' calls
    for (size_t g : order) {
      size_t least = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
      load[least] += cost[g];
      for (int u : groups[g]) part[static_cast<size_t>(u)] = static_cast<int>(least);
    }
    return part;
  }
  // LLVM's work in kernel IR nodes, as measured on the GRU step (a part of one function each):
  // a kernel function costs as much as 50 nodes besides its own (a vectorized loop's checks and
  // remainder), a GEMM function (its micro-kernel unrolls to hundreds of instructions) about
  // 1,500, a call in an entry function (not optimized: `entry`) 3.
  static constexpr double kKernelFunctionSize = 50, kGemmFunctionSize = 1500, kCallSize = 3;
  static size_t ir_size(const Kernel& k) {
    std::set<const Expr*> seen;
    std::function<size_t(const E&)> expr = [&](const E& e) -> size_t {
      if (!e || !seen.insert(e.get()).second) return 0;
      size_t n = 1;
      for (const auto& a : e->args) n += expr(a);
      return n;
    };
    std::function<size_t(const Stmt&)> stmt = [&](const Stmt& st) -> size_t {
      size_t n = 1 + expr(st.index) + expr(st.value);
      for (const auto& b : st.body) n += stmt(b);
      return n;
    };
    size_t n = 8;
    for (const auto& st : k.body) n += stmt(st);
    return n;
  }

  // Defined here, or declared for another part's module to define; named uniquely, since they
  // link across modules. Never internal, even in one part: LLVM's interprocedural passes would
  // then specialize the kernel for its entry's call (the constant bounds of a direct call) where
  // both share a module and not across parts, and its code, so possibly its bits, would depend
  // on how the program is split (the JIT's parts against `stag build`'s one module).
  llvm::Function* kernel(const Kernel& k, const std::vector<int>& buffers, llvm::FunctionType* ty, int fn, int unique, bool here) {
    std::string name = entry_symbol(p_, p_.functions[fn].name) + "." + k.name + fmt::format(".u{}", unique);
    auto* f = llvm::Function::Create(ty, llvm::GlobalValue::ExternalLinkage, name, m_.get());
    f->setVisibility(llvm::GlobalValue::HiddenVisibility);
    if (!here) return f;
    f->addFnAttr(llvm::Attribute::NoUnwind);
    // Entry functions call kernels one after another: inlining them would only build one
    // huge function that takes the optimizer long and gains nothing.
    f->addFnAttr(llvm::Attribute::NoInline);
    f->addFnAttr(kGeneratedAttribute);
    auto* entry_bb = llvm::BasicBlock::Create(ctx_, "entry", f);
    b_.SetInsertPoint(entry_bb);
    // The pointers of the buffers this kernel touches, from its call's slots, loaded once.
    buf_ptrs_.clear();
    for (size_t i = 0; i < buffers.size(); ++i) {
      llvm::Value* slot = b_.CreateConstInBoundsGEP1_64(ptr_, f->getArg(0), i);
      buf_ptrs_[buffers[i]] = b_.CreateLoad(ptr_, slot, p_.buffers[buffers[i]].name);
    }
    scope_buffers(buffers);
    vars_.clear();
    for (const auto& v : k.vars) vars_.push_back(b_.CreateAlloca(scalar_type(v.type), nullptr, v.name));
    if (k.gemm) {
      llvm::Function* product = gemm_function(*m_, *k.gemm, tile_);
      const Gemm& g = *k.gemm;
      if (g.sum_batches && (!evenly_spaced(g.a_offsets) || !evenly_spaced(g.b_offsets)))
        throw std::logic_error(k.name + ": a product summed over its batches needs evenly spaced batch offsets");
      // Rows [lo, hi) of every column, or every row of columns [lo, hi) * block.
      llvm::Value *row_lo = f->getArg(1), *row_hi = f->getArg(2), *col_lo = b_.getInt64(0), *col_hi = b_.getInt64(g.N);
      if (g.split == Gemm::Split::columns) {
        row_lo = b_.getInt64(0), row_hi = b_.getInt64(g.c_rows());
        col_lo = b_.CreateMul(f->getArg(1), b_.getInt64(g.block));
        col_hi = b_.CreateMul(f->getArg(2), b_.getInt64(g.block));
      }
      auto call = [&](llvm::Value* lo, llvm::Value* hi) {
        b_.CreateCall(product, {buf_ptrs_.at(g.a), buf_ptrs_.at(g.b), buf_ptrs_.at(g.c), lo, hi, col_lo, col_hi, b_.getInt64(g.M),
                                b_.getInt64(g.N), b_.getInt64(g.K), gemm_offsets(*m_, g.a_offsets), gemm_offsets(*m_, g.b_offsets),
                                gemm_lines(*m_, g), b_.getInt64(static_cast<uint64_t>(gemm_transposes(g))),
                                b_.getInt64(static_cast<uint64_t>(g.batches()))});
      };
      if (g.split == Gemm::Split::row_blocks) {
        // for p in [lo, hi): the block's rows, then the body for p (while they are in cache)
        llvm::Value* rb = b_.getInt64(g.block);
        emit_loop(0, f->getArg(1), f->getArg(2), k.body, false, [&](llvm::Value* p) {
          llvm::Value* first = b_.CreateMul(p, rb);
          call(first, b_.CreateAdd(first, rb));
        });
        b_.CreateRetVoid();
        return f;
      }
      call(row_lo, row_hi);
    }
    // for p in [lo, hi): body
    emit_loop(0, f->getArg(1), f->getArg(2), k.body);
    b_.CreateRetVoid();
    return f;
  }

  void emit_loop(int var, llvm::Value* begin, llvm::Value* end, const std::vector<Stmt>& body, bool vectorize = false,
                 const std::function<void(llvm::Value*)>& prefix = nullptr, bool scalar = false) {
    llvm::Function* f = b_.GetInsertBlock()->getParent();
    auto* header = llvm::BasicBlock::Create(ctx_, "loop", f);
    auto* body_bb = llvm::BasicBlock::Create(ctx_, "body", f);
    auto* exit = llvm::BasicBlock::Create(ctx_, "exit", f);
    b_.CreateStore(begin, vars_[var]);
    b_.CreateBr(header);
    b_.SetInsertPoint(header);
    llvm::Value* i = b_.CreateLoad(i64_, vars_[var]);
    b_.CreateCondBr(b_.CreateICmpSLT(i, end), body_bb, exit);
    b_.SetInsertPoint(body_bb);
    if (prefix) prefix(i);
    for (const auto& s : body) stmt(s);
    llvm::Value* next = b_.CreateAdd(b_.CreateLoad(i64_, vars_[var]), b_.getInt64(1), "", true, true);
    b_.CreateStore(next, vars_[var]);
    llvm::BranchInst* latch = b_.CreateBr(header);
    if (vectorize || scalar) latch->setMetadata(llvm::LLVMContext::MD_loop, vectorize_hint(!scalar));
    b_.SetInsertPoint(exit);
  }

  // Loop metadata as clang's `#pragma clang loop vectorize(enable) unroll(disable)`: the
  // vectorizer takes the loop however short, and the full unroller leaves it to it. With
  // `enable` false, `vectorize(disable)`: scalar code, which the full unroller may unroll.
  llvm::MDNode* vectorize_hint(bool enable_vectorizer = true) {
    llvm::Metadata* enable[] = {llvm::MDString::get(ctx_, "llvm.loop.vectorize.enable"),
                                llvm::ConstantAsMetadata::get(b_.getInt1(enable_vectorizer))};
    if (!enable_vectorizer) {
      auto self = llvm::MDNode::getTemporary(ctx_, {});
      llvm::Metadata* parts[] = {self.get(), llvm::MDNode::get(ctx_, enable)};
      llvm::MDNode* id = llvm::MDNode::getDistinct(ctx_, parts);
      id->replaceOperandWith(0, id);
      return id;
    }
    llvm::Metadata* no_unroll[] = {llvm::MDString::get(ctx_, "llvm.loop.unroll.disable")};
    auto self = llvm::MDNode::getTemporary(ctx_, {});
    llvm::Metadata* parts[] = {self.get(), llvm::MDNode::get(ctx_, enable), llvm::MDNode::get(ctx_, no_unroll)};
    llvm::MDNode* id = llvm::MDNode::getDistinct(ctx_, parts);
    id->replaceOperandWith(0, id);
    return id;
  }

  void stmt(const Stmt& s) {
    memo_.clear();
    switch (s.kind) {
      case SK::For: emit_loop(s.var, b_.getInt64(s.begin), b_.getInt64(s.end), s.body, s.vectorize, nullptr, s.scalar); break;
      case SK::Store: {
        DType t = p_.buffers[s.buffer].type.dtype;
        llvm::Value* v = expr(s.value);
        if (t == DType::b8) v = b_.CreateZExt(v, b_.getInt8Ty());
        scoped(b_.CreateStore(v, element(s.buffer, expr(s.index))), s.buffer);
        break;
      }
      case SK::Assign: b_.CreateStore(expr(s.value), vars_[s.var]); break;
      case SK::Check: {
        llvm::Function* f = b_.GetInsertBlock()->getParent();
        auto* fail = llvm::BasicBlock::Create(ctx_, "check.fail", f);
        auto* ok = llvm::BasicBlock::Create(ctx_, "check.ok", f);
        llvm::Value* cond = expr(s.index);
        llvm::Value* value = expr(s.value);
        b_.CreateCondBr(cond, ok, fail);
        b_.SetInsertPoint(fail);
        b_.CreateCall(check_failed_, {b_.getInt64(s.code), value});
        b_.CreateBr(ok);
        b_.SetInsertPoint(ok);
        break;
      }
    }
  }

  llvm::Value* element(int buffer, llvm::Value* index) {
    DType t = p_.buffers[buffer].type.dtype;
    llvm::Value* base = buf_ptrs_.at(buffer);
    return b_.CreateInBoundsGEP(memory_type(t), base, index);
  }

  llvm::Value* expr(const E& e) {
    auto it = memo_.find(e.get());
    if (it != memo_.end()) return it->second;
    llvm::Value* v = expr_uncached(*e);
    memo_[e.get()] = v;
    return v;
  }

  llvm::Value* intrinsic(llvm::Intrinsic::ID id, llvm::Value* x) {
    return b_.CreateIntrinsic(id, {x->getType()}, {x});
  }

  // A call of the C library's math function, with glibc's vector versions (libmvec) named
  // for the loop vectorizer: a loop of expf becomes a loop of _ZGVdN8v_expf, 8 lanes a call,
  // instead of one call an element. errno is not wanted, so the call touches no memory.
  llvm::Value* libm(const char* f32_name, const char* f64_name, llvm::Value* x) {
    bool is_f32 = x->getType()->isFloatTy();
    const char* name = is_f32 ? f32_name : f64_name;
    auto callee = m_->getOrInsertFunction(name, llvm::FunctionType::get(x->getType(), {x->getType()}, false));
    auto* call = b_.CreateCall(callee, {x});
    call->setDoesNotThrow();
    call->setDoesNotAccessMemory();
    std::string variants;
    for (const auto& [isa, bits] : vector_isas_) {
      unsigned lanes = bits / (is_f32 ? 32 : 64);
      std::string vname = fmt::format("_ZGV{}N{}v_{}", isa, lanes, name);
      auto* vty = llvm::FixedVectorType::get(x->getType(), lanes);
      auto vfn = m_->getOrInsertFunction(vname, llvm::FunctionType::get(vty, {vty}, false));
      if (auto* f = llvm::dyn_cast<llvm::Function>(vfn.getCallee()); f && used_vector_fns_.insert(f)) {
        f->setDoesNotAccessMemory();
        f->setDoesNotThrow();
      }
      variants += (variants.empty() ? "" : ",") + vname;
    }
    if (!variants.empty()) call->addFnAttr(llvm::Attribute::get(ctx_, "vector-function-abi-variant", variants));
    return call;
  }

  llvm::Value* expr_uncached(const Expr& e) {
    switch (e.kind) {
      case EK::Int: return b_.getInt64(static_cast<uint64_t>(e.i));
      case EK::Float: return llvm::ConstantFP::get(scalar_type(e.type), e.f);
      case EK::Var: return b_.CreateLoad(scalar_type(e.type), vars_[e.var]);
      case EK::Load: {
        DType t = p_.buffers[e.buffer].type.dtype;
        llvm::Value* v = scoped(b_.CreateLoad(memory_type(t), element(e.buffer, expr(e.args[0]))), e.buffer);
        return t == DType::b8 ? b_.CreateICmpNE(v, b_.getInt8(0)) : v;
      }
      case EK::Unary: return unary(static_cast<Un>(e.op), expr(e.args[0]), e.args[0]->type);
      case EK::Binary: return binary(static_cast<Bin>(e.op), expr(e.args[0]), expr(e.args[1]), e.args[0]->type);
      case EK::Select: return b_.CreateSelect(expr(e.args[0]), expr(e.args[1]), expr(e.args[2]));
      case EK::Cast: return cast(expr(e.args[0]), e.args[0]->type, e.type);
    }
    throw std::logic_error("bad expression kind");
  }

  llvm::Value* unary(Un op, llvm::Value* x, DType t) {
    bool fp = is_float(t);
    switch (op) {
      case Un::neg: return fp ? b_.CreateFNeg(x) : b_.CreateNeg(x);
      case Un::abs: return fp ? intrinsic(llvm::Intrinsic::fabs, x) : b_.CreateBinaryIntrinsic(llvm::Intrinsic::abs, x, b_.getFalse());
      case Un::exp: return libm("expf", "exp", x);
      case Un::log: return libm("logf", "log", x);
      case Un::sqrt: return intrinsic(llvm::Intrinsic::sqrt, x);
      case Un::floor: return intrinsic(llvm::Intrinsic::floor, x);
      case Un::cos: return intrinsic(llvm::Intrinsic::cos, x);
      case Un::tanh: return libm("tanhf", "tanh", x);
      case Un::erf: return libm("erff", "erf", x);
      case Un::not_: return b_.CreateNot(x);
      case Un::round_bf16: return round_to_bf16(b_, x);
    }
    throw std::logic_error("bad unary op");
  }

  llvm::Value* binary(Bin op, llvm::Value* a, llvm::Value* b, DType t) {
    bool fp = is_float(t);
    switch (op) {
      case Bin::add: return fp ? b_.CreateFAdd(a, b) : b_.CreateAdd(a, b);
      case Bin::sub: return fp ? b_.CreateFSub(a, b) : b_.CreateSub(a, b);
      case Bin::mul: return fp ? b_.CreateFMul(a, b) : b_.CreateMul(a, b);
      case Bin::div: return fp ? b_.CreateFDiv(a, b) : b_.CreateSDiv(a, b);
      case Bin::rem: return fp ? b_.CreateFRem(a, b) : b_.CreateSRem(a, b);
      // Float min and max propagate NaN (IEEE 754-2019 minimum/maximum), as PyTorch's do; as
      // intrinsics, a running max over a row vectorizes (the select form would not).
      case Bin::min:
        return fp ? b_.CreateBinaryIntrinsic(llvm::Intrinsic::minimum, a, b)
                  : b_.CreateBinaryIntrinsic(t == DType::b8 ? llvm::Intrinsic::umin : llvm::Intrinsic::smin, a, b);
      case Bin::max:
        return fp ? b_.CreateBinaryIntrinsic(llvm::Intrinsic::maximum, a, b)
                  : b_.CreateBinaryIntrinsic(t == DType::b8 ? llvm::Intrinsic::umax : llvm::Intrinsic::smax, a, b);
      case Bin::pow: return b_.CreateBinaryIntrinsic(llvm::Intrinsic::pow, a, b);
      // Bools compare unsigned: as a signed i1, true would be -1.
      case Bin::lt: return fp ? b_.CreateFCmpOLT(a, b) : t == DType::b8 ? b_.CreateICmpULT(a, b) : b_.CreateICmpSLT(a, b);
      case Bin::le: return fp ? b_.CreateFCmpOLE(a, b) : t == DType::b8 ? b_.CreateICmpULE(a, b) : b_.CreateICmpSLE(a, b);
      case Bin::gt: return fp ? b_.CreateFCmpOGT(a, b) : t == DType::b8 ? b_.CreateICmpUGT(a, b) : b_.CreateICmpSGT(a, b);
      case Bin::ge: return fp ? b_.CreateFCmpOGE(a, b) : t == DType::b8 ? b_.CreateICmpUGE(a, b) : b_.CreateICmpSGE(a, b);
      case Bin::eq: return fp ? b_.CreateFCmpOEQ(a, b) : b_.CreateICmpEQ(a, b);
      case Bin::ne: return fp ? b_.CreateFCmpUNE(a, b) : b_.CreateICmpNE(a, b);
      case Bin::and_: return b_.CreateAnd(a, b);
      case Bin::or_: return b_.CreateOr(a, b);
      case Bin::xor_: return b_.CreateXor(a, b);
      case Bin::shl: return b_.CreateShl(a, b);
      case Bin::lshr: return b_.CreateLShr(a, b);
      case Bin::bf16_pair: return b_.CreateOr(bf16_bits(b_, b), b_.CreateLShr(bf16_bits(b_, a), 16));
    }
    throw std::logic_error("bad binary op");
  }

  llvm::Value* cast(llvm::Value* x, DType from, DType to) {
    llvm::Type* target = scalar_type(to);
    if (from == DType::b8) return is_float(to) ? b_.CreateUIToFP(x, target) : b_.CreateZExt(x, target);
    if (is_float(from) && is_float(to)) return b_.CreateFPCast(x, target);
    if (is_float(from)) return b_.CreateFPToSI(x, target);
    if (is_float(to)) return b_.CreateSIToFP(x, target);
    return b_.CreateSExtOrTrunc(x, target);
  }

  // ---------------------------------------------------------------- entry functions

  // The loops an entry function is in while its calls are emitted, outermost first. A loop's
  // kernels between the loops inside it are one basic block each, entered in program order, so
  // that every address computed in one dominates the code after it.
  struct LoopState {
    struct Open {
      int loop;
      llvm::PHINode* iter;
      llvm::BasicBlock* head;
      llvm::Value* step;  ///< the step t of kernel_ir.h
    };
    llvm::Function* f;
    std::vector<Open> open;

    void enter(Codegen& cg, int kernel) {
      const Function& fn = cg.p_.functions[cg.fn_];
      for (size_t l = 0; l < fn.loops.size(); ++l) {
        if (fn.loops[l].first != kernel) continue;
        auto& b = cg.b_;
        llvm::BasicBlock* before = b.GetInsertBlock();
        auto* body = llvm::BasicBlock::Create(cg.ctx_, "loop", f);
        b.CreateBr(body);
        b.SetInsertPoint(body);
        llvm::PHINode* iter = b.CreatePHI(cg.i64_, 2, "iter");
        iter->addIncoming(b.getInt64(0), before);
        const Loop& loop = fn.loops[l];
        open.push_back({static_cast<int>(l), iter, body, loop.reverse ? b.CreateSub(b.getInt64(loop.trips - 1), iter, "t") : iter});
      }
    }
    void leave(Codegen& cg, int kernel) {
      const Function& fn = cg.p_.functions[cg.fn_];
      while (!open.empty() && fn.loops[static_cast<size_t>(open.back().loop)].last == kernel + 1) {
        auto& b = cg.b_;
        const Open& o = open.back();
        llvm::Value* next = b.CreateAdd(o.iter, b.getInt64(1));
        o.iter->addIncoming(next, b.GetInsertBlock());
        auto* after = llvm::BasicBlock::Create(cg.ctx_, "after_loop", f);
        b.CreateCondBr(b.CreateICmpSLT(next, b.getInt64(fn.loops[static_cast<size_t>(o.loop)].trips)), o.head, after);
        b.SetInsertPoint(after);
        open.pop_back();
      }
    }
    // The step of loop `loop` if the code being emitted is in it, else null (t = 0).
    llvm::Value* step(int loop) const {
      for (const auto& o : open)
        if (o.loop == loop) return o.step;
      return nullptr;
    }
  };

  void entry(int fn, const std::vector<Call>& calls) {
    fn_ = fn;
    auto* ty = llvm::FunctionType::get(b_.getVoidTy(), {ptr_, ptr_, ptr_, ptr_}, false);
    auto* f = llvm::Function::Create(ty, llvm::GlobalValue::ExternalLinkage, entry_symbol(p_, p_.functions[fn].name), m_.get());
    // The thread pool rethrows a worker's exception in the caller: it unwinds through here.
    f->setUWTableKind(llvm::UWTableKind::Default);
    // A list of calls that runs once a step: LLVM's optimizer would gain nothing on it and its
    // instruction selection was the slowest of any function's (fast selection instead).
    f->addFnAttr(llvm::Attribute::OptimizeNone);
    f->addFnAttr(llvm::Attribute::NoInline);
    b_.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", f));
    size_t slots = 1;
    for (const auto& c : calls) slots = std::max(slots, c.buffers.size());
    auto* at = llvm::ArrayType::get(ptr_, slots);
    llvm::Value* ctx = b_.CreateAlloca(at, nullptr, "slots");
    std::unordered_map<int, llvm::Value*> pointer;  // each buffer's address, computed once
    auto address = [&](int id) {
      if (auto it = pointer.find(id); it != pointer.end()) return it->second;
      const Buffer& buf = p_.buffers[id];
      auto arg = [&](int a) { return b_.CreateLoad(ptr_, b_.CreateConstInBoundsGEP1_64(ptr_, f->getArg(a), buf.index), buf.name); };
      llvm::Value* v;
      if (buf.kind == BufKind::Param) v = arg(0);
      else if (buf.kind == BufKind::Const) v = const_globals_.at(id);
      else if (buf.kind == BufKind::Input) v = arg(1);
      else if (buf.kind == BufKind::Output) v = arg(2);
      else v = b_.CreateConstInBoundsGEP1_64(b_.getInt8Ty(), f->getArg(3), static_cast<uint64_t>(buf.offset), buf.name);
      return pointer[id] = v;
    };
    const auto& ks = p_.functions[fn].kernels;
    // Kernel ids count through the functions in order, as the manifest's kernel tables do.
    int64_t first_id = 0;
    for (int g = 0; g < fn; ++g) first_id += static_cast<int64_t>(p_.functions[g].kernels.size());
    if (options_.profile) b_.CreateCall(profile_enter_, {b_.getInt64(fn)});
    LoopState loop{f};
    // A view's address moves with the step of its loop (buffer.alias: kernel_ir.h).
    std::function<llvm::Value*(int)> view = [&](int id) -> llvm::Value* {
      const Buffer& buf = p_.buffers[id];
      if (buf.alias < 0) return address(id);
      llvm::Value* at = b_.getInt64(buf.alias_first);
      if (llvm::Value* t = buf.alias_step != 0 ? loop.step(buf.alias_loop) : nullptr)
        at = b_.CreateAdd(at, b_.CreateMul(t, b_.getInt64(buf.alias_step)));
      return b_.CreateInBoundsGEP(memory_type(p_.buffers[buf.alias].type.dtype), view(buf.alias), at, buf.name);
    };
    for (size_t i = 0; i < calls.size(); ++i) {
      loop.enter(*this, static_cast<int>(i));
      for (size_t j = 0; j < calls[i].buffers.size(); ++j) {
        int id = calls[i].buffers[j];
        llvm::Value* ptr = view(id);
        for (const auto& [buffer, first] : ks[i].views)  // the kernel sees the buffer from `first` on
          if (buffer == id && first != 0)
            ptr = b_.CreateConstInBoundsGEP1_64(memory_type(p_.buffers[id].type.dtype), ptr, static_cast<uint64_t>(first));
        b_.CreateStore(ptr, b_.CreateConstInBoundsGEP2_64(at, ctx, 0, j));
      }
      // After the slot stores, so that the time is the kernel's own.
      if (options_.profile) b_.CreateCall(profile_begin_, {b_.getInt64(first_id + static_cast<int64_t>(i))});
      if (ks[i].exchange)
        call_exchange(*ks[i].exchange, ctx);
      else if (ks[i].parallel)
        b_.CreateCall(parallel_for_, {b_.getInt64(0), b_.getInt64(ks[i].extent), b_.getInt64(ks[i].grain), calls[i].fn, ctx});
      else
        b_.CreateCall(calls[i].fn, {ctx, b_.getInt64(0), b_.getInt64(ks[i].extent)});
      if (options_.profile) b_.CreateCall(profile_end_, {b_.getInt64(first_id + static_cast<int64_t>(i))});
      loop.leave(*this, static_cast<int>(i));
    }
    if (options_.profile) b_.CreateCall(profile_leave_, {b_.getInt64(fn)});
    b_.CreateRetVoid();
  }

  // stag_exchange(op, bucket, the buffers' pointers from the call's slots, their sizes, count).
  void call_exchange(const Exchange& x, llvm::Value* slots) {
    std::vector<llvm::Constant*> counts;
    for (int b : x.buffers) counts.push_back(b_.getInt64(static_cast<uint64_t>(p_.buffers[b].numel())));
    auto* at = llvm::ArrayType::get(i64_, counts.size());
    auto* table = new llvm::GlobalVariable(*m_, at, true, llvm::GlobalValue::PrivateLinkage, llvm::ConstantArray::get(at, counts),
                                           fmt::format("exchange.b{}.counts", x.bucket));
    b_.CreateCall(exchange_, {b_.getInt64(x.op == Exchange::Op::start ? 0 : 1), b_.getInt64(static_cast<uint64_t>(x.bucket)), slots,
                              table, b_.getInt64(x.buffers.size())});
  }

  // glibc's vector function ISAs this host runs (x86: b = SSE, d = AVX2, e = AVX-512), with
  // their register width in bits.
  static std::vector<std::pair<char, unsigned>> host_vector_isas() {
    HostInfo host = host_info();
    std::vector<std::pair<char, unsigned>> out;
    if (host.triple.rfind("x86_64", 0) != 0) return out;
    if (host.has("sse4.2")) out.push_back({'b', 128});
    if (host.has("avx2")) out.push_back({'d', 256});
    if (host.has("avx512f")) out.push_back({'e', 512});
    return out;
  }
  std::vector<std::pair<char, unsigned>> vector_isas_ = host_vector_isas();
  // In first-use order: a pointer order would differ from run to run, and so would the module's
  // bitcode, the JIT cache's key.
  llvm::SetVector<llvm::Function*> used_vector_fns_;
  GemmTile tile_ = host_gemm_tile();
  const Program& p_;
  CodegenOptions options_;
  llvm::LLVMContext& ctx_;
  std::unique_ptr<llvm::Module> m_;
  llvm::IRBuilder<> b_;
  llvm::PointerType* ptr_ = nullptr;
  llvm::IntegerType* i64_ = nullptr;
  llvm::FunctionCallee parallel_for_, check_failed_, exchange_;
  llvm::FunctionCallee profile_enter_, profile_leave_, profile_begin_, profile_end_;
  std::unordered_map<int, llvm::GlobalVariable*> const_globals_;
  std::unordered_map<int, llvm::Value*> buf_ptrs_;
  std::unordered_map<int, std::pair<llvm::MDNode*, llvm::MDNode*>> scopes_;  ///< buffer -> its alias scope and the others (scope_buffers())
  std::vector<llvm::AllocaInst*> vars_;
  int fn_ = 0;  ///< the function whose entry is being emitted
  std::unordered_map<const Expr*, llvm::Value*> memo_;
};

// LLVM's warnings and remarks about its own optimizations (a loop marked vectorized that it could
// not vectorize) say nothing a user of stag can act on, so they are not printed; errors are.
struct OptimizerDiagnosticsQuiet : llvm::DiagnosticHandler {
  bool handleDiagnostics(const llvm::DiagnosticInfo& d) override { return d.getSeverity() != llvm::DS_Error; }
};

}  // namespace

std::unique_ptr<llvm::Module> codegen(const Program& p, llvm::LLVMContext& ctx, const CodegenOptions& options) {
  ctx.setDiagnosticHandler(std::make_unique<OptimizerDiagnosticsQuiet>());
  return Codegen(p, ctx, options).run();
}

void embed_trainer_table(llvm::Module& m, const Program& p, const std::string& json, std::string_view initial_weights) {
  llvm::LLVMContext& ctx = m.getContext();
  // One byte at least: an empty array would be a zero-sized object.
  std::string bytes(initial_weights.empty() ? std::string_view("", 1) : initial_weights);
  auto* weights = llvm::ConstantDataArray::getRaw(bytes, bytes.size(), llvm::Type::getInt8Ty(ctx));
  new llvm::GlobalVariable(m, weights->getType(), true, llvm::GlobalValue::ExternalLinkage, weights, "stag_trainer_initial_weights");
  new llvm::GlobalVariable(m, llvm::Type::getInt64Ty(ctx), true, llvm::GlobalValue::ExternalLinkage,
                           llvm::ConstantInt::get(llvm::Type::getInt64Ty(ctx), initial_weights.size()),
                           "stag_trainer_initial_weights_size");
  auto* ptr = llvm::PointerType::get(ctx, 0);
  auto* manifest = llvm::ConstantDataArray::getString(ctx, json, true);
  new llvm::GlobalVariable(m, manifest->getType(), true, llvm::GlobalValue::ExternalLinkage, manifest, "stag_trainer_manifest");
  std::vector<llvm::Constant*> names, entries;
  for (const auto& f : p.functions) {
    auto* text = llvm::ConstantDataArray::getString(ctx, f.name, true);
    names.push_back(new llvm::GlobalVariable(m, text->getType(), true, llvm::GlobalValue::PrivateLinkage, text, "fname." + f.name));
    llvm::Function* fn = m.getFunction(entry_symbol(p, f.name));
    entries.push_back(fn);
  }
  auto* at = llvm::ArrayType::get(ptr, names.size());
  new llvm::GlobalVariable(m, at, true, llvm::GlobalValue::ExternalLinkage, llvm::ConstantArray::get(at, names),
                           "stag_trainer_function_names");
  new llvm::GlobalVariable(m, at, true, llvm::GlobalValue::ExternalLinkage, llvm::ConstantArray::get(at, entries),
                           "stag_trainer_function_entries");
  auto* i64 = llvm::Type::getInt64Ty(ctx);
  new llvm::GlobalVariable(m, i64, true, llvm::GlobalValue::ExternalLinkage,
                           llvm::ConstantInt::get(i64, p.functions.size()), "stag_trainer_function_count");
}

void embed_manifest(llvm::Module& m, const Program& p, const std::string& json) {
  auto* init = llvm::ConstantDataArray::getString(m.getContext(), json, true);
  new llvm::GlobalVariable(m, init->getType(), true, llvm::GlobalValue::ExternalLinkage, init,
                           entry_symbol(p, "manifest"));
}

}  // namespace stag
