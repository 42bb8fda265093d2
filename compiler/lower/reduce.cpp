// Reductions: sum, mean, max and argmax over any axes.

#include <algorithm>

#include "compiler/lower/families.h"

namespace stag::lowering {

using namespace kir;

static void reduce_leading(LowerContext& cx, const Node& n, int x, int out, int64_t rows, int64_t cols, DType dt);

// The axes of its input a reduction node reduces.
static std::vector<bool> reduced_axes(const Node& n, size_t rank) {
  std::vector<bool> red(rank, false);
  if (n.op == Op::argmax) red[norm_axis(n.i("axis"), rank)] = true;
  else {
    const Ints& axes = n.ints("axes");
    for (size_t d = 0; d < rank; ++d) red[d] = axes.empty();
    for (int64_t a : axes) red[norm_axis(a, rank)] = true;
  }
  return red;
}

static void split_dims(const Dims& dims, const std::vector<bool>& red, Dims& kept, Dims& reduced) {
  kept.clear(), reduced.clear();
  for (size_t d = 0; d < dims.size(); ++d) (red[d] ? reduced : kept).push_back(dims[d]);
}

// Neighbouring axes both reduced (or both kept) are one axis of the row-major input: the
// inner loop then runs over all of them (a bias gradient's 28 x 28 plane is one loop of
// 784, which LLVM vectorizes; two loops of 28 it left scalar).
static void merge_axes(Dims& dims, std::vector<bool>& red) {
  Dims merged;
  std::vector<bool> merged_red;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (!merged.empty() && merged_red.back() == red[d]) merged.back() *= dims[d];
    else merged.push_back(dims[d]), merged_red.push_back(red[d]);
  }
  dims = merged, red = merged_red;
}

// One output element a loop iteration, the reduced axes in inner loops.
static void reduce_loops(LowerContext& cx, const Node& n, int x, int out, const Dims& in_dims, const std::vector<bool>& red, DType dt) {
  size_t rank = in_dims.size();
  Dims kept, reduced;
  split_dims(in_dims, red, kept, reduced);
  KernelBuilder kb(std::string(n.info().name), cx.origin(n));
  int acc = kb.new_var("acc", dt);
  int best = n.op == Op::argmax ? kb.new_var("best", DType::i64) : -1;
  std::vector<int> rvars;
  for (size_t d = 0; d < reduced.size(); ++d) rvars.push_back(kb.new_var("r" + std::to_string(d)));
  loop_nest(kb, kept, [&](const std::vector<E>& kidx) {
    // Rebuild the input index from kept and reduced loop variables.
    std::vector<E> full;
    size_t ki = 0, ri = 0;
    for (size_t d = 0; d < rank; ++d) full.push_back(red[d] ? kb.v(rvars[ri++]) : kidx[ki++]);
    E value = cast(cx.ld(x, offset(full, in_dims)), dt);
    Stmt update;
    E init;
    if (n.op == Op::sum || n.op == Op::mean) {
      init = zero_of(dt);
      update = assign(acc, add(kb.v(acc), value));
    } else if (n.op == Op::max) {
      init = lowest(dt);
      update = assign(acc, nan_max(kb.v(acc), value));
    } else {
      init = lowest(dt);
      // First maximum wins; once a NaN is best, it stays.
      E acc_v = kb.v(acc);
      E better = is_float(dt) ? and_(bin(Bin::eq, acc_v, acc_v), bin(Bin::or_, gt(value, acc_v), bin(Bin::ne, value, value)))
                              : gt(value, acc_v);
      E first = bin(Bin::eq, kb.v(rvars[0]), int_(0));
      E take = bin(Bin::or_, first, better);
      update = assign(acc, select(take, value, acc_v));
      Stmt upd_best = assign(best, select(take, kb.v(rvars[0]), kb.v(best)));
      std::vector<Stmt> loop = {upd_best, update};
      std::vector<Stmt> stmts = {assign(acc, init), assign(best, int_(0)), for_(rvars[0], 0, reduced[0], loop)};
      stmts.push_back(store(out, offset(kidx, kept), kb.v(best)));
      return stmts;
    }
    std::vector<Stmt> loop = {update};
    for (size_t d = reduced.size(); d-- > 0;) loop = {for_(rvars[d], 0, reduced[d], std::move(loop))};
    E result = kb.v(acc);
    if (n.op == Op::mean) result = div(result, fconst(static_cast<double>(*checked_numel(reduced)), dt));
    std::vector<Stmt> stmts = {assign(acc, init)};
    for (auto& s : loop) stmts.push_back(std::move(s));
    stmts.push_back(store(out, offset(kidx, kept), result));
    return stmts;
  });
  // Each output element reads all of its reduced elements: a thread's share counts them.
  int64_t inner = *checked_numel(kept) / std::max<int64_t>(1, kept.empty() ? 1 : kept[0]);
  kb.k.grain = grain_of(kGrainElements, inner * *checked_numel(reduced));
  kb.k.parallel = kb.k.extent > kb.k.grain;
  cx.emit(std::move(kb));
}

void reduce(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  int x = xs[0];
  const Type xt = cx.B(x).type;
  size_t rank = xt.rank();
  std::vector<bool> red = reduced_axes(n, rank);
  Dims kept, reduced;
  split_dims(xt.dims, red, kept, reduced);
  // The accumulator has the result's type (a sum of bools or i32 is i64), argmax's the input's.
  DType dt = n.op == Op::argmax ? xt.dtype : cx.B(out).type.dtype;
  size_t lead = 0;
  while (lead < rank && red[lead]) ++lead;
  bool leading_only = lead > 0 && std::none_of(red.begin() + static_cast<long>(lead), red.end(), [](bool r) { return r; });
  if (n.op != Op::argmax && leading_only && !kept.empty()) return reduce_leading(cx, n, x, out, *checked_numel(reduced), *checked_numel(kept), dt);
  Dims in_dims = xt.dims;
  if (n.op != Op::argmax) merge_axes(in_dims, red);
  reduce_loops(cx, n, x, out, in_dims, red, dt);
}

// A reduction over leading axes (a bias gradient: sum over batch and sequence) reads the
// input row by row and accumulates whole output rows, so loads stay contiguous and the
// inner loop vectorizes; p runs over blocks of the output.
static void reduce_leading(LowerContext& cx, const Node& n, int x, int out, int64_t rows, int64_t cols, DType dt) {
  int64_t block = 1;
  for (int64_t b = std::min<int64_t>(cols, 256); b >= 1; --b)
    if (cols % b == 0) {
      block = b;
      break;
    }
  KernelBuilder kb(std::string(n.info().name), cx.origin(n));
  int r = kb.new_var("r"), j = kb.new_var("j");
  E col = add(mul(kb.v(0), int_(block)), kb.v(j));
  E value = cast(cx.ld(x, add(mul(kb.v(r), int_(cols)), col)), dt);
  E acc = cx.ld(out, col);
  E combined = n.op == Op::max ? nan_max(acc, value) : add(acc, value);
  kb.k.body = {for_(j, 0, block, {store(out, col, n.op == Op::max ? lowest(dt) : zero_of(dt))}),
               for_(r, 0, rows, {for_(j, 0, block, {store(out, col, combined)})})};
  if (n.op == Op::mean) kb.k.body.push_back(for_(j, 0, block, {store(out, col, div(cx.ld(out, col), fconst(static_cast<double>(rows), dt)))}));
  kb.k.extent = cols / block;
  kb.k.grain = grain_of(kGrainElements, rows * block);
  kb.k.parallel = kb.k.extent > kb.k.grain;
  cx.emit(std::move(kb));
}

}  // namespace stag::lowering
