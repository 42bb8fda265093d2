// Matrix products: the register-tiled GEMM micro-kernel when the operands allow it, else loops.

#include <algorithm>

#include "compiler/lower/families.h"

namespace stag::lowering {

using namespace kir;

// A product's sizes: C (batch..., M x N) = A (batch_a..., M x K) times B (batch_b..., K x N),
// either operand transposed, batch dimensions broadcast.
struct MatmulShape {
  Type at, bt, ot;
  bool ta, tb;
  size_t ra, rb;
  int64_t M, N, K, batches;
  Dims batch, ba, bb, outer;  ///< outer: batch..., M
};

static MatmulShape matmul_shape(LowerContext& cx, const Node& n, int a, int b, int out) {
  MatmulShape s;
  s.at = cx.B(a).type, s.bt = cx.B(b).type, s.ot = cx.B(out).type;
  s.ta = n.b("transpose_a"), s.tb = n.b("transpose_b");
  s.ra = s.at.rank(), s.rb = s.bt.rank();
  size_t ro = s.ot.rank();
  s.M = s.ot.dims[ro - 2], s.N = s.ot.dims[ro - 1], s.K = s.ta ? s.at.dims[s.ra - 2] : s.at.dims[s.ra - 1];
  s.batch = Dims(s.ot.dims.begin(), s.ot.dims.end() - 2);
  s.ba = Dims(s.at.dims.begin(), s.at.dims.end() - 2), s.bb = Dims(s.bt.dims.begin(), s.bt.dims.end() - 2);
  s.outer = s.batch;
  s.outer.push_back(s.M);
  s.batches = *checked_numel(s.batch);
  return s;
}

// The register-tiled product of codegen; the epilogue runs over each finished row.
static void matmul_gemm(LowerContext& cx, const Node& n, const MatmulShape& s, int a_buf, int b_buf, int out) {
  const Type &at = s.at, &bt = s.bt;
  bool ta = s.ta, tb = s.tb;
  size_t ra = s.ra, rb = s.rb;
  int64_t M = s.M, N = s.N, K = s.K, batches = s.batches;
  const Dims &batch = s.batch, &ba = s.ba, &bb = s.bb, &outer = s.outer;
  Gemm gm;
  gm.a = a_buf, gm.b = b_buf, gm.c = out, gm.M = M, gm.N = N, gm.K = K, gm.ta = ta, gm.tb = tb;
  // A batched row-major A against one B (a linear layer on a sequence): the batch's rows
  // stacked are one product's rows, so a thread packs B once, not once a batch entry.
  if (!ta && rb == 2) gm.M = batches * M;
  else if (!batch.empty()) {
    Dims st = strides_of(batch);
    for (int64_t bi = 0; bi < batches; ++bi) {
      std::vector<E> idx;
      for (size_t d = 0; d < batch.size(); ++d) idx.push_back(int_(bi / st[d] % batch[d]));
      gm.a_offsets.push_back(broadcast_offset(idx, batch, ba)->i * at.dims[ra - 2] * at.dims[ra - 1]);
      gm.b_offsets.push_back(broadcast_offset(idx, batch, bb)->i * bt.dims[rb - 2] * bt.dims[rb - 1]);
    }
  }
  KernelBuilder kb("matmul", cx.origin(n));
  int j = kb.new_var("j");
  // Few rows and many columns: threads take blocks of columns (each packs or streams only
  // its part of B); otherwise blocks of rows.
  const int64_t rows = batches * M;
  if (rows <= kColumnSplitRows && N % kColumnBlock == 0 && N >= 2 * kColumnBlock) gm.split_by(Gemm::Split::columns, kColumnBlock);
  kb.k.gemm = gm;
  auto epilogue_row = [&](E row, E col) {
    std::vector<E> idx;
    Dims st = strides_of(outer);
    for (size_t d = 0; d < outer.size(); ++d) idx.push_back(bin(Bin::rem, bin(Bin::div, row, int_(st[d])), int_(outer[d])));
    idx.push_back(col);
    E at = add(mul(row, int_(N)), col);
    return cx.epilogue_stores(n, out, at, cx.ld(out, at), idx, true);
  };
  if (gm.split == Gemm::Split::columns) {
    int r = kb.new_var("r");
    loop_nest(kb, {N / kColumnBlock}, [&](const std::vector<E>& block) {
      if (!cx.has_epilogue(n)) return std::vector<Stmt>{};
      E col = add(mul(block[0], int_(kColumnBlock)), kb.v(j));
      return std::vector<Stmt>{for_(r, 0, rows, {for_(j, 0, kColumnBlock, epilogue_row(kb.v(r), col))})};
    }, 1);
    kb.k.grain = grain_of(kGrainFlops, rows * kColumnBlock * K);
  } else {
    loop_nest(kb, {rows}, [&](const std::vector<E>& flat) {
      if (!cx.has_epilogue(n)) return std::vector<Stmt>{};
      return std::vector<Stmt>{for_(j, 0, N, epilogue_row(flat[0], kb.v(j)))};
    }, 1);
    // Rows are worth a thread in blocks of about 2^18 multiply-adds.
    kb.k.grain = std::max<int64_t>(8, kGrainFlops / std::max<int64_t>(1, N * K));
  }
  kb.k.parallel = kb.k.extent > kb.k.grain;
  cx.emit(std::move(kb));
}

static void matmul_loops(LowerContext& cx, const Node& n, const MatmulShape& s, int a, int b, int out) {
  const Type &at = s.at, &bt = s.bt;
  bool ta = s.ta, tb = s.tb;
  size_t ra = s.ra, rb = s.rb;
  int64_t M = s.M, N = s.N, K = s.K;
  const Dims &batch = s.batch, &ba = s.ba, &bb = s.bb, &outer = s.outer;
  DType dt = s.ot.dtype;
  // p runs over (batch..., i); the k loop sits outside the j loop so that j vectorizes,
  // unless B is transposed (below).
  KernelBuilder kb("matmul", cx.origin(n));
  int j = kb.new_var("j"), k = kb.new_var("k"), acc = kb.new_var("acc", dt);
  loop_nest(kb, {*checked_numel(outer)}, [&](const std::vector<E>& flat) {
    std::vector<E> idx;
    Dims st = strides_of(outer);
    for (size_t d = 0; d < outer.size(); ++d)
      idx.push_back(bin(Bin::rem, bin(Bin::div, flat[0], int_(st[d])), int_(outer[d])));
    std::vector<E> bidx(idx.begin(), idx.end() - 1);
    E i = idx.back();
    E a_base = mul(broadcast_offset(bidx, batch, ba), int_(at.dims[ra - 2] * at.dims[ra - 1]));
    E b_base = mul(broadcast_offset(bidx, batch, bb), int_(bt.dims[rb - 2] * bt.dims[rb - 1]));
    E c_row = mul(flat[0], int_(N));
    E jv = kb.v(j), kv = kb.v(k);
    E a_ik = cx.factor(a, add(a_base, ta ? add(mul(kv, int_(M)), i) : add(mul(i, int_(K)), kv)));
    E b_kj = cx.factor(b, add(b_base, tb ? add(mul(jv, int_(K)), kv) : add(mul(kv, int_(N)), jv)));
    E c = cx.ld(out, add(c_row, jv));
    std::vector<E> out_idx = idx;
    out_idx.push_back(jv);
    if (tb && !ta) {
      // B^T: rows of A and B are both contiguous in k, so each element is a dot product
      // (a vectorized reduction).
      std::vector<Stmt> dot = {assign(acc, zero_of(dt)), for_(k, 0, K, {assign(acc, add(kb.v(acc), mul(a_ik, b_kj)))})};
      for (Stmt& st : cx.epilogue_stores(n, out, add(c_row, jv), kb.v(acc), out_idx, false)) dot.push_back(std::move(st));
      return std::vector<Stmt>{for_(j, 0, N, std::move(dot))};
    }
    std::vector<Stmt> row = {
        for_(j, 0, N, {store(out, add(c_row, jv), zero_of(dt))}),
        for_(k, 0, K, {for_(j, 0, N, {store(out, add(c_row, jv), add(c, mul(a_ik, b_kj)))})}),
    };
    // The epilogue runs over the finished row while it is still in cache.
    if (cx.has_epilogue(n)) row.push_back(for_(j, 0, N, cx.epilogue_stores(n, out, add(c_row, jv), c, out_idx, true)));
    return row;
  }, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, N * K)));
  cx.emit(std::move(kb));
}

bool stores_followers(const Node& n) { return n.op == Op::matmul || n.op == Op::batch_norm; }

void matmul(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  MatmulShape s = matmul_shape(cx, n, xs[0], xs[1], out);
  int a_buf = cx.materialized(xs[0]), b_buf = cx.materialized(xs[1]);
  if (s.ot.dtype == DType::f32 && a_buf >= 0 && b_buf >= 0 && s.batches <= kMaxGemmBatches)
    return matmul_gemm(cx, n, s, a_buf, b_buf, out);
  matmul_loops(cx, n, s, xs[0], xs[1], out);
}

}  // namespace stag::lowering
