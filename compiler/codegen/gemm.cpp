// The matrix product as LLVM IR: for each KC-deep slice of K and each NR-wide panel of
// columns, B's panel is packed (transposed if need be, zero-padded at the edge) into a
// buffer that stays in L1; then every MR-row tile of C accumulates in MR x NR/lanes vector
// registers, one broadcast of A and one fused multiply-add per register per k.

#include "compiler/codegen/gemm.h"
#include "compiler/codegen/codegen.h"

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/IntrinsicsX86.h>
#include <llvm/IR/Module.h>

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <functional>

#include "compiler/target/host.h"

namespace stag {

GemmTile host_gemm_tile() {
  Isa isa = host_isa();
  GemmTile t;
  // Accumulators take rows x vectors registers; B's vectors and A's broadcast need the rest.
  if (isa >= Isa::avx512) t = {16, 2, 8, 0, 0};       // 16 of 32 zmm registers
  else if (isa >= Isa::avx2) t = {8, 2, 6, 0, 0};  // 12 of 16 ymm
  else t = {4, 2, 4, 0, 0};                       // 8 of 16 xmm
  t.bf16_dot = isa >= Isa::avx512bf16;
  // Cache blocking from the host's caches: a KC-deep panel of B takes a third of L1 (A's
  // micro-panel and C's tile share the rest), a block of panels half of L2. glibc reads the
  // sizes from CPUID; 32 KiB and 512 KiB when it cannot.
  long l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE), l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (l1 <= 0) l1 = 32 << 10;
  if (l2 <= 0) l2 = 512 << 10;
  long panel_floats = l1 / 3 / 4;
  // A multiple of the lanes: transposed B is packed in lanes x lanes blocks.
  t.depth = static_cast<int>(std::clamp<long>(panel_floats / t.columns() / t.lanes * t.lanes, 64, 512));
  long panel_bytes = static_cast<long>(t.depth) * t.columns() * 4;
  t.panels = static_cast<int>(std::clamp<long>(l2 / 2 / panel_bytes, 4, std::max<long>(4, (1 << 20) / panel_bytes)));
  return t;
}

llvm::Value* bf16_bits(llvm::IRBuilderBase& b, llvm::Value* x) {
  llvm::Type* it = x->getType()->isVectorTy() ? static_cast<llvm::Type*>(llvm::VectorType::getInteger(llvm::cast<llvm::VectorType>(x->getType())))
                                              : b.getInt32Ty();
  auto k = [&](uint32_t v) { return llvm::ConstantInt::get(it, v); };
  llvm::Value* bits = b.CreateBitCast(x, it);
  llvm::Value* odd = b.CreateAnd(b.CreateLShr(bits, k(16)), k(1));
  llvm::Value* rounded = b.CreateAnd(b.CreateAdd(bits, b.CreateAdd(k(0x7fff), odd)), k(0xffff0000u));
  llvm::Value* quiet = b.CreateAnd(b.CreateOr(bits, k(0x00400000)), k(0xffff0000u));
  return b.CreateSelect(b.CreateFCmpUNO(x, x), quiet, rounded);
}

llvm::Value* round_to_bf16(llvm::IRBuilderBase& b, llvm::Value* x) { return b.CreateBitCast(bf16_bits(b, x), x->getType()); }

namespace {

// Whether a product's A is the same for every batch and worth packing once a call
// (GemmEmitter::pack_shared_a): not for causal products (their tiles' depths differ) nor for
// bf16 rounded on the f32 micro-kernel (rounded after packing).
bool shares_a(const kir::Gemm& g, const GemmTile& t) {
  bool same = g.batches() > 1 && std::all_of(g.a_offsets.begin(), g.a_offsets.end(), [&](int64_t o) { return o == g.a_offsets[0]; });
  return same && g.causal == kir::Gemm::Causal::none && (g.precision != kir::Gemm::Precision::bf16 || t.bf16_dot);
}

uint64_t fnv(const std::vector<int64_t>& v) {
  uint64_t h = 1469598103934665603ull;
  for (int64_t x : v) h = (h ^ static_cast<uint64_t>(x)) * 1099511628211ull;
  return h;
}

class GemmEmitter {
 public:
  static constexpr int64_t kDirectRows = 64;
  /// Reads vector v of B's row k for a panel (zeros unless `valid`).
  using RowRead = std::function<llvm::Value*(llvm::Value* k, int v, llvm::Value* valid)>;

  GemmEmitter(llvm::Module& m, const kir::Gemm& g, const GemmTile& t) : m_(m), g_(g), t_(t), b_(m.getContext()) {
    llvm::FastMathFlags fmf;
    fmf.setAllowContract();
    b_.setFastMathFlags(fmf);
  }

