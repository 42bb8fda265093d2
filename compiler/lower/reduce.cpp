// Reductions: sum, mean, max and argmax over any axes.

#include <algorithm>

#include "compiler/lower/families.h"

namespace stag::lowering {

using namespace kir;


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
// 784, which LLVM vectorizes; two loops of 28 it left scalar). `group[d]`: the merged axis
// that input axis d became.
static void merge_axes(Dims& dims, std::vector<bool>& red, std::vector<size_t>& group) {
  Dims merged;
  std::vector<bool> merged_red;
  group.clear();
  for (size_t d = 0; d < dims.size(); ++d) {
    if (!merged.empty() && merged_red.back() == red[d]) merged.back() *= dims[d];
    else merged.push_back(dims[d]), merged_red.push_back(red[d]);
    group.push_back(merged.size() - 1);
  }
  dims = merged, red = merged_red;
}

// The input's index on its own axes from the index `full` on the merged ones. A value fused
// into the reduction reads its broadcast operands by these (a per-channel mean by the channel's
// loop variable); without them it would split the flat index by div and rem for every element,
// which also keeps the loop from vectorizing. Axes no read asks for cost nothing.
static std::vector<E> unmerged_index(const std::vector<E>& full, const Dims& dims, const std::vector<size_t>& group) {
  std::vector<E> idx(dims.size());
  int64_t below = 1;
  for (size_t d = dims.size(); d-- > 0;) {
    bool first = d == 0 || group[d - 1] != group[d];
    bool last = d + 1 == dims.size() || group[d + 1] != group[d];
    if (last) below = 1;
    E q = below == 1 ? full[group[d]] : bin(Bin::div, full[group[d]], int_(below));
    idx[d] = first ? q : bin(Bin::rem, q, int_(dims[d]));
    below *= dims[d];
  }
  return idx;
}

// A reduction computed by reduce_loops (one accumulator of its own) or reduce_leading (its
// output row). Sibling reductions (fusion.cpp) share the loops: one pass over the input
// elements they both read.
struct Lane {
  const Node* n;
  int x, out, acc;
  DType dt;
};

// The loops of a reduction kernel: the kept axes over threads, the reduced axes inner. The
// index of an element on the merged axes `full` and on the input's own axes (for fused reads).
struct ReduceLoops {
  Dims in_dims, kept, reduced;
  std::vector<bool> red;
  std::vector<size_t> group;  ///< the input's own axes to in_dims' (merge_axes)
  std::vector<int> rvars;
  std::vector<E> full;
};

static void reduce_leading(LowerContext& cx, const std::vector<Lane>& lanes, int64_t rows, int64_t cols);

static E lane_value(LowerContext& cx, const Lane& l, const ReduceLoops& r) {
  std::vector<E> own = unmerged_index(r.full, cx.B(l.x).type.dims, r.group);
  return cast(cx.read(l.x, &own, offset(r.full, r.in_dims)), l.dt);
}

static E lane_init(const Lane& l) { return l.n->op == Op::max ? lowest(l.dt) : zero_of(l.dt); }

static Stmt lane_update(KernelBuilder& kb, const Lane& l, E value) {
  return assign(l.acc, l.n->op == Op::max ? nan_max(kb.v(l.acc), value) : add(kb.v(l.acc), value));
}

static E lane_result(KernelBuilder& kb, const Lane& l, const ReduceLoops& r) {
  E result = kb.v(l.acc);
  if (l.n->op == Op::mean) result = div(result, fconst(static_cast<double>(*checked_numel(r.reduced)), l.dt));
  return result;
}

// argmax: first maximum wins; once a NaN is best, it stays.
static std::vector<Stmt> argmax_body(LowerContext& cx, KernelBuilder& kb, const Lane& l, const ReduceLoops& r, int best, E at) {
  E value = lane_value(cx, l, r), acc_v = kb.v(l.acc);
  E better = is_float(l.dt) ? and_(bin(Bin::eq, acc_v, acc_v), bin(Bin::or_, gt(value, acc_v), bin(Bin::ne, value, value)))
                            : gt(value, acc_v);
  E take = bin(Bin::or_, bin(Bin::eq, kb.v(r.rvars[0]), int_(0)), better);
  std::vector<Stmt> loop = {assign(best, select(take, kb.v(r.rvars[0]), kb.v(best))), assign(l.acc, select(take, value, acc_v))};
  return {assign(l.acc, lowest(l.dt)), assign(best, int_(0)), for_(r.rvars[0], 0, r.reduced[0], loop), store(l.out, at, kb.v(best))};
}

// One output element a loop iteration (of each lane), the reduced axes in inner loops.
static void reduce_loops(LowerContext& cx, std::vector<Lane> lanes, ReduceLoops r) {
  const Node& n = *lanes[0].n;
  split_dims(r.in_dims, r.red, r.kept, r.reduced);
  KernelBuilder kb(std::string(n.info().name), cx.origin(n));
  for (size_t i = 0; i < lanes.size(); ++i) lanes[i].acc = kb.new_var(i == 0 ? "acc" : fmt::format("acc{}", i), lanes[i].dt);
  int best = n.op == Op::argmax ? kb.new_var("best", DType::i64) : -1;
  for (size_t d = 0; d < r.reduced.size(); ++d) r.rvars.push_back(kb.new_var("r" + std::to_string(d)));
  loop_nest(kb, r.kept, [&](const std::vector<E>& kidx) {
    r.full.clear();
    size_t ki = 0, ri = 0;
    for (size_t d = 0; d < r.in_dims.size(); ++d) r.full.push_back(r.red[d] ? kb.v(r.rvars[ri++]) : kidx[ki++]);
    E at = offset(kidx, r.kept);
    if (n.op == Op::argmax) return argmax_body(cx, kb, lanes[0], r, best, at);
    std::vector<Stmt> loop, stmts;
    for (const Lane& l : lanes) loop.push_back(lane_update(kb, l, lane_value(cx, l, r)));
    for (size_t d = r.reduced.size(); d-- > 0;) loop = {for_(r.rvars[d], 0, r.reduced[d], std::move(loop))};
    for (const Lane& l : lanes) stmts.push_back(assign(l.acc, lane_init(l)));
    for (auto& s : loop) stmts.push_back(std::move(s));
    for (const Lane& l : lanes) stmts.push_back(store(l.out, at, lane_result(kb, l, r)));
    return stmts;
  });
  // Each output element reads all of its reduced elements: a thread's share counts them.
  int64_t inner = *checked_numel(r.kept) / std::max<int64_t>(1, r.kept.empty() ? 1 : r.kept[0]);
  kb.k.grain = grain_of(kGrainElements, inner * *checked_numel(r.reduced) * static_cast<int64_t>(lanes.size()));
  kb.k.parallel = kb.k.extent > kb.k.grain;
  cx.emit(std::move(kb));
}

void reduce(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  int x = xs[0];
  const Type xt = cx.B(x).type;
  size_t rank = xt.rank();
  std::vector<bool> red = reduced_axes(n, rank);
  // The accumulator has the result's type (a sum of bools or i32 is i64), argmax's the input's.
  DType dt = n.op == Op::argmax ? xt.dtype : cx.B(out).type.dtype;
  std::vector<Lane> lanes = {{&n, x, out, -1, dt}};
  if (auto it = cx.plan.sibling.find(&n); it != cx.plan.sibling.end()) {
    const Node& s = *it->second;
    lanes.push_back({&s, cx.in(s.operands[0]), cx.in(s.result()), -1, cx.B(cx.in(s.result())).type.dtype});
    cx.group.push_back(s.result()->name);
  }
  if (n.op != Op::argmax && !reduces_in_loops(n)) {
    Dims kept, reduced;
    split_dims(xt.dims, red, kept, reduced);
    return reduce_leading(cx, lanes, *checked_numel(reduced), *checked_numel(kept));
  }
  ReduceLoops r{xt.dims, {}, {}, red, std::vector<size_t>(rank), {}, {}};
  for (size_t d = 0; d < rank; ++d) r.group[d] = d;
  if (n.op != Op::argmax) merge_axes(r.in_dims, r.red, r.group);
  reduce_loops(cx, std::move(lanes), std::move(r));
}

bool shares_passes(const Node& n) { return n.op == Op::sum || n.op == Op::mean || n.op == Op::max; }

// Whether reduce() runs `n` in reduce_loops (else in reduce_leading).
bool reduces_in_loops(const Node& n) {
  if (n.op != Op::sum && n.op != Op::mean && n.op != Op::max) return false;
  std::vector<bool> red = reduced_axes(n, n.operands[0]->type.rank());
  size_t lead = 0;
  while (lead < red.size() && red[lead]) ++lead;
  bool leading_only = lead > 0 && std::none_of(red.begin() + static_cast<long>(lead), red.end(), [](bool r) { return r; });
  return !(leading_only && lead < red.size());
}

// The columns a thread of reduce_leading takes: a divisor of cols up to 256, at most half of
// them when there are 32 or more, so that two threads share a layer's bias gradient (128
// columns were one block, and one thread summed all 1,024 rows).
static int64_t column_block(int64_t cols) {
  int64_t most = cols >= 32 ? std::min<int64_t>(cols / 2, 256) : cols;
  for (int64_t b = most; b > 1; --b)
    if (cols % b == 0) return b;
  return 1;
}

// A reduction over leading axes (a bias gradient: sum over batch and sequence) reads the
// input row by row and accumulates whole output rows, so loads stay contiguous and the
// inner loop vectorizes; p runs over blocks of the output. A value fused into it reads its
// operands by the input's own axes (a layer norm's weight gradient reads each row's mean by
// the row), not by dividing the flat index, which kept the loop scalar. Sibling lanes (a
// layer norm's weight and bias gradients) accumulate in the same pass over the rows.
static void reduce_leading(LowerContext& cx, const std::vector<Lane>& lanes, int64_t rows, int64_t cols) {
  int64_t block = column_block(cols);
  KernelBuilder kb(std::string(lanes[0].n->info().name), cx.origin(*lanes[0].n));
  int r = kb.new_var("r"), j = kb.new_var("j");
  E col = add(mul(kb.v(0), int_(block)), kb.v(j));
  std::vector<Stmt> init, accumulate, finish;
  for (const Lane& l : lanes) {
    const Dims& dims = cx.B(l.x).type.dims;
    std::vector<size_t> group(dims.size(), 1);  // the leading axes are r's, the rest col's
    int64_t lead = 1;
    for (size_t d = 0; lead < rows; lead *= dims[d++]) group[d] = 0;
    std::vector<E> own = unmerged_index({kb.v(r), col}, dims, group);
    E value = cast(cx.read(l.x, &own, add(mul(kb.v(r), int_(cols)), col)), l.dt);
    E acc = cx.ld(l.out, col);
    bool max = l.n->op == Op::max;
    init.push_back(store(l.out, col, max ? lowest(l.dt) : zero_of(l.dt)));
    accumulate.push_back(store(l.out, col, max ? nan_max(acc, value) : add(acc, value)));
    if (l.n->op == Op::mean) finish.push_back(store(l.out, col, div(acc, fconst(static_cast<double>(rows), l.dt))));
  }
  kb.k.body = {for_(j, 0, block, std::move(init)), for_(r, 0, rows, {for_(j, 0, block, std::move(accumulate))})};
  if (!finish.empty()) kb.k.body.push_back(for_(j, 0, block, std::move(finish)));
  kb.k.extent = cols / block;
  kb.k.grain = grain_of(kGrainElements, rows * block * static_cast<int64_t>(lanes.size()));
  kb.k.parallel = kb.k.extent > kb.k.grain;
  cx.emit(std::move(kb));
}

}  // namespace stag::lowering
