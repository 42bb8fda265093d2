// Shape ops: reshape and flatten (a copy), transpose, concat, slice, pad and split.

#include <algorithm>

#include "compiler/lower/families.h"

namespace stag::lowering {

using namespace kir;

void reshape(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) { cx.copy_kernel(cx.origin(n), out, xs[0]); }

void transpose(LowerContext& cx, const Node& n, const std::vector<int>& operands, int out) {
  int x = operands[0];
  const Type xt = cx.B(x).type;
  const Ints& perm = n.ints("perm");
  const Dims od = cx.B(out).type.dims;
  Dims xs = strides_of(xt.dims);
  cx.map_kernel("transpose", cx.origin(n), out, od, [&](const std::vector<E>& idx) {
    E at = int_(0);
    for (size_t d = 0; d < idx.size(); ++d) at = add(at, mul(idx[d], int_(xs[norm_axis(perm[d], idx.size())])));
    return cx.ld(x, at);
  });
}

void concat(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  const Dims od = cx.B(out).type.dims;
  int64_t axis = norm_axis(n.i("axis"), od.size()), at = 0;
  Dims ost = strides_of(od);
  for (int x : xs) {
    const Dims xd = cx.B(x).type.dims;
    KernelBuilder kb("concat", cx.origin(n));
    // The piece's place in the output is a view, so pieces of one shape share a function.
    kb.k.views.push_back({out, at * ost[axis]});
    loop_nest(kb, xd, [&](const std::vector<E>& idx) {
      return std::vector<Stmt>{store(out, offset(idx, od), cx.ld(x, offset(idx, xd)))};
    });
    cx.emit(std::move(kb));
    at += xd[axis];
  }
}

void slice(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  int x = xs[0];
  const Dims xd = cx.B(x).type.dims;
  size_t rank = xd.size();
  Dims start(rank, 0), step(rank, 1);
  const Ints &axes = n.ints("axes"), &starts = n.ints("starts");
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t a = norm_axis(axes[i], rank);
    start[a] = starts[i] < 0 ? starts[i] + xd[a] : starts[i];
    if (!n.ints("steps").empty()) step[a] = n.ints("steps")[i];
  }
  if (x >= 0) {
    // Reading a buffer: the slice's start is a view, so slices of one shape share a function.
    Dims xst = strides_of(xd);
    int64_t first = 0;
    for (size_t d = 0; d < rank; ++d) first += start[d] * xst[d];
    KernelBuilder kb("slice", cx.origin(n));
    kb.k.views.push_back({x, first});
    const Dims& od = cx.B(out).type.dims;
    loop_nest(kb, od, [&](const std::vector<E>& idx) {
      std::vector<E> xidx;
      for (size_t d = 0; d < rank; ++d) xidx.push_back(mul(idx[d], int_(step[d])));
      return std::vector<Stmt>{store(out, offset(idx, od), cx.ld(x, offset(xidx, xd)))};
    });
    cx.emit(std::move(kb));
    return;
  }
  cx.map_kernel("slice", cx.origin(n), out, cx.B(out).type.dims, [&](const std::vector<E>& idx) {
    std::vector<E> xidx;
    for (size_t d = 0; d < rank; ++d) xidx.push_back(add(int_(start[d]), mul(idx[d], int_(step[d]))));
    return cx.ld(x, offset(xidx, xd));
  });
}

void pad(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  int x = xs[0];
  const Dims xd = cx.B(x).type.dims;
  const Ints& pads = n.ints("pads");
  DType dt = cx.B(out).type.dtype;
  cx.map_kernel("pad", cx.origin(n), out, cx.B(out).type.dims, [&](const std::vector<E>& idx) {
    std::vector<E> xidx;
    E ok = bin(Bin::eq, int_(0), int_(0));
    for (size_t d = 0; d < xd.size(); ++d) {
      xidx.push_back(sub(idx[d], int_(pads[2 * d])));
      ok = and_(ok, in_range(xidx.back(), xd[d]));
    }
    return select(ok, cx.ld(x, select(ok, offset(xidx, xd), int_(0))), const_of(n.f("value"), dt));
  });
}

void split(LowerContext& cx, const Node& n, const std::vector<int>& xs, int /*out: one buffer a result*/) {
  int x = xs[0];
  const Dims xd = cx.B(x).type.dims;
  int64_t axis = norm_axis(n.i("axis"), xd.size()), at = 0;
  Dims xst = strides_of(xd);
  // With only 1s before the axis, each piece is a contiguous run of the input: a view of it, no
  // copy (a transformer's q, k and v, split from one transposed projection).
  int root = cx.materialized(x);
  bool runs = root >= 0 && cx.loop < 0 && *checked_numel(Dims(xd.begin(), xd.begin() + axis)) == 1;
  for (const auto& r : n.results) {
    int out = cx.in(r.get());
    const Dims& od = r->type.dims;
    int64_t shift = at;
    if (runs && cx.B(out).kind == BufKind::Temp) {
      cx.buffer_of[r.get()] = cx.view_buffer(r->name, r->type, root, shift * xst[axis], 0);
    } else if (x >= 0) {
      // The piece's place in the input is a view, so pieces of one shape share a function.
      KernelBuilder kb("split", cx.origin(n));
      kb.k.views.push_back({x, shift * xst[axis]});
      loop_nest(kb, od, [&](const std::vector<E>& idx) {
        return std::vector<Stmt>{store(out, offset(idx, od), cx.ld(x, offset(idx, xd)))};
      });
      cx.emit(std::move(kb));
    } else {
      cx.map_kernel("split", cx.origin(n), out, od, [&](const std::vector<E>& idx) {
        std::vector<E> xidx = idx;
        xidx[axis] = add(idx[axis], int_(shift));
        return cx.ld(x, offset(xidx, xd));
      });
    }
    at += od[axis];
  }
}

}  // namespace stag::lowering