  llvm::Function* emit(const std::string& name) {
    auto& ctx = m_.getContext();
    ptr_ = llvm::PointerType::get(ctx, 0);
    i64_ = b_.getInt64Ty();
    f32_ = b_.getFloatTy();
    vt_ = llvm::FixedVectorType::get(f32_, static_cast<unsigned>(t_.lanes));
    auto* fty = llvm::FunctionType::get(b_.getVoidTy(), {ptr_, ptr_, ptr_, i64_, i64_, i64_, i64_, i64_, i64_, i64_, ptr_, ptr_, ptr_, i64_, i64_}, false);
    f_ = llvm::Function::Create(fty, llvm::GlobalValue::InternalLinkage, name, m_);
    f_->addFnAttr(llvm::Attribute::NoUnwind);
    f_->addFnAttr(llvm::Attribute::NoInline);  // shared by every product of the layout
    f_->addFnAttr(kGeneratedAttribute);
    for (unsigned i = 0; i < 3; ++i) f_->addParamAttr(i, llvm::Attribute::NoAlias);
    entry_ = llvm::BasicBlock::Create(ctx, "entry", f_);
    b_.SetInsertPoint(entry_);
    // Rows [lo, hi) counted through the batches, columns [col_lo, col_hi) of each.
    llvm::Value *A = f_->getArg(0), *B = f_->getArg(1), *C = f_->getArg(2), *lo = f_->getArg(3), *hi = f_->getArg(4);
    llvm::Value *col_lo = f_->getArg(5), *col_hi = f_->getArg(6);
    // The sizes are arguments, so one function serves every product of a layout (compile time
    // grows with the kinds of products, not their number).
    llvm::Value *M = f_->getArg(7), *N = f_->getArg(8), *K = f_->getArg(9), *a_table = f_->getArg(10), *b_table = f_->getArg(11);
    // B's line table too, so that the products of every convolution read by lines share one function.
    if (g_.b_read == kir::Gemm::BRead::lines) lines_ = f_->getArg(12);
    N_ = N;
    // The transposes: arguments where one function serves every layout (gemm_transposes_vary()).
    llvm::Value *ta = b_.getInt1(g_.ta), *tb = b_.getInt1(g_.tb);
    if (gemm_transposes_vary(g_)) {
      ta = b_.CreateTrunc(b_.CreateAnd(f_->getArg(13), c(1)), b_.getInt1Ty());
      tb = b_.CreateICmpNE(b_.CreateAnd(f_->getArg(13), c(2)), c(0));
    }
    ta_ = ta;
    if (g_.dot && g_.sum_batches) {
      emit_dot_sum(A, B, C, lo, hi, col_lo, col_hi, K, a_table, b_table, f_->getArg(14));
      b_.CreateRetVoid();
      return f_;
    }
    if (g_.dot) {
      emit_dot(A, B, C, lo, hi, col_lo, col_hi, M, K, a_table, b_table);
      b_.CreateRetVoid();
      return f_;
    }
    bool bf16 = g_.precision == kir::Gemm::Precision::bf16;
    pairs_ = bf16 && t_.bf16_dot;
    round_ = bf16 && !pairs_;
    if (g_.pairs && !pairs_) throw std::logic_error("a product of bf16 pairs on a micro-kernel without VDPBF16PS");
    // A pair of bf16 takes the bytes of one f32: the same panels in cache hold twice the depth.
    if (pairs_) t_.depth *= 2;
    const int NR = t_.columns(), MR = t_.rows, KC = t_.depth;
    const int NP = t_.panels, NC = NP * NR;
    // B's block: NP panels of KC x NR (L2), and A's micro-panel: MR x KC (L1), both packed so
    // the micro-kernel reads them contiguously (A rows 4 KiB apart would fight over cache sets).
    if (!pairs_) {
      panel_ = b_.CreateAlloca(llvm::ArrayType::get(f32_, static_cast<uint64_t>(KC * NC)), nullptr, "panel");
      panel_->setAlignment(llvm::Align(64));
      auto* a = b_.CreateAlloca(llvm::ArrayType::get(f32_, static_cast<uint64_t>(KC * MR)), nullptr, "apanel");
      a->setAlignment(llvm::Align(64));
      apanel_ = own_apanel_ = a;
    } else {
      // The same panels as pairs of bf16 in 32-bit lanes: VDPBF16PS's operands.
      ppanel_ = b_.CreateAlloca(llvm::ArrayType::get(b_.getInt32Ty(), static_cast<uint64_t>(KC / 2 * NC)), nullptr, "pair_panel");
      ppanel_->setAlignment(llvm::Align(64));
      auto* a = b_.CreateAlloca(llvm::ArrayType::get(b_.getInt32Ty(), static_cast<uint64_t>(KC / 2 * MR)), nullptr, "apairs");
      a->setAlignment(llvm::Align(64));
      apairs_ = own_apairs_ = a;
    }
    for (int i = 0; i < MR * t_.vectors; ++i) acc_.push_back(b_.CreateAlloca(vt_, nullptr, "acc"));
    // Element (i, k) of A is A[i * sa_i + k * sa_k]; element (k, j) of B is B[k * sb_k + j * sb_j].
    llvm::Value *sa_i = b_.CreateSelect(ta, c(1), K), *sa_k = b_.CreateSelect(ta, M, c(1));
    llvm::Value *sb_k = b_.CreateSelect(tb, c(1), N), *sb_j = b_.CreateSelect(tb, K, c(1));
    llvm::Value* b_rows_contiguous = b_.CreateNot(tb);
    llvm::Value* shared = shares_a(g_, t_) ? pack_shared_a(A, a_table, M, K, sa_i, sa_k) : nullptr;
    for_each_batch(lo, hi, M, N, {A, B, C, a_table, b_table}, [&](const Batch& batch) {
      auto [r0, r1, Ab, Bb, Cb] = batch;
      // A few rows reuse a packed panel too seldom to pay for packing it (each thread packs
      // its own): the micro-kernel then reads row-major B in place, and only a partial last
      // panel is packed (for its zero padding).
      // bf16 operands are rounded as they are packed, so B is always packed.
      // So are pairs, unless B holds them already (kir::Gemm::pairs).
      bool can_read_b = g_.b_read != kir::Gemm::BRead::patches && (!bf16 || g_.pairs);
      llvm::Value* direct = can_read_b ? b_.CreateAnd(b_rows_contiguous, b_.CreateICmpSLE(b_.CreateSub(r1, r0), c(kDirectRows))) : b_.getFalse();
      using Causal = kir::Gemm::Causal;
      Causal causal = g_.causal;
      // Causal: columns and depths past the batch's last row (before its first, k_above) are
      // never needed; slices stay aligned to KC, so a tile's first is where it stores.
      llvm::Value* col_end = causal == Causal::columns ? smin(col_hi, r1) : col_hi;
      llvm::Value* k_begin = causal == Causal::k_above ? b_.CreateMul(b_.CreateSDiv(r0, c(KC)), c(KC)) : c(0);
      llvm::Value* k_end = causal == Causal::k_below ? smin(K, r1) : K;
      loop(col_lo, col_end, c(NC), [&](llvm::Value* jc) {
        llvm::Value* jend = smin(b_.CreateAdd(jc, c(NC)), col_end);
        loop(k_begin, k_end, c(KC), [&](llvm::Value* pc) {
          llvm::Value* kc = smin(b_.CreateSub(K, pc), c(KC));
          loop(jc, jend, c(NR), [&](llvm::Value* jr) {
            llvm::Value* nr = smin(b_.CreateSub(N, jr), c(NR));
            when(b_.CreateOr(b_.CreateNot(direct), b_.CreateICmpSLT(nr, c(NR))),
                 [&] {
                   if (g_.pairs && g_.tb) return pack_sliding_pairs(Bb, pair_panel_at(jc, jr), pc, jr, kc, nr, sb_j);
                   if (g_.pairs) return copy_pairs(Bb, pair_panel_at(jc, jr), pc, jr, kc, nr, sb_k);
                   if (pairs_) return pack_pairs(Bb, pair_panel_at(jc, jr), pc, jr, kc, nr, sb_k, sb_j, !g_.tb);
                   pack(Bb, panel_at(jc, jr), pc, jr, kc, nr, sb_k, sb_j, b_rows_contiguous);
                   if (round_) to_bf16_b(jc, jr, kc);
                 });
          });
          loop(r0, r1, c(MR), [&](llvm::Value* i) {
           when(tile_needed(causal, i, jc, pc, kc), [&] {
            // The tile's depths [pc + ks, pc + ke) of the slice (a pair's start stays even).
            llvm::Value *ks = c(0), *ke = kc, *tile_end = b_.CreateAdd(i, c(MR));
            if (causal == Causal::k_below) ke = smin(kc, b_.CreateSub(tile_end, pc));
            if (causal == Causal::k_above) ks = b_.CreateAnd(smax(c(0), b_.CreateSub(i, pc)), c(pairs_ ? -2 : -1));
            llvm::Value* depth = b_.CreateSub(ke, ks);
            llvm::Value* first = b_.CreateAdd(pc, ks);
            auto pack_tile = [&] {
              if (pairs_) pack_a_pairs(Ab, i, r1, first, depth, sa_i, sa_k);
              else pack_a(Ab, i, r1, first, depth, sa_i, sa_k);
              if (round_) to_bf16_a(depth);
            };
            if (shared) read_shared_a(shared, i, first, pack_tile);
            else pack_tile();
            // A tile of k_above starts storing at its first slice, not at the batch's.
            llvm::Value* accumulate = causal == Causal::k_above ? b_.CreateICmpSGT(pc, i) : b_.CreateICmpSGT(pc, c(0));
            llvm::Value* jtop = causal == Causal::columns ? smin(jend, tile_end) : jend;
            loop(jc, jtop, c(NR), [&](llvm::Value* jr) {
              llvm::Value* nr = smin(b_.CreateSub(N, jr), c(NR));
              if (pairs_) {
                llvm::Value* packed = pair_panel_at(jc, jr);
                llvm::Value* in_place = b_.CreateAnd(direct, b_.CreateICmpEQ(nr, c(NR)));
                tile_pairs([&](llvm::Value* q) -> llvm::Value* {
                  llvm::Value* p = b_.CreateAdd(q, b_.CreateUDiv(ks, c(2)));
                  llvm::Value* at = b_.CreateInBoundsGEP(b_.getInt32Ty(), packed, b_.CreateMul(p, c(NR)));
                  if (!g_.pairs || g_.tb) return at;
                  llvm::Value* own = b_.CreateAdd(line(b_.CreateAdd(b_.CreateUDiv(pc, c(2)), p), sb_k), jr);
                  return b_.CreateSelect(in_place, b_.CreateInBoundsGEP(b_.getInt32Ty(), Bb, own), at);
                }, depth);
                return store_tile(Cb, i, r1, accumulate, jr, nr);
              }
              llvm::Value* in_place = b_.CreateAnd(direct, b_.CreateICmpEQ(nr, c(NR)));
              llvm::Value* panel = panel_at(jc, jr);
              // Row k of the panel, or of B itself where it is read in place: evenly spaced rows
              // are one base and stride chosen per tile; only lines load each row's start.
              llvm::Value* base = b_.CreateSelect(in_place, b_.CreateInBoundsGEP(f32_, Bb, b_.CreateAdd(b_.CreateMul(pc, N), jr)), panel);
              llvm::Value* stride = b_.CreateSelect(in_place, N, c(NR));
              auto row_at = [&](llvm::Value* t) -> llvm::Value* {
                llvm::Value* k = b_.CreateAdd(t, ks);
                if (!lines_) return b_.CreateInBoundsGEP(f32_, base, b_.CreateMul(k, stride));
                llvm::Value* packed = b_.CreateInBoundsGEP(f32_, panel, b_.CreateMul(k, c(NR)));
                llvm::Value* own = b_.CreateInBoundsGEP(f32_, Bb, b_.CreateAdd(line(b_.CreateAdd(pc, k), sb_k), jr));
                return b_.CreateSelect(in_place, own, packed);
              };
              tile(row_at, depth);
              store_tile(Cb, i, r1, accumulate, jr, nr);
            });
            apanel_ = own_apanel_, apairs_ = own_apairs_;
           });
          });
        });
      });
    });
    b_.CreateRetVoid();
    return f_;
  }

 private:
  llvm::Value* c(int64_t v) { return b_.getInt64(static_cast<uint64_t>(v)); }
  // Where line r of B starts in its batch (see kir::Gemm::b_lines); r must be a valid line.
  llvm::Value* line(llvm::Value* r, llvm::Value* stride) {
    if (!lines_) return b_.CreateMul(r, stride);
    return b_.CreateLoad(i64_, b_.CreateInBoundsGEP(i64_, lines_, r));
  }
  llvm::Value* smin(llvm::Value* a, llvm::Value* b) { return b_.CreateBinaryIntrinsic(llvm::Intrinsic::smin, a, b); }
  llvm::Value* smax(llvm::Value* a, llvm::Value* b) { return b_.CreateBinaryIntrinsic(llvm::Intrinsic::smax, a, b); }

 public:
  static llvm::Value* offsets_table(llvm::Module& m, const std::vector<int64_t>& offsets, const std::string& name) {
    if (auto* g = m.getNamedGlobal(name)) return g;
    auto* i64 = llvm::Type::getInt64Ty(m.getContext());
    std::vector<llvm::Constant*> elems;
    for (int64_t o : offsets) elems.push_back(llvm::ConstantInt::get(i64, static_cast<uint64_t>(o)));
    auto* at = llvm::ArrayType::get(i64, elems.size());
    return new llvm::GlobalVariable(m, at, true, llvm::GlobalValue::PrivateLinkage, llvm::ConstantArray::get(at, elems), name);
  }

 private:

  // for (i = begin; i < end; i += step) body(i)
  void loop(llvm::Value* begin, llvm::Value* end, llvm::Value* step, const std::function<void(llvm::Value*)>& body) {
    auto& ctx = m_.getContext();
    llvm::IRBuilder<> at_entry(entry_, entry_->begin());
    llvm::AllocaInst* var = at_entry.CreateAlloca(i64_);
    b_.CreateStore(begin, var);
    auto* head = llvm::BasicBlock::Create(ctx, "loop", f_);
    auto* body_bb = llvm::BasicBlock::Create(ctx, "body", f_);
    auto* exit = llvm::BasicBlock::Create(ctx, "exit", f_);
    b_.CreateBr(head);
    b_.SetInsertPoint(head);
    llvm::Value* i = b_.CreateLoad(i64_, var);
    b_.CreateCondBr(b_.CreateICmpSLT(i, end), body_bb, exit);
    b_.SetInsertPoint(body_bb);
    body(i);
    b_.CreateStore(b_.CreateAdd(i, step, "", true, true), var);
    // The loops are unrolled by construction where it pays (the register tile); LLVM's
    // unroller only doubled the compile time.
    auto* latch = b_.CreateBr(head);
    llvm::Metadata* disable[] = {llvm::MDString::get(ctx, "llvm.loop.unroll.disable")};
    llvm::MDNode* options = llvm::MDNode::get(ctx, disable);
    llvm::Metadata* self_and_options[] = {nullptr, options};
    llvm::MDNode* id = llvm::MDNode::getDistinct(ctx, self_and_options);
    id->replaceOperandWith(0, id);
    latch->setMetadata(llvm::LLVMContext::MD_loop, id);
    b_.SetInsertPoint(exit);
  }

