// Ops that index with integer operands: embedding and one_hot, with range checks.

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
