// Attention as row kernels (flash attention's scheme, on the GEMM micro-kernel): the scores of
// one batch (a head of an example) are computed by the micro-kernel, and the kernel's body
// turns them into probabilities while they are in cache, keeping each row's logsumexp; a second
// product weighs the values. The backward recomputes the probabilities from q, k and the
// logsumexp the same way, turns dy v^T into the scores' gradient in the same fashion, and
// takes dq, dk and dv as three products of them. A bf16 node's products round their factors
// (the probabilities and the scores' gradient too) as the micro-kernel packs them. Dropout draws
// its mask where the probabilities are made (the forward's and the backward's alike): the values
// product reads the dropped probabilities, and the backward masks dy v^T before the softmax's
// gradient and the probabilities before dv's product.

#include "compiler/lower/families.h"
#include "ir/attention.h"

namespace stag::lowering {

using namespace kir;

namespace {

// C[i] = op(A[i]) op(B[i]) for each of `batches` products of contiguous operands; `causal`: what
// a causal mask lets the product skip (kir::Gemm::Causal).
Gemm batched(int a, int b, int c, int64_t batches, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
             Gemm::Causal causal = Gemm::Causal::none) {
  Gemm g;
  g.a = a, g.b = b, g.c = c, g.M = M, g.N = N, g.K = K, g.ta = ta, g.tb = tb, g.causal = causal;
  for (int64_t i = 0; batches > 1 && i < batches; ++i) g.a_offsets.push_back(i * M * K), g.b_offsets.push_back(i * K * N);
  return g;
}

// Statements for one row of a batch (given the row's flat index) after the batch's product;
// `keys`: the row sees keys [0, keys) at most, and the rest of its row is zero.
using RowBody = std::function<std::vector<Stmt>(KernelBuilder&, E row, int64_t keys)>;

// Rows [first, last) of a batch and the keys they may see.
struct RowRange {
  int64_t first, last, keys;
};

// A product kernel; `rows`, when given, runs over each batch's rows of C while they are in cache,
// range by range.
void emit_product(LowerContext& cx, const Node& n, const std::string& name, Gemm g, const RowBody& rows = nullptr,
                  const std::vector<RowRange>& ranges = {}) {
  KernelBuilder kb(name, cx.origin(n));
  int64_t flops = g.M * g.N * g.K;
  if (rows) {
    g.split_by(Gemm::Split::row_blocks, g.M);
    int r = kb.new_var("r");
    loop_nest(kb, {g.batches()}, [&](const std::vector<E>& b) {
      std::vector<Stmt> body;
      for (const RowRange& rr : ranges) body.push_back(for_(r, rr.first, rr.last, rows(kb, add(mul(b[0], int_(g.M)), kb.v(r)), rr.keys)));
      return body;
    }, 1);
    kb.k.grain = grain_of(kGrainFlops, flops);
  } else {
    loop_nest(kb, {g.batches() * g.M}, [](const std::vector<E>&) { return std::vector<Stmt>{}; }, 1);
    kb.k.grain = std::max<int64_t>(8, kGrainFlops / std::max<int64_t>(1, g.N * g.K));
  }
  kb.k.gemm = g;
  kb.k.parallel = kb.k.extent > kb.k.grain;
  cx.emit(std::move(kb));
}

// The operand's buffer: the micro-kernel reads buffers, so a value computed where read is
// stored first.
int operand(LowerContext& cx, const Node& n, int id) {
  int buf = cx.materialized(id);
  if (buf >= 0) return buf;
  buf = cx.new_buffer(cx.B(id).name + ".stored", cx.B(id).type, BufKind::Temp);
  cx.copy_kernel(cx.origin(n), buf, id);
  return buf;
}

// x where query `row` sees key j, else `hidden`. The causal products leave the scores past a
// row's query unwritten (kir::Gemm::Causal::columns), so they are only ever selected away.
E where_seen(const AttentionShape& s, E x, E row, E j, E hidden) {
  return s.causal ? select(bin(Bin::le, j, bin(Bin::rem, row, int_(s.T))), x, hidden) : x;
}

// The score at `at` of query `row` (j its key) scaled, -inf past the query when causal.
E masked_score(const AttentionShape& s, E raw, E row, E j, DType dt) {
  return where_seen(s, mul(raw, fconst(s.scale, dt)), row, j, fconst(-kInf, dt));
}

// What a causal mask lets each of attention's products skip: the scores past each query, the
// probabilities' zeros after it (as A, or transposed before it).
Gemm::Causal skip_scores(const AttentionShape& s) { return s.causal ? Gemm::Causal::columns : Gemm::Causal::none; }
Gemm::Causal skip_after(const AttentionShape& s) { return s.causal ? Gemm::Causal::k_below : Gemm::Causal::none; }
Gemm::Causal skip_before(const AttentionShape& s) { return s.causal ? Gemm::Causal::k_above : Gemm::Causal::none; }

struct Operands {
  int q, k, v;
};

// The dropout mask's element (row, j), row counting queries over the batches: 0 or 1/(1-p),
// drawn as ir/attention.cpp's Mask draws it; null without dropout.
using MaskAt = std::function<E(E row, E j)>;
MaskAt dropout_mask(LowerContext& cx, const Node& n, const AttentionShape& s, const std::vector<int>& xs, DType dt) {
  if (s.dropout == 0) return nullptr;
  AttentionOperands at(n);
  E key = at.key >= 0 ? cx.ld(xs[at.key], int_(0)) : int_(0);
  E first = at.part >= 0 ? mul(cx.ld(xs[at.part], int_(0)), int_(s.probabilities())) : int_(0);
  return [=, &s](E row, E j) {
    E u = philox_uniform(int_(s.seed), key, add(first, add(mul(row, int_(s.S)), j)));
    return select(lt(u, fconst(s.dropout, DType::f64)), zero_of(dt), fconst(1 / (1 - s.dropout), dt));
  };
}

// The micro-kernel multiplies f32; an f64 attention is the reference interpreter's alone.
void require_f32(const Node& n) {
  if (n.operands[0]->type.dtype != DType::f32)
    throw NoLowering(fmt::format("{}: no compiled lowering for {} (the reference interpreter runs it)", n.info().name,
                                 to_string(n.operands[0]->type)), n.loc, "%" + n.result()->name);
}

// A causal query sees no key after it: rows in blocks (at most 8) whose loops over keys end
// where the block's last row stops seeing, so about half a row's exps are skipped.
std::vector<RowRange> row_ranges(const AttentionShape& s) {
  if (!s.causal) return {{0, s.T, s.S}};
  std::vector<RowRange> ranges;
  int64_t step = std::max<int64_t>(16, (s.T + 7) / 8);
  for (int64_t first = 0; first < s.T; first += step) ranges.push_back({first, std::min(s.T, first + step), std::min(s.S, first + step)});
  return ranges;
}

// Zeros the rest of a row: [keys, S).
std::vector<Stmt> zero_rest(const AttentionShape& s, int buf, E row, int j, int64_t keys, DType dt) {
  if (keys >= s.S) return {};
  return {vectorized_for(j, keys, s.S, {store(buf, add(mul(row, int_(s.S)), var(j, DType::i64)), zero_of(dt))})};
}

// scores = q k^T for every batch; `rows` then runs over each batch's rows.
void scores_kernel(LowerContext& cx, const Node& n, const AttentionShape& s, const Operands& x, int scores, const RowBody& rows) {
  emit_product(cx, n, "attention_scores", batched(x.q, x.k, scores, s.batch, s.T, s.S, s.D, false, true, skip_scores(s)), rows, row_ranges(s));
}

}  // namespace

// Row r of the scores becomes p_rj = exp(s_rj - lse_r) in place, and lse_r is stored.
void attention(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  require_f32(n);
  AttentionShape s(n);
  DType dt = cx.B(xs[0]).type.dtype;
  Operands x{operand(cx, n, xs[0]), operand(cx, n, xs[1]), operand(cx, n, xs[2])};
  int lse = cx.in(n.result(1));
  int probs = cx.new_buffer(n.result()->name + ".p", {dt, {s.batch * s.T, s.S}}, BufKind::Temp);
  MaskAt mask = dropout_mask(cx, n, s, xs, dt);
  scores_kernel(cx, n, s, x, probs, [&](KernelBuilder& kb, E row, int64_t keys) {
    int j = kb.new_var("j"), mx = kb.new_var("mx", dt), l = kb.new_var("l", dt), e = kb.new_var("e", dt);
    E at = add(mul(row, int_(s.S)), kb.v(j)), score = masked_score(s, load(probs, dt, at), row, kb.v(j), dt);
    E p = mul(load(probs, dt, at), kb.v(l));
    std::vector<Stmt> body = {
        assign(mx, fconst(-kInf, dt)),
        vectorized_for(j, 0, keys, {assign(mx, nan_max(kb.v(mx), score))}),
        assign(l, zero_of(dt)),
        vectorized_for(j, 0, keys, {assign(e, exp_masked(sub(score, kb.v(mx)))), store(probs, at, kb.v(e)), assign(l, add(kb.v(l), kb.v(e)))}),
        store(lse, row, add(kb.v(mx), un(Un::log, kb.v(l)))),
        assign(l, div(fconst(1, dt), kb.v(l))),
        vectorized_for(j, 0, keys, {store(probs, at, mask ? mul(p, mask(row, kb.v(j))) : p)}),
    };
    for (Stmt& st : zero_rest(s, probs, row, j, keys, dt)) body.push_back(std::move(st));
    return body;
  });
  emit_product(cx, n, "attention_values", batched(probs, x.v, out, s.batch, s.T, s.Dv, s.S, false, false, skip_after(s)));
}

// p recomputed from q, k and lse; ds = scale p (dy v^T - sum_j p dy v^T + dlse) in place of
// dy v^T; then dq = ds k, dk = ds^T q, dv = p^T dy.
void attention_grad(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  require_f32(n);
  AttentionShape s(n);
  DType dt = cx.B(xs[0]).type.dtype;
  Operands x{operand(cx, n, xs[0]), operand(cx, n, xs[1]), operand(cx, n, xs[2])};
  int dy = operand(cx, n, xs[4]);
  int probs = cx.new_buffer(n.result()->name + ".p", {dt, {s.batch * s.T, s.S}}, BufKind::Temp);
  int ds = cx.new_buffer(n.result()->name + ".ds", {dt, {s.batch * s.T, s.S}}, BufKind::Temp);
  scores_kernel(cx, n, s, x, probs, [&](KernelBuilder& kb, E row, int64_t keys) {
    int j = kb.new_var("j");
    E at = add(mul(row, int_(s.S)), kb.v(j));
    std::vector<Stmt> body = {vectorized_for(j, 0, keys, {store(probs, at, exp_masked(sub(masked_score(s, load(probs, dt, at), row, kb.v(j), dt), cx.ld(xs[3], row))))})};
    for (Stmt& st : zero_rest(s, probs, row, j, keys, dt)) body.push_back(std::move(st));
    return body;
  });
  MaskAt mask = dropout_mask(cx, n, s, xs, dt);
  int dlse = AttentionOperands(n).dlse;
  emit_product(cx, n, "attention_grad_scores", batched(dy, x.v, ds, s.batch, s.T, s.S, s.Dv, false, true, skip_scores(s)), [&](KernelBuilder& kb, E row, int64_t keys) {
    int j = kb.new_var("j"), sum = kb.new_var("sum", dt), m = kb.new_var("m", dt);
    E at = add(mul(row, int_(s.S)), kb.v(j)), p = load(probs, dt, at), dp = where_seen(s, load(ds, dt, at), row, kb.v(j), zero_of(dt));
    E shift = dlse >= 0 ? sub(kb.v(sum), cx.ld(xs[dlse], row)) : kb.v(sum);
    std::vector<Stmt> body = {assign(sum, zero_of(dt))};
    if (!mask) {
      body.push_back(vectorized_for(j, 0, keys, {assign(sum, add(kb.v(sum), mul(p, dp)))}));
      body.push_back(vectorized_for(j, 0, keys, {store(ds, at, mul(fconst(s.scale, dt), mul(p, sub(dp, shift))))}));
    } else {  // dp masked in place first; the probabilities dropped out last, for dv's product
      int masked = kb.new_var("masked", dt);
      body.push_back(vectorized_for(j, 0, keys, {assign(masked, mul(dp, mask(row, kb.v(j)))), store(ds, at, kb.v(masked)),
                                                 assign(sum, add(kb.v(sum), mul(p, kb.v(masked))))}));
      body.push_back(vectorized_for(j, 0, keys, {assign(m, mask(row, kb.v(j))), store(ds, at, mul(fconst(s.scale, dt), mul(p, sub(dp, shift)))),
                                                 store(probs, at, mul(p, kb.v(m)))}));
    }
    for (Stmt& st : zero_rest(s, ds, row, j, keys, dt)) body.push_back(std::move(st));
    return body;
  }, row_ranges(s));
  emit_product(cx, n, "attention_grad_q", batched(ds, x.k, out, s.batch, s.T, s.D, s.S, false, false, skip_after(s)));
  emit_product(cx, n, "attention_grad_k", batched(ds, x.q, cx.in(n.result(1)), s.batch, s.S, s.D, s.T, true, false, skip_before(s)));
  emit_product(cx, n, "attention_grad_v", batched(probs, dy, cx.in(n.result(2)), s.batch, s.S, s.Dv, s.T, true, false, skip_before(s)));
}

}  // namespace stag::lowering