  // if (cond) then() else otherwise(), only the one a constant condition picks.
  void branch(llvm::Value* cond, const std::function<void()>& then, const std::function<void()>& otherwise) {
    if (auto* known = llvm::dyn_cast<llvm::ConstantInt>(cond)) return known->isOne() ? then() : otherwise();
    auto& ctx = m_.getContext();
    auto* yes = llvm::BasicBlock::Create(ctx, "then", f_);
    auto* no = llvm::BasicBlock::Create(ctx, "else", f_);
    auto* done = llvm::BasicBlock::Create(ctx, "endif", f_);
    b_.CreateCondBr(cond, yes, no);
    b_.SetInsertPoint(yes);
    then();
    b_.CreateBr(done);
    b_.SetInsertPoint(no);
    otherwise();
    b_.CreateBr(done);
    b_.SetInsertPoint(done);
  }

  // if (cond) then()
  void when(llvm::Value* cond, const std::function<void()>& then) {
    auto& ctx = m_.getContext();
    auto* yes = llvm::BasicBlock::Create(ctx, "then", f_);
    auto* done = llvm::BasicBlock::Create(ctx, "endif", f_);
    b_.CreateCondBr(cond, yes, done);
    b_.SetInsertPoint(yes);
    then();
    b_.CreateBr(done);
    b_.SetInsertPoint(done);
  }

  // panel[k][j] = B(pc + k, jr + j) for k < kc, j < NR; zero past the last column.
  // The panel of columns [jr, jr + NR) within the block starting at jc.
  llvm::Value* panel_at(llvm::Value* jc, llvm::Value* jr) {
    llvm::Value* index = b_.CreateUDiv(b_.CreateSub(jr, jc), c(t_.columns()));
    return b_.CreateInBoundsGEP(f32_, panel_, b_.CreateMul(index, c(static_cast<int64_t>(t_.depth) * t_.columns())));
  }

  llvm::Value* pair_panel_at(llvm::Value* jc, llvm::Value* jr) {
    llvm::Value* index = b_.CreateUDiv(b_.CreateSub(jr, jc), c(t_.columns()));
    return b_.CreateInBoundsGEP(b_.getInt32Ty(), ppanel_, b_.CreateMul(index, c(static_cast<int64_t>(t_.depth / 2) * t_.columns())));
  }

  llvm::Value* bf16_bits(llvm::Value* x) { return stag::bf16_bits(b_, x); }

  // The packed panel of B for a bf16 product on the f32 micro-kernel, rounded in place.
  void to_bf16_b(llvm::Value* jc, llvm::Value* jr, llvm::Value* kc) {
    const int NR = t_.columns(), NV = t_.vectors, VW = t_.lanes;
    llvm::Value* panel = panel_at(jc, jr);
    auto row = [&](llvm::Value* k, int v) { return b_.CreateInBoundsGEP(f32_, panel, b_.CreateAdd(b_.CreateMul(k, c(NR)), c(v * VW))); };
    loop(c(0), kc, c(1), [&](llvm::Value* k) {
      for (int v = 0; v < NV; ++v) b_.CreateStore(b_.CreateBitCast(bf16_bits(b_.CreateLoad(vt_, row(k, v))), vt_), row(k, v));
    });
  }

  // The same for A's micro-panel (MR values a k).
  void to_bf16_a(llvm::Value* kc) {
    loop(c(0), b_.CreateMul(kc, c(t_.rows)), c(1), [&](llvm::Value* e) {
      llvm::Value* at = b_.CreateInBoundsGEP(f32_, apanel_, e);
      b_.CreateStore(round_to_bf16(b_, b_.CreateLoad(f32_, at)), at);
    });
  }

  // Pairs of bf16 in 32-bit lanes, VDPBF16PS's operands: lane l holds lo[l] rounded in its low
  // half and hi[l] in its high half (the products of k and k + 1 of one column).
  llvm::Value* stacked_pairs(llvm::Value* lo, llvm::Value* hi) { return b_.CreateOr(bf16_bits(hi), b_.CreateLShr(bf16_bits(lo), 16)); }

  // Neighbours as pairs: lane l holds x[2l] and x[2l + 1] of the values first, then second (k
  // and k + 1 of a row): the high halves of the rounded values, in order.
  llvm::Value* adjacent_pairs(llvm::Value* first, llvm::Value* second) {
    unsigned n = static_cast<unsigned>(llvm::cast<llvm::FixedVectorType>(first->getType())->getNumElements());
    auto* halves = llvm::FixedVectorType::get(b_.getInt16Ty(), 2 * n);
    std::vector<int> high;
    for (unsigned j = 0; j < 2 * n; ++j) high.push_back(static_cast<int>(2 * j + 1));
    llvm::Value* both = b_.CreateShuffleVector(b_.CreateBitCast(bf16_bits(first), halves), b_.CreateBitCast(bf16_bits(second), halves), high);
    return b_.CreateBitCast(both, llvm::FixedVectorType::get(b_.getInt32Ty(), n));
  }

  // B's panel as pairs of rows (2q, 2q + 1), zero past kc, read straight from B as pack() reads
  // it (no f32 panel in between).
  void pack_pairs(llvm::Value* B, llvm::Value* dst, llvm::Value* pc, llvm::Value* jr, llvm::Value* kc, llvm::Value* nr, llvm::Value* sb_k,
                  llvm::Value* sb_j, bool rows_contiguous) {
    const int NV = t_.vectors, VW = t_.lanes;
    std::vector<llvm::Value*> masks;
    for (int v = 0; v < NV; ++v) masks.push_back(b_.CreateICmpSLT(lane_ids(), splat64(b_.CreateSub(nr, c(v * VW)))));
    if (g_.b_read == kir::Gemm::BRead::patches) return pack_pairs_of_rows(dst, kc, patch_rows(B, pc, jr, masks));
    if (!rows_contiguous) return pack_pairs_transposed(B, dst, pc, jr, kc, nr, sb_j);
    pack_pairs_of_rows(dst, kc, [&](llvm::Value* k, int v, llvm::Value* valid) {
      llvm::Value* at = b_.CreateInBoundsGEP(f32_, B, b_.CreateAdd(line(b_.CreateAdd(pc, k), sb_k), b_.CreateAdd(jr, c(v * VW))));
      return b_.CreateMaskedLoad(vt_, at, llvm::Align(4), b_.CreateAnd(masks[static_cast<size_t>(v)], splat1(valid)), zeros());
    });
  }

  // Pair row q of the panel from rows 2q and 2q + 1 (`row` reads vector v of a row, zero
  // unless `valid`; the row past an odd kc is not valid and is read as row kc - 1).
  void pack_pairs_of_rows(llvm::Value* dst, llvm::Value* kc, const RowRead& row) {
    const int NR = t_.columns(), NV = t_.vectors, VW = t_.lanes;
    loop(c(0), kc, c(2), [&](llvm::Value* k) {
      llvm::Value* k1 = b_.CreateAdd(k, c(1));
      llvm::Value* has_k1 = b_.CreateICmpSLT(k1, kc);
      for (int v = 0; v < NV; ++v) {
        llvm::Value* pair = stacked_pairs(row(k, v, b_.getTrue()), row(b_.CreateSelect(has_k1, k1, k), v, has_k1));
        llvm::Value* at = b_.CreateInBoundsGEP(b_.getInt32Ty(), dst, b_.CreateAdd(b_.CreateMul(b_.CreateUDiv(k, c(2)), c(NR)), c(v * VW)));
        b_.CreateAlignedStore(pair, at, llvm::Align(64));
      }
    });
  }

  // Transposed B (column j contiguous in k): 2VW k's of VW columns become VW pairs per column,
  // transposed in registers into VW pair rows. Past kc they are zeros, within the panel (its
  // depth is a multiple of 2VW).
  void pack_pairs_transposed(llvm::Value* B, llvm::Value* dst, llvm::Value* pc, llvm::Value* jr, llvm::Value* kc, llvm::Value* nr,
                             llvm::Value* sb_j) {
    const int NR = t_.columns(), NV = t_.vectors, VW = t_.lanes;
    loop(c(0), kc, c(2 * VW), [&](llvm::Value* k0) {
      llvm::Value* left = b_.CreateSub(kc, k0);
      llvm::Value* first = b_.CreateICmpSLT(lane_ids(), splat64(left));
      llvm::Value* second = b_.CreateICmpSLT(lane_ids(), splat64(b_.CreateSub(left, c(VW))));
      for (int v = 0; v < NV; ++v) {
        std::vector<llvm::Value*> block;
        for (int l = 0; l < VW; ++l) {
          llvm::Value* j = smin(b_.CreateAdd(jr, c(v * VW + l)), b_.CreateSub(N_, c(1)));
          llvm::Value* column = splat1(b_.CreateICmpSLT(c(v * VW + l), nr));
          llvm::Value* at = b_.CreateInBoundsGEP(f32_, B, b_.CreateAdd(line(j, sb_j), b_.CreateAdd(pc, k0)));
          llvm::Value* lo = b_.CreateMaskedLoad(vt_, at, llvm::Align(4), b_.CreateAnd(first, column), zeros());
          llvm::Value* hi = b_.CreateMaskedLoad(vt_, b_.CreateInBoundsGEP(f32_, at, c(VW)), llvm::Align(4), b_.CreateAnd(second, column), zeros());
          block.push_back(adjacent_pairs(lo, hi));
        }
        transpose(block);
        llvm::Value* q0 = b_.CreateUDiv(k0, c(2));
        for (int l = 0; l < VW; ++l) {
          llvm::Value* at = b_.CreateInBoundsGEP(b_.getInt32Ty(), dst, b_.CreateAdd(b_.CreateMul(b_.CreateAdd(q0, c(l)), c(NR)), c(v * VW)));
          b_.CreateAlignedStore(block[static_cast<size_t>(l)], at, llvm::Align(64));
        }
      }
    });
  }

