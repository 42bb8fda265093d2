// Ops that index with integer operands: embedding, its gradient and one_hot, with range checks.

#include "compiler/lower/families.h"

namespace stag::lowering {

using namespace kir;

// Reads an index from `ids` at `at`, checks it against [0, size) and returns it clamped,
// so that a bad index reports an error instead of reading out of bounds.
static E checked_index(LowerContext& cx, int ids, E at, int64_t size, std::vector<Stmt>& stmts, const std::string& what) {
  E id = cast(cx.ld(ids, at), DType::i64);
  int code = cx.add_check(fmt::format("{}: index {{}} is out of range [0, {})", what, size));
  stmts.push_back(check(in_range(id, size), id, code));
  return bin(Bin::min, bin(Bin::max, id, int_(0)), int_(size - 1));
}

void embedding(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  int w = xs[0];
  int ids = xs[1];
  int64_t V = cx.B(w).type.dims[0], D = cx.B(w).type.dims[1];
  KernelBuilder kb("embedding", cx.origin(n));
  int d = kb.new_var("d");
  loop_nest(kb, {cx.B(ids).numel()}, [&](const std::vector<E>& i) {
    std::vector<Stmt> stmts;
    E row = checked_index(cx, ids, i[0], V, stmts, fmt::format("embedding %{}", n.result()->name));
    stmts.push_back(for_(d, 0, D, {store(out, add(mul(i[0], int_(D)), kb.v(d)), cx.ld(w, add(mul(row, int_(D)), kb.v(d))))}));
    return stmts;
  }, 64);
  cx.emit(std::move(kb));
}

// How many column blocks embedding_grad splits D into, each a task: at most 8, each at least 8
// wide, dividing D so that every block is a full one. Blocks write disjoint columns, so no two
// threads write one element and each sum runs in the ids' order whatever the thread count.
static int64_t column_blocks(int64_t D) {
  for (int64_t b = 8; b > 1; --b)
    if (D % b == 0 && D / b >= 8) return b;
  return 1;
}

// Block p of the columns: zero them in every row, then add each id's row of dy into them.
void embedding_grad(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  int dy = xs[0], ids = xs[1];
  int64_t V = n.i("num_embeddings"), D = cx.B(out).type.dims[1], blocks = column_blocks(D), width = D / blocks;
  DType dt = cx.B(out).type.dtype;
  KernelBuilder kb("embedding_grad", cx.origin(n));
  int r = kb.new_var("r"), i = kb.new_var("i"), row = kb.new_var("row"), d = kb.new_var("d");
  E col = add(mul(kb.v(0), int_(width)), kb.v(d));
  kb.k.body.push_back(for_(r, 0, V, {for_(d, 0, width, {store(out, add(mul(kb.v(r), int_(D)), col), zero_of(dt))})}));
  std::vector<Stmt> scatter;
  E id = checked_index(cx, ids, kb.v(i), V, scatter, fmt::format("embedding_grad %{}", n.result()->name));
  scatter.push_back(assign(row, id));
  E at = add(mul(kb.v(row), int_(D)), col);
  scatter.push_back(for_(d, 0, width, {store(out, at, add(load(out, dt, at), cx.ld(dy, add(mul(kb.v(i), int_(D)), col))))}));
  kb.k.body.push_back(for_(i, 0, cx.B(ids).numel(), std::move(scatter)));
  kb.k.extent = blocks;
  kb.k.parallel = blocks > 1;
  cx.emit(std::move(kb));
}

void one_hot(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  int ids = xs[0];
  int64_t C = n.i("num_classes");
  DType dt = cx.B(out).type.dtype;
  KernelBuilder kb("one_hot", cx.origin(n));
  int c = kb.new_var("c");
  loop_nest(kb, {cx.B(ids).numel()}, [&](const std::vector<E>& i) {
    std::vector<Stmt> stmts;
    E id = checked_index(cx, ids, i[0], C, stmts, fmt::format("one_hot %{}", n.result()->name));
    stmts.push_back(for_(c, 0, C, {store(out, add(mul(i[0], int_(C)), kb.v(c)),
                                         select(bin(Bin::eq, kb.v(c), id), const_of(1, dt), zero_of(dt)))}));
    return stmts;
  }, 64);
  cx.emit(std::move(kb));
}

}  // namespace stag::lowering
