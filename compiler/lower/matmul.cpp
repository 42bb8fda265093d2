// Matrix products: the register-tiled GEMM micro-kernel when the operands allow it, else loops.

#include <algorithm>

#include "compiler/lower/families.h"

namespace stag::lowering {

using namespace kir;

void matmul(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  int a = xs[0];
  int b = xs[1];
  const Type at = cx.B(a).type, bt = cx.B(b).type, ot = cx.B(out).type;
  bool ta = n.b("transpose_a"), tb = n.b("transpose_b");
  size_t ra = at.rank(), rb = bt.rank(), ro = ot.rank();
  int64_t M = ot.dims[ro - 2], N = ot.dims[ro - 1], K = ta ? at.dims[ra - 2] : at.dims[ra - 1];
  Dims batch(ot.dims.begin(), ot.dims.end() - 2);
  Dims ba(at.dims.begin(), at.dims.end() - 2), bb(bt.dims.begin(), bt.dims.end() - 2);
  DType dt = ot.dtype;
  Dims outer = batch;
  outer.push_back(M);
  int a_buf = cx.materialized(a), b_buf = cx.materialized(b);
  int64_t batches = *checked_numel(batch);
  if (dt == DType::f32 && a_buf >= 0 && b_buf >= 0 && batches <= kMaxGemmBatches) {
    // The register-tiled product of codegen; the epilogue runs over each finished row.
    Gemm gm;
    gm.a = a_buf, gm.b = b_buf, gm.c = out, gm.M = M, gm.N = N, gm.K = K, gm.ta = ta, gm.tb = tb;
    if (!batch.empty()) {
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
    if (rows <= kColumnSplitRows && N % kColumnBlock == 0 && N >= 2 * kColumnBlock) gm.column_block = kColumnBlock;
    kb.k.gemm = gm;
    auto epilogue_row = [&](E row, E col) {
      std::vector<E> idx;
      Dims st = strides_of(outer);
      for (size_t d = 0; d < outer.size(); ++d) idx.push_back(bin(Bin::rem, bin(Bin::div, row, int_(st[d])), int_(outer[d])));
      idx.push_back(col);
      E at = add(mul(row, int_(N)), col);
      return store(out, at, cx.epilogue(n, cx.ld(out, at), idx));
    };
    if (gm.column_block) {
      int r = kb.new_var("r");
      loop_nest(kb, {N / kColumnBlock}, [&](const std::vector<E>& block) {
        if (!cx.has_epilogue(n)) return std::vector<Stmt>{};
        E col = add(mul(block[0], int_(kColumnBlock)), kb.v(j));
        return std::vector<Stmt>{for_(r, 0, rows, {for_(j, 0, kColumnBlock, {epilogue_row(kb.v(r), col)})})};
      }, 1);
      kb.k.grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, rows * kColumnBlock * K));
    } else {
      loop_nest(kb, {rows}, [&](const std::vector<E>& flat) {
        if (!cx.has_epilogue(n)) return std::vector<Stmt>{};
        return std::vector<Stmt>{for_(j, 0, N, {epilogue_row(flat[0], kb.v(j))})};
      }, 1);
      // Rows are worth a thread in blocks of about 2^18 multiply-adds.
      kb.k.grain = std::max<int64_t>(8, (int64_t{1} << 18) / std::max<int64_t>(1, N * K));
    }
    kb.k.parallel = kb.k.extent > kb.k.grain;
    cx.emit(std::move(kb));
    return;
  }
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
    E a_ik = cx.ld(a, add(a_base, ta ? add(mul(kv, int_(M)), i) : add(mul(i, int_(K)), kv)));
    E b_kj = cx.ld(b, add(b_base, tb ? add(mul(jv, int_(K)), kv) : add(mul(kv, int_(N)), jv)));
    E c = cx.ld(out, add(c_row, jv));
    std::vector<E> out_idx = idx;
    out_idx.push_back(jv);
    if (tb && !ta) {
      // B^T: rows of A and B are both contiguous in k, so each element is a dot product
      // (a vectorized reduction).
      return std::vector<Stmt>{for_(j, 0, N, {assign(acc, zero_of(dt)), for_(k, 0, K, {assign(acc, f_add(kb.v(acc), f_mul(a_ik, b_kj)))}),
                                              store(out, add(c_row, jv), cx.epilogue(n, kb.v(acc), out_idx))})};
    }
    std::vector<Stmt> row = {
        for_(j, 0, N, {store(out, add(c_row, jv), zero_of(dt))}),
        for_(k, 0, K, {for_(j, 0, N, {store(out, add(c_row, jv), f_add(c, f_mul(a_ik, b_kj)))})}),
    };
    // The epilogue runs over the finished row while it is still in cache.
    if (cx.has_epilogue(n)) row.push_back(for_(j, 0, N, {store(out, add(c_row, jv), cx.epilogue(n, c, out_idx))}));
    return row;
  }, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, N * K)));
  cx.emit(std::move(kb));
}

}  // namespace stag::lowering