  // Transposed B of sliding pairs (kir::Gemm::pairs): column j's pair of k and k + 1 is element
  // line(j) + k, so 2VW elements from an even k hold VW pairs in their even lanes; VW columns of
  // those transposed give VW pair rows. Pairs from kc on are zeros.
  void pack_sliding_pairs(llvm::Value* B, llvm::Value* dst, llvm::Value* pc, llvm::Value* jr, llvm::Value* kc, llvm::Value* nr,
                          llvm::Value* sb_j) {
    const int NR = t_.columns(), NV = t_.vectors, VW = t_.lanes;
    auto* wide = llvm::FixedVectorType::get(b_.getInt32Ty(), static_cast<unsigned>(2 * VW));
    std::vector<llvm::Constant*> ids;
    std::vector<int> even;
    for (int l = 0; l < 2 * VW; ++l) ids.push_back(llvm::ConstantInt::get(i64_, static_cast<uint64_t>(l)));
    for (int l = 0; l < VW; ++l) even.push_back(2 * l);
    llvm::Value* lanes = llvm::ConstantVector::get(ids);
    loop(c(0), kc, c(2 * VW), [&](llvm::Value* k0) {
      llvm::Value* in_k = b_.CreateICmpSLT(lanes, b_.CreateVectorSplat(static_cast<unsigned>(2 * VW), b_.CreateSub(kc, k0)));
      for (int v = 0; v < NV; ++v) {
        std::vector<llvm::Value*> block;
        for (int l = 0; l < VW; ++l) {
          llvm::Value* j = smin(b_.CreateAdd(jr, c(v * VW + l)), b_.CreateSub(N_, c(1)));
          llvm::Value* column = b_.CreateVectorSplat(static_cast<unsigned>(2 * VW), b_.CreateICmpSLT(c(v * VW + l), nr));
          llvm::Value* at = b_.CreateInBoundsGEP(b_.getInt32Ty(), B, b_.CreateAdd(line(j, sb_j), b_.CreateAdd(pc, k0)));
          llvm::Value* both = b_.CreateMaskedLoad(wide, at, llvm::Align(4), b_.CreateAnd(in_k, column), llvm::Constant::getNullValue(wide));
          block.push_back(b_.CreateShuffleVector(both, even));
        }
        transpose(block);
        llvm::Value* q0 = b_.CreateUDiv(k0, c(2));
        for (int l = 0; l < VW; ++l) {
          llvm::Value* at = b_.CreateInBoundsGEP(b_.getInt32Ty(), dst, b_.CreateAdd(b_.CreateMul(b_.CreateAdd(q0, c(l)), c(NR)), c(v * VW)));
          b_.CreateAlignedStore(block[static_cast<size_t>(l)], at, llvm::Align(64));
        }
      }
    });
  }

  // A's micro-panel as pairs of k straight from A: apairs[q][r] = A(i + r, pc + 2q) and
  // A(i + r, pc + 2q + 1), zero past kc; rows past the edge repeat the last (not stored).
  void pack_a_pairs(llvm::Value* A, llvm::Value* i, llvm::Value* r1, llvm::Value* pc, llvm::Value* kc, llvm::Value* sa_i, llvm::Value* sa_k) {
    if (g_.ta) return pack_a_pairs_by_k(A, i, r1, pc, kc, sa_k);
    const int MR = t_.rows, VW = t_.lanes;
    llvm::Value* last = b_.CreateSub(r1, c(1));
    std::vector<int> prefix;
    for (int r = 0; r < MR; ++r) prefix.push_back(r);
    // A row's 2VW k's are VW pairs; VW rows (MR of them real) transposed give VW pair rows.
    loop(c(0), kc, c(2 * VW), [&](llvm::Value* k0) {
      llvm::Value* left = b_.CreateSub(kc, k0);
      llvm::Value* first = b_.CreateICmpSLT(lane_ids(), splat64(left));
      llvm::Value* second = b_.CreateICmpSLT(lane_ids(), splat64(b_.CreateSub(left, c(VW))));
      std::vector<llvm::Value*> block;
      for (int r = 0; r < VW; ++r) {
        if (r >= MR) {
          block.push_back(llvm::Constant::getNullValue(block[0]->getType()));
          continue;
        }
        llvm::Value* row = smin(b_.CreateAdd(i, c(r)), last);
        llvm::Value* at = b_.CreateInBoundsGEP(f32_, A, b_.CreateAdd(b_.CreateMul(row, sa_i), b_.CreateAdd(pc, k0)));
        llvm::Value* lo = b_.CreateMaskedLoad(vt_, at, llvm::Align(4), first, zeros());
        llvm::Value* hi = b_.CreateMaskedLoad(vt_, b_.CreateInBoundsGEP(f32_, at, c(VW)), llvm::Align(4), second, zeros());
        block.push_back(adjacent_pairs(lo, hi));
      }
      transpose(block);
      llvm::Value* q0 = b_.CreateUDiv(k0, c(2));
      for (int q = 0; q < VW; ++q) {
        llvm::Value* at = b_.CreateInBoundsGEP(b_.getInt32Ty(), apairs_, b_.CreateMul(b_.CreateAdd(q0, c(q)), c(MR)));
        b_.CreateAlignedStore(b_.CreateShuffleVector(block[static_cast<size_t>(q)], prefix), at, llvm::Align(4));
      }
    });
  }

  // Transposed A (a k's rows contiguous): rows k and k + 1 of MR lanes each, stacked.
  void pack_a_pairs_by_k(llvm::Value* A, llvm::Value* i, llvm::Value* r1, llvm::Value* pc, llvm::Value* kc, llvm::Value* sa_k) {
    const int MR = t_.rows;
    auto* rt = llvm::FixedVectorType::get(f32_, static_cast<unsigned>(MR));
    std::vector<llvm::Constant*> ids;
    for (int r = 0; r < MR; ++r) ids.push_back(llvm::ConstantInt::get(i64_, static_cast<uint64_t>(r)));
    llvm::Value* rows = b_.CreateICmpSLT(llvm::ConstantVector::get(ids), b_.CreateVectorSplat(static_cast<unsigned>(MR), b_.CreateSub(r1, i)));
    auto row = [&](llvm::Value* k, llvm::Value* valid) {
      llvm::Value* at = b_.CreateInBoundsGEP(f32_, A, b_.CreateAdd(i, b_.CreateMul(b_.CreateAdd(pc, k), sa_k)));
      return b_.CreateMaskedLoad(rt, at, llvm::Align(4), b_.CreateAnd(rows, b_.CreateVectorSplat(static_cast<unsigned>(MR), valid)),
                                 llvm::Constant::getNullValue(rt));
    };
    loop(c(0), kc, c(2), [&](llvm::Value* k) {
      llvm::Value* k1 = b_.CreateAdd(k, c(1));
      llvm::Value* has_k1 = b_.CreateICmpSLT(k1, kc);
      llvm::Value* pair = stacked_pairs(row(k, b_.getTrue()), row(b_.CreateSelect(has_k1, k1, k), has_k1));
      b_.CreateAlignedStore(pair, b_.CreateInBoundsGEP(b_.getInt32Ty(), apairs_, b_.CreateMul(b_.CreateUDiv(k, c(2)), c(MR))), llvm::Align(4));
    });
  }

  // kir::Gemm::dot: C(i, j) = A's row i (at i * K) dotted with B's line j (line(j)), both
  // contiguous in k. A tile of kDotRows rows by dot_columns() lines keeps one register of
  // partial sums a pair, lanes over k; each KC-deep slice ends with their horizontal sums,
  // stored (the first slice) or added to C. The tile's rows of A stay in L1 while the
  // column tiles stream B's lines past them.
  void emit_dot(llvm::Value* A, llvm::Value* B, llvm::Value* C, llvm::Value* lo, llvm::Value* hi, llvm::Value* col_lo,
                llvm::Value* col_hi, llvm::Value* M, llvm::Value* K, llvm::Value* a_table, llvm::Value* b_table) {
    const int VW = t_.lanes, MR = static_cast<int>(kir::kDotRows), NT = dot_columns();
    if (g_.ta || !g_.tb || g_.precision != kir::Gemm::Precision::f32) throw std::logic_error("a dot product needs f32 rows and lines");
    for (int i = 0; i < MR * NT; ++i) acc_.push_back(b_.CreateAlloca(vt_, nullptr, "dot_acc"));
    // Slices of equal depth, a multiple of the lanes, at most kDotDepth: no shallow last slice.
    llvm::Value* slices = b_.CreateUDiv(b_.CreateAdd(K, c(kDotDepth - 1)), c(kDotDepth));
    llvm::Value* depth = b_.CreateUDiv(b_.CreateAdd(K, b_.CreateSub(slices, c(1))), slices);
    llvm::Value* KC = b_.CreateMul(b_.CreateUDiv(b_.CreateAdd(depth, c(VW - 1)), c(VW)), c(VW));
    for_each_batch(lo, hi, M, N_, {A, B, C, a_table, b_table}, [&](const Batch& batch) {
      auto [r0, r1, Ab, Bb, Cb] = batch;
      loop(c(0), K, KC, [&](llvm::Value* pc) {
        llvm::Value* kc = smin(b_.CreateSub(K, pc), KC);
        llvm::Value* whole = b_.CreateAnd(kc, c(-VW));
        loop(r0, r1, c(MR), [&](llvm::Value* i) {
          std::vector<llvm::Value*> rows;  // rows past r1 repeat the last (not stored)
          for (int r = 0; r < MR; ++r)
            rows.push_back(b_.CreateInBoundsGEP(f32_, Ab, b_.CreateAdd(b_.CreateMul(smin(b_.CreateAdd(i, c(r)), b_.CreateSub(r1, c(1))), K), pc)));
          loop(col_lo, col_hi, c(NT), [&](llvm::Value* j) {
            std::vector<llvm::Value*> lines;  // columns past col_hi repeat the last (not stored)
            for (int t = 0; t < NT; ++t)
              lines.push_back(b_.CreateInBoundsGEP(f32_, Bb, b_.CreateAdd(line(smin(b_.CreateAdd(j, c(t)), b_.CreateSub(col_hi, c(1))), K), pc)));
            for (auto* a : acc_) b_.CreateStore(zeros(), a);
            loop(c(0), whole, c(VW), [&](llvm::Value* k) { dot_step(rows, lines, k, nullptr); });
            when(b_.CreateICmpSLT(whole, kc), [&] { dot_step(rows, lines, whole, b_.CreateSub(kc, whole)); });
            store_dot(Cb, i, r1, j, col_hi, b_.CreateICmpSGT(pc, c(0)));
          });
        });
      });
    });
  }

  // The tile's partial sums over the lanes' k's from k of every row and line (`left`: the k's
  // left in the slice, fewer than the lanes; null for whole vectors).
  // The operands of stacked products: A and B at each batch's offset in its table, C dense.
  struct Operands { llvm::Value *A, *B, *C, *a_table, *b_table; };
  // One batch of a thread's rows: its rows [r0, r1) and its A, B and C.
  // kir::Gemm::sum_batches: C(i, j) = the sum over the batches of A_b's row i dotted with
  // B_b's line j. Groups of batches about a slice deep (kDotDepth) run tile by tile: a tile's
  // partial sums run on through every batch of the group before their horizontal sums, so
  // shallow batches (a 7 x 7 plane's pixels) cost no more of those than one deep product. A
  // batch's depth past its last whole vector is a masked step.
  void emit_dot_sum(llvm::Value* A, llvm::Value* B, llvm::Value* C, llvm::Value* lo, llvm::Value* hi, llvm::Value* col_lo,
                    llvm::Value* col_hi, llvm::Value* K, llvm::Value* a_table, llvm::Value* b_table, llvm::Value* batches) {
    const int VW = t_.lanes, MR = static_cast<int>(kir::kDotRows), NT = dot_columns();
    if (g_.ta || !g_.tb || g_.precision != kir::Gemm::Precision::f32) throw std::logic_error("a dot product needs f32 rows and lines");
    for (int i = 0; i < MR * NT; ++i) acc_.push_back(b_.CreateAlloca(vt_, nullptr, "dot_acc"));
    llvm::Value* group = smax(b_.CreateSDiv(c(kDotDepth), K), c(1));
    llvm::Value* whole = b_.CreateAnd(K, c(-VW));
    // The batches' offsets are evenly spaced: a tile's rows and lines are found once, then stepped.
    auto offset = [&](llvm::Value* table, llvm::Value* bi) { return b_.CreateLoad(i64_, b_.CreateInBoundsGEP(i64_, table, bi)); };
    llvm::Value* second = b_.CreateZExt(b_.CreateICmpSGT(batches, c(1)), i64_);  // batch 1, or 0 again for one batch
    llvm::Value *A0 = b_.CreateInBoundsGEP(f32_, A, offset(a_table, c(0))), *B0 = b_.CreateInBoundsGEP(f32_, B, offset(b_table, c(0)));
    llvm::Value* a_step = b_.CreateSub(offset(a_table, second), offset(a_table, c(0)));
    llvm::Value* b_step = b_.CreateSub(offset(b_table, second), offset(b_table, c(0)));
    loop(c(0), batches, group, [&](llvm::Value* g0) {
      llvm::Value* g1 = smin(b_.CreateAdd(g0, group), batches);
      loop(lo, hi, c(MR), [&](llvm::Value* i) {
        std::vector<llvm::Value*> rows0;  // past hi: the last again (not stored)
        for (int r = 0; r < MR; ++r)
          rows0.push_back(b_.CreateInBoundsGEP(f32_, A0, b_.CreateMul(smin(b_.CreateAdd(i, c(r)), b_.CreateSub(hi, c(1))), K)));
        loop(col_lo, col_hi, c(NT), [&](llvm::Value* j) {
          std::vector<llvm::Value*> lines0;  // past col_hi: the last again (not stored)
          for (int t = 0; t < NT; ++t)
            lines0.push_back(b_.CreateInBoundsGEP(f32_, B0, line(smin(b_.CreateAdd(j, c(t)), b_.CreateSub(col_hi, c(1))), K)));
          for (auto* a : acc_) b_.CreateStore(zeros(), a);
          loop(g0, g1, c(1), [&](llvm::Value* bi) {
            llvm::Value *a_at = b_.CreateMul(bi, a_step), *b_at = b_.CreateMul(bi, b_step);
            std::vector<llvm::Value*> rows, lines;
            for (llvm::Value* r : rows0) rows.push_back(b_.CreateInBoundsGEP(f32_, r, a_at));
            for (llvm::Value* l : lines0) lines.push_back(b_.CreateInBoundsGEP(f32_, l, b_at));
            loop(c(0), whole, c(VW), [&](llvm::Value* k) { dot_step(rows, lines, k, nullptr); });
            when(b_.CreateICmpSLT(whole, K), [&] { dot_step(rows, lines, whole, b_.CreateSub(K, whole)); });
          });
          store_dot(C, i, hi, j, col_hi, b_.CreateICmpSGT(g0, c(0)));
        });
      });
    });
  }

  struct Batch { llvm::Value *r0, *r1, *A, *B, *C; };
  // A thread's stacked rows [lo, hi), batch by batch (M rows a batch, C rows ldc wide).
  void for_each_batch(llvm::Value* lo, llvm::Value* hi, llvm::Value* M, llvm::Value* ldc, const Operands& in,
                      const std::function<void(const Batch&)>& body) {
    llvm::Value* first_batch = b_.CreateSDiv(lo, M);
    llvm::Value* end_batch = b_.CreateAdd(b_.CreateSDiv(b_.CreateSub(hi, c(1)), M), c(1));
    loop(first_batch, end_batch, c(1), [&](llvm::Value* bi) {
      llvm::Value* row0 = b_.CreateMul(bi, M);
      llvm::Value* a_off = b_.CreateLoad(i64_, b_.CreateInBoundsGEP(i64_, in.a_table, bi));
      llvm::Value* b_off = b_.CreateLoad(i64_, b_.CreateInBoundsGEP(i64_, in.b_table, bi));
      body({smax(b_.CreateSub(lo, row0), c(0)), smin(b_.CreateSub(hi, row0), M), b_.CreateInBoundsGEP(f32_, in.A, a_off),
            b_.CreateInBoundsGEP(f32_, in.B, b_off), b_.CreateInBoundsGEP(f32_, in.C, b_.CreateMul(row0, ldc))});
    });
  }

  void dot_step(const std::vector<llvm::Value*>& rows, const std::vector<llvm::Value*>& lines, llvm::Value* k, llvm::Value* left) {
    auto load = [&](llvm::Value* base) -> llvm::Value* {
      llvm::Value* at = b_.CreateInBoundsGEP(f32_, base, k);
      if (!left) return b_.CreateAlignedLoad(vt_, at, llvm::Align(4));
      return b_.CreateMaskedLoad(vt_, at, llvm::Align(4), b_.CreateICmpSLT(lane_ids(), splat64(left)), zeros());
    };
    std::vector<llvm::Value*> a;
    for (llvm::Value* row : rows) a.push_back(load(row));
    const size_t NT = lines.size();
    for (size_t t = 0; t < NT; ++t) {
      llvm::Value* bv = load(lines[t]);
      for (size_t r = 0; r < a.size(); ++r) {
        llvm::AllocaInst* slot = acc_[r * NT + t];
        b_.CreateStore(b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {vt_}, {a[r], bv, b_.CreateLoad(vt_, slot)}), slot);
      }
    }
  }

  // C(i + r, j + t) (+)= the lanes' sum of the tile's (r, t) for rows below r1 and columns
  // below col_hi: a row's sums in one vector (lane_sums), stored under a mask.
  void store_dot(llvm::Value* C, llvm::Value* i, llvm::Value* r1, llvm::Value* j, llvm::Value* col_hi, llvm::Value* accumulate) {
    const int MR = static_cast<int>(kir::kDotRows), NT = dot_columns();
    llvm::Value* mask = b_.CreateICmpSLT(lane_ids(), splat64(smin(b_.CreateSub(col_hi, j), c(NT))));
    for (int r = 0; r < MR; ++r) {
      llvm::Value* row = b_.CreateAdd(i, c(r));
      when(b_.CreateICmpSLT(row, r1), [&] {
        std::vector<llvm::Value*> accs;
        for (int t = 0; t < NT; ++t) accs.push_back(b_.CreateLoad(vt_, acc_[static_cast<size_t>(r * NT + t)]));
        llvm::Value* sums = lane_sums(std::move(accs));
        llvm::Value* at = b_.CreateInBoundsGEP(f32_, C, b_.CreateAdd(b_.CreateMul(row, N_), j));
        llvm::Value* old = b_.CreateMaskedLoad(vt_, at, llvm::Align(4), mask, zeros());
        b_.CreateMaskedStore(b_.CreateSelect(accumulate, b_.CreateFAdd(old, sums), sums), at, llvm::Align(4), mask);
      });
    }
  }

  // The sums of the lanes of each vector of v (at most the lanes of them), in lane t for v[t]:
  // each round adds the halves of two vectors' groups into one vector of twice the groups, half
  // as wide (group q of vector m holds vector m * groups + q's partial sums), until the groups
  // are one lane. 14 shuffles and 7 additions for 6 vectors of 16 lanes, not 6 reductions.
  llvm::Value* lane_sums(std::vector<llvm::Value*> v) {
    const int VW = t_.lanes;
    for (int width = VW, groups = 1; width > 1; width /= 2, groups *= 2) {
      if (v.size() % 2) v.push_back(zeros());
      std::vector<int> low, high;
      for (int q = 0; q < 2 * groups; ++q)
        for (int e = 0; e < width / 2; ++e) {
          int from = (q < groups ? 0 : VW) + (q % groups) * width + e;
          low.push_back(from);
          high.push_back(from + width / 2);
        }
      std::vector<llvm::Value*> next;
      for (size_t m = 0; m < v.size(); m += 2)
        next.push_back(b_.CreateFAdd(b_.CreateShuffleVector(v[m], v[m + 1], low), b_.CreateShuffleVector(v[m], v[m + 1], high)));
      v = std::move(next);
    }
    return v[0];
  }

  // Lines of B in a dot product's tile: the accumulators and A's rows take the rest of the registers.
  int dot_columns() const { return t_.lanes == 16 ? 6 : 2; }
  // A slice's depth: the tile's rows of A (16 KB in f32) stay in L1 beside the lines streaming past.
  static constexpr int64_t kDotDepth = 1024;

  llvm::Value* splat64(llvm::Value* x) { return b_.CreateVectorSplat(static_cast<unsigned>(t_.lanes), x); }
  llvm::Value* splat1(llvm::Value* bit) { return b_.CreateVectorSplat(static_cast<unsigned>(t_.lanes), bit); }
  llvm::Value* zeros() { return llvm::Constant::getNullValue(vt_); }

  // B's panel copied from B's own pair rows (kir::Gemm::pairs; kc is even), masked at column nr.
  void copy_pairs(llvm::Value* B, llvm::Value* dst, llvm::Value* pc, llvm::Value* jr, llvm::Value* kc, llvm::Value* nr, llvm::Value* sb_k) {
    const int NR = t_.columns(), NV = t_.vectors, VW = t_.lanes;
    auto* iv = llvm::FixedVectorType::get(b_.getInt32Ty(), static_cast<unsigned>(VW));
    std::vector<llvm::Value*> masks;
    for (int v = 0; v < NV; ++v) masks.push_back(b_.CreateICmpSLT(lane_ids(), splat64(b_.CreateSub(nr, c(v * VW)))));
    loop(c(0), b_.CreateUDiv(kc, c(2)), c(1), [&](llvm::Value* q) {
      llvm::Value* row = line(b_.CreateAdd(b_.CreateUDiv(pc, c(2)), q), sb_k);
      for (int v = 0; v < NV; ++v) {
        llvm::Value* at = b_.CreateInBoundsGEP(b_.getInt32Ty(), B, b_.CreateAdd(row, b_.CreateAdd(jr, c(v * VW))));
        llvm::Value* pair = b_.CreateMaskedLoad(iv, at, llvm::Align(4), masks[static_cast<size_t>(v)], llvm::Constant::getNullValue(iv));
        b_.CreateAlignedStore(pair, b_.CreateInBoundsGEP(b_.getInt32Ty(), dst, b_.CreateAdd(b_.CreateMul(q, c(NR)), c(v * VW))), llvm::Align(64));
      }
    });
  }

  // acc = apairs x B's pair rows over kc (`pair_row`: where pair row p starts): one VDPBF16PS
  // per register per pair of k.
  void tile_pairs(const std::function<llvm::Value*(llvm::Value*)>& pair_row, llvm::Value* kc) {
    const int MR = t_.rows, NV = t_.vectors, VW = t_.lanes;
    auto* iv = llvm::FixedVectorType::get(b_.getInt32Ty(), static_cast<unsigned>(VW));
    auto* bv_t = llvm::FixedVectorType::get(b_.getBFloatTy(), static_cast<unsigned>(2 * VW));
    for (auto* a : acc_) b_.CreateStore(llvm::Constant::getNullValue(vt_), a);
    llvm::Value* npairs = b_.CreateUDiv(b_.CreateAdd(kc, c(1)), c(2));
    loop(c(0), npairs, c(1), [&](llvm::Value* p) {
      llvm::Value* row = pair_row(p);
      std::vector<llvm::Value*> bv;
      for (int v = 0; v < NV; ++v) {
        llvm::Value* at = b_.CreateInBoundsGEP(b_.getInt32Ty(), row, c(v * VW));
        bv.push_back(b_.CreateBitCast(b_.CreateAlignedLoad(iv, at, llvm::Align(g_.pairs ? 4 : 64)), bv_t));
      }
      llvm::Value* a_p = b_.CreateInBoundsGEP(b_.getInt32Ty(), apairs_, b_.CreateMul(p, c(MR)));
      for (int r = 0; r < MR; ++r) {
        llvm::Value* a = b_.CreateLoad(b_.getInt32Ty(), b_.CreateInBoundsGEP(b_.getInt32Ty(), a_p, c(r)));
        llvm::Value* splat = b_.CreateBitCast(b_.CreateVectorSplat(static_cast<unsigned>(VW), a), bv_t);
        for (int v = 0; v < NV; ++v) {
          llvm::Value* slot = acc_[static_cast<size_t>(r * NV + v)];
          llvm::Value* sum = b_.CreateIntrinsic(llvm::Intrinsic::x86_avx512bf16_dpbf16ps_512, {},
                                                {b_.CreateLoad(vt_, slot), splat, bv[static_cast<size_t>(v)]});
          b_.CreateStore(sum, slot);
        }
      }
    });
  }

  llvm::Value* lane_ids() {
    std::vector<llvm::Constant*> ids;
    for (int l = 0; l < t_.lanes; ++l) ids.push_back(llvm::ConstantInt::get(i64_, static_cast<uint64_t>(l)));
    return llvm::ConstantVector::get(ids);
  }

  // Transposes rows[0..VW) (each VW lanes) in log2(VW) butterfly stages: at stage s, rows i and
  // i + s swap their odd s-blocks with each other's even ones.
  void transpose(std::vector<llvm::Value*>& rows) {
    const int VW = t_.lanes;
    for (int s = VW / 2; s >= 1; s /= 2) {
      std::vector<int> low, high;  // lane k of the new rows i and i + s, from (row i: k, row i + s: VW + k)
      for (int k = 0; k < VW; ++k) {
        bool even = (k / s) % 2 == 0;
        low.push_back(even ? k : VW + k - s);
        high.push_back(even ? k + s : VW + k);
      }
      for (int i = 0; i < VW; ++i) {
        if (i & s) continue;
        llvm::Value *a = rows[static_cast<size_t>(i)], *b = rows[static_cast<size_t>(i + s)];
        rows[static_cast<size_t>(i)] = b_.CreateShuffleVector(a, b, low);
        rows[static_cast<size_t>(i + s)] = b_.CreateShuffleVector(a, b, high);
      }
    }
  }

  // A batch-invariant A (a convolution's weight, the same for every image) packed once a call:
  // every tile of MR rows over the whole depth, side by side, when they fit kSharedA elements
  // (the answer, at run time). Each image's product then reads its tiles there instead of
  // packing them again (a 7 x 7 convolution's product per image has 55 columns: each packed
  // tile served two panels).
  static constexpr int64_t kSharedA = int64_t{1} << 16;
  llvm::Value* pack_shared_a(llvm::Value* A, llvm::Value* a_table, llvm::Value* M, llvm::Value* K, llvm::Value* sa_i, llvm::Value* sa_k) {
    const int MR = t_.rows, VW = t_.lanes;
    auto* buf = b_.CreateAlloca(llvm::ArrayType::get(b_.getInt32Ty(), static_cast<uint64_t>(kSharedA)), nullptr, "shared_a");
    buf->setAlignment(llvm::Align(64));
    shared_a_ = buf;
    // The packers write whole blocks of VW k's (2VW for pairs): a tile's depth rounded up to them.
    llvm::Value* depth = b_.CreateMul(b_.CreateUDiv(b_.CreateAdd(K, c(2 * VW - 1)), c(2 * VW)), c(2 * VW));
    shared_tile_ = b_.CreateMul(pairs_ ? b_.CreateUDiv(depth, c(2)) : depth, c(MR));
    llvm::Value* tiles = b_.CreateUDiv(b_.CreateAdd(M, c(MR - 1)), c(MR));
    llvm::Value* fits = b_.CreateICmpSLE(b_.CreateMul(tiles, shared_tile_), c(kSharedA));
    llvm::Value* A0 = b_.CreateInBoundsGEP(f32_, A, b_.CreateLoad(i64_, a_table));
    when(fits, [&] {
      loop(c(0), M, c(MR), [&](llvm::Value* i) {
        llvm::Value* at = b_.CreateInBoundsGEP(b_.getInt32Ty(), buf, b_.CreateMul(b_.CreateUDiv(i, c(MR)), shared_tile_));
        if (pairs_) apairs_ = at, pack_a_pairs(A0, i, M, c(0), K, sa_i, sa_k);
        else apanel_ = at, pack_a(A0, i, M, c(0), K, sa_i, sa_k);
      });
    });
    apanel_ = own_apanel_, apairs_ = own_apairs_;
    return fits;
  }

  // Points the micro-kernel at tile i's depths from `first` on in the shared packing when it
  // was made and the tile starts on one of its tiles (a call's first rows may not); else packs.
  void read_shared_a(llvm::Value* shared, llvm::Value* i, llvm::Value* first, const std::function<void()>& pack_tile) {
    const int MR = t_.rows;
    llvm::Value* use = b_.CreateAnd(shared, b_.CreateICmpEQ(b_.CreateSRem(i, c(MR)), c(0)));
    when(b_.CreateNot(use), pack_tile);
    llvm::Value* k = pairs_ ? b_.CreateUDiv(first, c(2)) : first;
    llvm::Value* at = b_.CreateInBoundsGEP(b_.getInt32Ty(), shared_a_,
                                           b_.CreateAdd(b_.CreateMul(b_.CreateUDiv(i, c(MR)), shared_tile_), b_.CreateMul(k, c(MR))));
    if (pairs_) apairs_ = b_.CreateSelect(use, at, own_apairs_);
    else apanel_ = b_.CreateSelect(use, at, own_apanel_);
  }

  // apanel[k][r] = A(i + r, pc + k), zero past kc; rows past the edge repeat the last row
  // (their results are not stored), so the micro-kernel has no branches. Row-major A: VW k's
  // of each row in one load, VW rows (MR of them real) transposed in registers, as
  // pack_a_pairs does (an element at a time, a 7 x 7 convolution's products per image took
  // 1.4 times as long: each of their tiles packs a 576-deep weight row for two panels of B).
  void pack_a(llvm::Value* A, llvm::Value* i, llvm::Value* r1, llvm::Value* pc, llvm::Value* kc, llvm::Value* sa_i, llvm::Value* sa_k) {
    branch(ta_, [&] { pack_a_by_k(A, i, r1, pc, kc, sa_k); }, [&] { pack_a_by_rows(A, i, r1, pc, kc, sa_i); });
  }

  void pack_a_by_rows(llvm::Value* A, llvm::Value* i, llvm::Value* r1, llvm::Value* pc, llvm::Value* kc, llvm::Value* sa_i) {
    const int MR = t_.rows, VW = t_.lanes;
    llvm::Value* last = b_.CreateSub(r1, c(1));
    std::vector<int> prefix;
    for (int r = 0; r < MR; ++r) prefix.push_back(r);
    // Past kc the panel's rows are zeros the micro-kernel never reads (the depth is a multiple of VW).
    loop(c(0), kc, c(VW), [&](llvm::Value* k0) {
      llvm::Value* mask = b_.CreateICmpSLT(lane_ids(), splat64(b_.CreateSub(kc, k0)));
      std::vector<llvm::Value*> block;
      for (int r = 0; r < VW; ++r) {
        if (r >= MR) {
          block.push_back(zeros());
          continue;
        }
        llvm::Value* row = smin(b_.CreateAdd(i, c(r)), last);
        llvm::Value* at = b_.CreateInBoundsGEP(f32_, A, b_.CreateAdd(b_.CreateMul(row, sa_i), b_.CreateAdd(pc, k0)));
        block.push_back(b_.CreateMaskedLoad(vt_, at, llvm::Align(4), mask, zeros()));
      }
      transpose(block);
      for (int k = 0; k < VW; ++k) {
        llvm::Value* at = b_.CreateInBoundsGEP(f32_, apanel_, b_.CreateMul(b_.CreateAdd(k0, c(k)), c(MR)));
        b_.CreateAlignedStore(b_.CreateShuffleVector(block[static_cast<size_t>(k)], prefix), at, llvm::Align(4));
      }
    });
  }

  // Transposed A (a k's rows contiguous): one load of MR lanes a k, rows past the edge zero.
  void pack_a_by_k(llvm::Value* A, llvm::Value* i, llvm::Value* r1, llvm::Value* pc, llvm::Value* kc, llvm::Value* sa_k) {
    const int MR = t_.rows;
    auto* rt = llvm::FixedVectorType::get(f32_, static_cast<unsigned>(MR));
    std::vector<llvm::Constant*> ids;
    for (int r = 0; r < MR; ++r) ids.push_back(llvm::ConstantInt::get(i64_, static_cast<uint64_t>(r)));
    llvm::Value* rows = b_.CreateICmpSLT(llvm::ConstantVector::get(ids), b_.CreateVectorSplat(static_cast<unsigned>(MR), b_.CreateSub(r1, i)));
    loop(c(0), kc, c(1), [&](llvm::Value* k) {
      llvm::Value* at = b_.CreateInBoundsGEP(f32_, A, b_.CreateAdd(i, b_.CreateMul(b_.CreateAdd(pc, k), sa_k)));
      llvm::Value* v = b_.CreateMaskedLoad(rt, at, llvm::Align(4), rows, llvm::Constant::getNullValue(rt));
      b_.CreateAlignedStore(v, b_.CreateInBoundsGEP(f32_, apanel_, b_.CreateMul(k, c(MR))), llvm::Align(4));
    });
  }

  void pack(llvm::Value* B, llvm::Value* dst, llvm::Value* pc, llvm::Value* jr, llvm::Value* kc, llvm::Value* nr, llvm::Value* sb_k,
            llvm::Value* sb_j, llvm::Value* rows_contiguous) {
    const int NR = t_.columns(), NV = t_.vectors, VW = t_.lanes;
    llvm::Value* zero = llvm::Constant::getNullValue(vt_);
    llvm::Value* lanes = lane_ids();
    auto splat = [&](llvm::Value* x) { return b_.CreateVectorSplat(static_cast<unsigned>(VW), x); };
    auto store_row = [&](llvm::Value* vec, llvm::Value* k, int column) {
      b_.CreateAlignedStore(vec, b_.CreateInBoundsGEP(f32_, dst, b_.CreateAdd(b_.CreateMul(k, c(NR)), c(column))),
                            llvm::Align(static_cast<uint64_t>(std::min(64, VW * 4))));
    };
    auto rows = [&] {
      // A k's NR columns are NV contiguous vectors of B's row (a scalar copy took as long as
      // the products when M is small); the mask stops at column nr.
      std::vector<llvm::Value*> masks;
      for (int v = 0; v < NV; ++v) masks.push_back(b_.CreateICmpSLT(lanes, splat(b_.CreateSub(nr, c(v * VW)))));
      loop(c(0), kc, c(1), [&](llvm::Value* k) {
        llvm::Value* row = line(b_.CreateAdd(pc, k), sb_k);
        for (int v = 0; v < NV; ++v) {
          llvm::Value* at = b_.CreateInBoundsGEP(f32_, B, b_.CreateAdd(row, b_.CreateAdd(jr, c(v * VW))));
          store_row(b_.CreateMaskedLoad(vt_, at, llvm::Align(4), masks[static_cast<size_t>(v)], zero), k, v * VW);
        }
      });
    };
    auto columns = [&] {
      // Transposed B: column j is contiguous in k. Load VW columns x VW k's, transpose the
      // block in registers, store VW rows of the panel. Past kc the rows are zeros the
      // micro-kernel never reads (the depth is a multiple of VW).
      loop(c(0), kc, c(VW), [&](llvm::Value* k0) {
        llvm::Value* k_mask = b_.CreateICmpSLT(lanes, splat(b_.CreateSub(kc, k0)));
        for (int v = 0; v < NV; ++v) {
          std::vector<llvm::Value*> block;
          for (int l = 0; l < VW; ++l) {
            // Columns past the edge read the last one's line, masked.
            llvm::Value* j = smin(b_.CreateAdd(jr, c(v * VW + l)), b_.CreateSub(N_, c(1)));
            llvm::Value* mask = b_.CreateAnd(k_mask, splat(b_.CreateICmpSLT(c(v * VW + l), nr)));
            llvm::Value* at = b_.CreateInBoundsGEP(f32_, B, b_.CreateAdd(line(j, sb_j), b_.CreateAdd(pc, k0)));
            block.push_back(b_.CreateMaskedLoad(vt_, at, llvm::Align(4), mask, zero));
          }
          transpose(block);
          for (int l = 0; l < VW; ++l) store_row(block[static_cast<size_t>(l)], b_.CreateAdd(k0, c(l)), v * VW);
        }
      });
    };
    if (g_.b_read != kir::Gemm::BRead::patches) return branch(rows_contiguous, rows, columns);
    std::vector<llvm::Value*> masks;
    for (int v = 0; v < NV; ++v) masks.push_back(b_.CreateICmpSLT(lanes, splat(b_.CreateSub(nr, c(v * VW)))));
    RowRead row = patch_rows(B, pc, jr, masks);
    loop(c(0), kc, c(1), [&](llvm::Value* k) {
      for (int v = 0; v < NV; ++v) store_row(row(k, v, b_.getTrue()), k, v * VW);
    });
  }

  // Image patches: k = (c, kh, kw), j = (oh, ow); element (k, j) is the pixel under the
  // kernel tap, or zero in the padding. The j-dependent part is computed once a panel, then
  // each k is one offset added to it and a masked gather (`masks`: the panel's columns).
  // Offsets are 32-bit when the image allows: the gathers then take 16 lanes at once and the
  // multiplies are cheap.
  RowRead patch_rows(llvm::Value* B, llvm::Value* pc, llvm::Value* jr, const std::vector<llvm::Value*>& masks) {
    const int NV = t_.vectors, VW = t_.lanes;
    const auto cv = g_.im2col;
    llvm::Type* it = cv.C * cv.H * cv.W < (int64_t{1} << 31) ? b_.getInt32Ty() : i64_;
    auto ci = [this, it](int64_t x) { return llvm::ConstantInt::get(it, static_cast<uint64_t>(x)); };
    auto vi = [this, ci, VW](int64_t x) { return b_.CreateVectorSplat(static_cast<unsigned>(VW), ci(x)); };
    llvm::Value* lanes_it = b_.CreateTrunc(lane_ids(), llvm::FixedVectorType::get(it, static_cast<unsigned>(VW)));
    std::vector<llvm::Value*> rows, cols, bases;
    for (int v = 0; v < NV; ++v) {
      llvm::Value* j = b_.CreateAdd(b_.CreateVectorSplat(static_cast<unsigned>(VW), b_.CreateTrunc(b_.CreateAdd(jr, c(v * VW)), it)), lanes_it);
      rows.push_back(b_.CreateSub(b_.CreateMul(b_.CreateUDiv(j, vi(cv.OW)), vi(cv.stride[0])), vi(cv.padding[0])));
      cols.push_back(b_.CreateSub(b_.CreateMul(b_.CreateURem(j, vi(cv.OW)), vi(cv.stride[1])), vi(cv.padding[1])));
      bases.push_back(b_.CreateAdd(b_.CreateMul(rows.back(), vi(cv.W)), cols.back()));
    }
    return [=, this](llvm::Value* k, int v, llvm::Value* valid) -> llvm::Value* {
      llvm::Value* kk = b_.CreateTrunc(b_.CreateAdd(pc, k), it);
      llvm::Value* ch = b_.CreateUDiv(kk, ci(cv.KH * cv.KW));
      llvm::Value* tap = b_.CreateURem(kk, ci(cv.KH * cv.KW));
      llvm::Value* dh = b_.CreateMul(b_.CreateUDiv(tap, ci(cv.KW)), ci(cv.dilation[0]));
      llvm::Value* dw = b_.CreateMul(b_.CreateURem(tap, ci(cv.KW)), ci(cv.dilation[1]));
      llvm::Value* shift = b_.CreateAdd(b_.CreateMul(b_.CreateAdd(b_.CreateMul(ch, ci(cv.H)), dh), ci(cv.W)), dw);
      llvm::Value *dh_v = b_.CreateVectorSplat(static_cast<unsigned>(VW), dh), *dw_v = b_.CreateVectorSplat(static_cast<unsigned>(VW), dw);
      size_t x = static_cast<size_t>(v);
      // Unsigned compares reject negative rows and columns too.
      llvm::Value* inside = b_.CreateAnd(b_.CreateAnd(masks[x], splat1(valid)),
                                         b_.CreateAnd(b_.CreateICmpULT(b_.CreateAdd(rows[x], dh_v), vi(cv.H)),
                                                      b_.CreateICmpULT(b_.CreateAdd(cols[x], dw_v), vi(cv.W))));
      llvm::Value* at = b_.CreateAdd(bases[x], b_.CreateVectorSplat(static_cast<unsigned>(VW), shift));
      return b_.CreateMaskedGather(vt_, b_.CreateInBoundsGEP(f32_, B, at), llvm::Align(4), inside, zeros());
    };
  }

  // acc = apanel x panel over kc.
  void tile(const std::function<llvm::Value*(llvm::Value*)>& row_at, llvm::Value* kc) {
    const int MR = t_.rows, NV = t_.vectors, VW = t_.lanes;
    llvm::Value* zero = llvm::Constant::getNullValue(vt_);
    for (auto* a : acc_) b_.CreateStore(zero, a);
    loop(c(0), kc, c(1), [&](llvm::Value* k) {
      std::vector<llvm::Value*> bv;
      llvm::Value* row = row_at(k);
      for (int v = 0; v < NV; ++v) {
        llvm::Value* at = b_.CreateInBoundsGEP(f32_, row, c(v * VW));
        bv.push_back(b_.CreateAlignedLoad(vt_, at, llvm::Align(4)));
      }
      llvm::Value* a_k = b_.CreateInBoundsGEP(f32_, apanel_, b_.CreateMul(k, c(MR)));
      for (int r = 0; r < MR; ++r) {
        llvm::Value* a = b_.CreateLoad(f32_, b_.CreateInBoundsGEP(f32_, a_k, c(r)));
        llvm::Value* splat = b_.CreateVectorSplat(static_cast<unsigned>(VW), a);
        for (int v = 0; v < NV; ++v) {
          llvm::Value* slot = acc_[static_cast<size_t>(r * NV + v)];
          llvm::Value* sum = b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {vt_}, {splat, bv[static_cast<size_t>(v)], b_.CreateLoad(vt_, slot)});
          b_.CreateStore(sum, slot);
        }
      }
    });
  }

  // Whether row tile i has work in column block jc and depth slice [pc, pc + kc) (kir::Gemm::Causal).
  llvm::Value* tile_needed(kir::Gemm::Causal causal, llvm::Value* i, llvm::Value* jc, llvm::Value* pc, llvm::Value* kc) {
    llvm::Value* tile_end = b_.CreateAdd(i, c(t_.rows));
    switch (causal) {
      case kir::Gemm::Causal::columns: return b_.CreateICmpSLT(jc, tile_end);
      case kir::Gemm::Causal::k_below: return b_.CreateICmpSLT(pc, tile_end);
      case kir::Gemm::Causal::k_above: return b_.CreateICmpSGT(b_.CreateAdd(pc, kc), i);
      case kir::Gemm::Causal::none: break;
    }
    return b_.getTrue();
  }

  // C[i..i+MR, jr..jr+NR] (+)= acc, rows clipped at r1 and columns at nr: the tile's first K
  // slice stores, later ones add (`accumulate`); a partial panel stores under a mask.
  void store_tile(llvm::Value* C, llvm::Value* i, llvm::Value* r1, llvm::Value* accumulate, llvm::Value* jr, llvm::Value* nr) {
    const int MR = t_.rows, NV = t_.vectors, VW = t_.lanes, NR = t_.columns();
    llvm::Value* zero = llvm::Constant::getNullValue(vt_);
    llvm::Value* full = b_.CreateICmpEQ(nr, c(NR));
    llvm::Value* lanes = lane_ids();
    for (int r = 0; r < MR; ++r) {
      llvm::Value* row = b_.CreateAdd(i, c(r));
      when(b_.CreateICmpSLT(row, r1), [&] {
        llvm::Value* crow = b_.CreateInBoundsGEP(f32_, C, b_.CreateAdd(b_.CreateMul(row, N_), jr));
        for (int v = 0; v < NV; ++v) {
          llvm::Value* at = b_.CreateInBoundsGEP(f32_, crow, c(v * VW));
          llvm::Value* sum = b_.CreateLoad(vt_, acc_[static_cast<size_t>(r * NV + v)]);
          llvm::Value* mask = b_.CreateICmpSLT(lanes, b_.CreateVectorSplat(static_cast<unsigned>(VW), b_.CreateSub(nr, c(v * VW))));
          auto* fast = llvm::BasicBlock::Create(m_.getContext(), "full", f_);
          auto* edge = llvm::BasicBlock::Create(m_.getContext(), "edge", f_);
          auto* done = llvm::BasicBlock::Create(m_.getContext(), "stored", f_);
          b_.CreateCondBr(full, fast, edge);
          b_.SetInsertPoint(fast);
          llvm::Value* old = b_.CreateAlignedLoad(vt_, at, llvm::Align(4));
          b_.CreateAlignedStore(b_.CreateSelect(accumulate, b_.CreateFAdd(sum, old), sum), at, llvm::Align(4));
          b_.CreateBr(done);
          b_.SetInsertPoint(edge);
          llvm::Value* old_m = b_.CreateMaskedLoad(vt_, at, llvm::Align(4), mask, zero);
          b_.CreateMaskedStore(b_.CreateSelect(accumulate, b_.CreateFAdd(sum, old_m), sum), at, llvm::Align(4), mask);
          b_.CreateBr(done);
          b_.SetInsertPoint(done);
        }
      });
    }
  }

  llvm::Module& m_;
  const kir::Gemm& g_;
  GemmTile t_;
  llvm::IRBuilder<> b_;
  llvm::Function* f_ = nullptr;
  llvm::BasicBlock* entry_ = nullptr;
  llvm::Type *ptr_ = nullptr, *i64_ = nullptr, *f32_ = nullptr;
  llvm::FixedVectorType* vt_ = nullptr;
  llvm::AllocaInst* panel_ = nullptr;
  llvm::Value* apanel_ = nullptr;  ///< A's micro-panel the micro-kernel reads (own_apanel_, or the shared packing)
  llvm::Value* N_ = nullptr;
  llvm::Value* lines_ = nullptr;  ///< the table of B's lines, when they are not evenly spaced
  bool pairs_ = false;  ///< a bf16 product on VDPBF16PS
  bool round_ = false;  ///< a bf16 product on the f32 micro-kernel
  llvm::AllocaInst* ppanel_ = nullptr;  ///< pairs_: B's panels as pairs of bf16
  llvm::Value* apairs_ = nullptr;  ///< pairs_: A's micro-panel as pairs of bf16 (as apanel_)
  llvm::Value *own_apanel_ = nullptr, *own_apairs_ = nullptr;
  llvm::Value* ta_ = nullptr;  ///< whether A is transposed: a constant, or the function's argument (gemm_transposes_vary)
  llvm::Value *shared_a_ = nullptr, *shared_tile_ = nullptr;  ///< pack_shared_a's buffer and a tile's elements in it
  std::vector<llvm::AllocaInst*> acc_;
};

}  // namespace

GemmTile gemm_tile_for(const kir::Gemm& g, const GemmTile& host) {
  // Fewer rows than the tile's: a tile of exactly those rows (no broadcasts and FMAs wasted on
  // repeated rows; a 6-channel convolution used 6 of 8).
  GemmTile t = host;
  if (g.M < t.rows) t.rows = static_cast<int>(g.M);
  return t;
}

bool gemm_transposes_vary(const kir::Gemm& g) {
  return g.precision == kir::Gemm::Precision::f32 && g.b_read != kir::Gemm::BRead::patches;
}

std::string gemm_layout_name(const kir::Gemm& g, const GemmTile& host) {
  GemmTile t = gemm_tile_for(g, host);
  std::vector<int64_t> conv;
  bool patches = g.b_read == kir::Gemm::BRead::patches, lines = g.b_read == kir::Gemm::BRead::lines;
  if (patches) {
    const auto& c = g.im2col;
    conv = {c.C, c.H, c.W, c.KH, c.KW, c.OW, c.stride[0], c.stride[1], c.padding[0], c.padding[1], c.dilation[0], c.dilation[1]};
  }
  std::string transposes = gemm_transposes_vary(g) ? "xx" : fmt::format("{}{}", g.ta ? "t" : "n", g.tb ? "t" : "n");
  std::string name = fmt::format("stag.gemm.{}{}{}{}", transposes, patches ? fmt::format(".conv{:x}", fnv(conv)) : "",
                     lines ? ".lines" : "",
                     t.rows == host.rows ? "" : fmt::format(".r{}", t.rows));
  if (g.precision == kir::Gemm::Precision::bf16) name += g.pairs ? ".bf16pairs" : ".bf16";
  if (g.causal != kir::Gemm::Causal::none) name += fmt::format(".causal{}", static_cast<int>(g.causal));
  if (g.dot) return name + (g.sum_batches ? ".dot_sum" : ".dot");
  if (shares_a(g, t)) name += ".shared_a";
  return name;
}

llvm::Function* gemm_function(llvm::Module& m, const kir::Gemm& g, const GemmTile& tile) {
  std::string name = gemm_layout_name(g, tile);
  if (auto* f = m.getFunction(name)) return f;
  return GemmEmitter(m, g, gemm_tile_for(g, tile)).emit(name);
}

llvm::Value* gemm_lines(llvm::Module& m, const kir::Gemm& g) {
  if (g.b_read != kir::Gemm::BRead::lines) return llvm::ConstantPointerNull::get(llvm::PointerType::get(m.getContext(), 0));
  return GemmEmitter::offsets_table(m, g.b_lines, fmt::format("stag.gemm.lines.{:x}.{}", fnv(g.b_lines), g.b_lines.size()));
}

llvm::Value* gemm_offsets(llvm::Module& m, const std::vector<int64_t>& offsets) {
  // A single product is batch 0 at offset 0.
  const std::vector<int64_t>& table = offsets.empty() ? std::vector<int64_t>{0} : offsets;
  return GemmEmitter::offsets_table(m, table, fmt::format("stag.gemm.offsets.{:x}.{}", fnv(table), table.size()));
}

}  // namespace stag
