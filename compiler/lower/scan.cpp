// Lowering of scan: the body's kernels once, inside a loop of `length` steps (kir::Loop). A
// step's slices of the per-step inputs and outputs are views into the stacked buffers that move
// with the step, not copies; the carries live in the scan's result buffers, and each step ends
// by copying the body's new carries there.

#include <fmt/format.h>

#include <algorithm>

#include "compiler/lower/families.h"
#include "ir/scan.h"

namespace stag::lowering {

using namespace kir;

namespace {

// A stacked tensor around the scan's axis: slice t is `inner` elements at t * inner of each of
// `outer` rows `n * inner` apart; one contiguous run when outer is 1.
struct Stacked {
  int64_t outer = 1, n = 1, inner = 1;
  Stacked(const Dims& d, int64_t axis) : n(d[static_cast<size_t>(axis)]) {
    for (int64_t i = 0; i < axis; ++i) outer *= d[static_cast<size_t>(i)];
    for (size_t i = static_cast<size_t>(axis) + 1; i < d.size(); ++i) inner *= d[i];
  }
};

// What a scan's lowering keeps while it emits: the node, its body and the buffers bound so far.
struct ScanLowering {
  LowerContext& cx;
  const Node& n;
  ScanShape s;
  std::vector<Value*> params;
  std::vector<int> ys;      ///< the stacked per-step outputs' result buffers
  std::vector<std::pair<int, int>> gathers;  ///< (slice temp, strided view) of per-step inputs read row by row
};

// The operand's elements in a buffer of their own: a value computed where it is read is stored first.
// A reshape fused away leaves its operand's buffer, of another shape: the body, whose lowerings
// index by the operand's shape (a slice's axes), reads it through a view of the operand's type.
int stored(LowerContext& cx, int id, const Value* v) {
  if (int m = cx.materialized(id); m >= 0) return cx.B(m).type.dims == v->type.dims ? m : cx.view_buffer(v->name, v->type, m, 0, 0);
  int b = cx.new_buffer(v->name, v->type, BufKind::Temp);
  cx.copy_kernel(fmt::format("scan operand %{}", v->name), b, id);
  return b;
}

// Per-step input j: its slice as a view; a slice that is not one run is gathered into a temp
// each step (gather_kernels).
void bind_step_input(ScanLowering& L, size_t j, int x) {
  const Value* p = L.params[j];
  Stacked st(L.n.operands[j]->type.dims, L.s.axis);
  if (st.outer == 1) {
    L.cx.buffer_of[p] = L.cx.view_buffer(p->name, p->type, x, 0, st.inner);
    return;
  }
  int rows = L.cx.view_buffer(p->name + ".rows", L.n.operands[j]->type, x, 0, st.inner);
  int slice = L.cx.new_buffer(p->name, p->type, BufKind::Temp);
  L.cx.buffer_of[p] = slice;
  L.gathers.push_back({slice, rows});
}

// Carries start as the scan's result buffers holding the initial values.
void bind_operands(ScanLowering& L, const std::vector<int>& xs) {
  auto& cx = L.cx;
  for (int64_t i = 0; i < L.s.carries; ++i) {
    int r = cx.in(L.n.result(static_cast<size_t>(i)));
    cx.group = {L.n.result(static_cast<size_t>(i))->name};
    cx.copy_kernel(fmt::format("scan carry {} initial", i), r, xs[static_cast<size_t>(i)]);
    cx.buffer_of[L.params[static_cast<size_t>(i)]] = r;
  }
  for (size_t j = static_cast<size_t>(L.s.carries); j < xs.size(); ++j) {
    int x = stored(cx, xs[j], L.n.operands[j]);
    if (static_cast<int64_t>(j) < L.s.carries + L.s.xs) bind_step_input(L, j, x);
    else cx.buffer_of[L.params[j]] = x;
  }
}

void gather_kernels(ScanLowering& L) {
  for (const auto& [slice, rows] : L.gathers) {
    Stacked st(L.cx.B(rows).type.dims, L.s.axis);
    L.cx.map_kernel("scan_slice", "scan per-step input", slice, Dims{st.outer, st.inner},
                    [&](const std::vector<E>& idx) { return L.cx.ld(rows, add(mul(idx[0], int_(st.n * st.inner)), idx[1])); });
  }
}

// The view of step t's slice of stacked output k, or -1 when the slice is not one run.
int output_view(ScanLowering& L, size_t k) {
  const Value* y = L.n.result(static_cast<size_t>(L.s.carries) + k);
  Stacked st(y->type.dims, L.s.axis);
  if (st.outer != 1) return -1;
  const Value* v = L.n.body->outputs[static_cast<size_t>(L.s.carries) + k].value;
  return L.cx.view_buffer(fmt::format("{}.step", y->name), v->type, L.ys[k], 0, st.inner);
}

// Body values get buffers as a function's do (lower.cpp's place_buffers); a per-step output
// computed in the body is stored straight into its slice of the stacked result.
void place_body(ScanLowering& L, std::vector<int>& views) {
  auto& cx = L.cx;
  const Graph& body = *L.n.body;
  std::unordered_map<const Value*, int> step_view;
  for (size_t k = 0; k < views.size(); ++k) {
    const Value* v = body.outputs[static_cast<size_t>(L.s.carries) + k].value;
    if (views[k] >= 0 && v->def->op != Op::input && v->def->op != Op::constant && !step_view.count(v)) step_view[v] = views[k];
  }
  for (const auto& m : body.nodes) {
    if (m->op == Op::input) continue;
    for (const auto& r : m->results) {
      if (m->op == Op::constant) {
        Buffer b = make_buffer(r->name, r->type, BufKind::Const);
        const Floats& f = m->floats("value");
        b.data = f.size() == 1 ? std::vector<double>(static_cast<size_t>(numel(r->type)), f[0]) : f;
        cx.buffer_of[r.get()] = cx.prog.add_buffer(std::move(b));
      } else if (cx.plan.fused_away.count(r.get())) {
        cx.pseudo.push_back(make_buffer(r->name, r->type, BufKind::Temp));
        cx.pseudo_node.push_back(m.get());
        cx.buffer_of[r.get()] = -static_cast<int>(cx.pseudo.size());
      } else if (auto it = step_view.find(r.get()); it != step_view.end()) {
        cx.buffer_of[r.get()] = it->second;
      } else {
        cx.buffer_of[r.get()] = cx.new_buffer(r->name, r->type, BufKind::Temp);
      }
    }
  }
}

// Per-step outputs not computed in place (a carry, an input, a constant, a second name, a
// slice that is not one run) are copied into their slice.
void store_outputs(ScanLowering& L, const std::vector<int>& views) {
  auto& cx = L.cx;
  for (size_t k = 0; k < views.size(); ++k) {
    int src = cx.in(L.n.body->outputs[static_cast<size_t>(L.s.carries) + k].value);
    if (src == views[k]) continue;
    cx.group = {L.n.result(static_cast<size_t>(L.s.carries) + k)->name};
    if (views[k] >= 0) {
      cx.copy_kernel("scan per-step output", views[k], src);
      continue;
    }
    const Type& whole = L.n.result(static_cast<size_t>(L.s.carries) + k)->type;
    Stacked st(whole.dims, L.s.axis);
    int rows = cx.view_buffer(fmt::format("{}.rows", L.n.result(static_cast<size_t>(L.s.carries) + k)->name), whole, L.ys[k], 0, st.inner);
    KernelBuilder kb("scan_unslice", "scan per-step output");
    loop_nest(kb, Dims{st.outer, st.inner}, [&](const std::vector<E>& idx) {
      return std::vector<Stmt>{store(rows, add(mul(idx[0], int_(st.n * st.inner)), idx[1]), cx.ld(src, add(mul(idx[0], int_(st.inner)), idx[1])))};
    });
    cx.emit(std::move(kb));
  }
}

// The body's new carries into the carry buffers. A new carry that is another carry's old value
// (carries that swap) goes through a temp first, so no copy reads a carry already overwritten.
void store_carries(ScanLowering& L) {
  auto& cx = L.cx;
  std::vector<int> src(static_cast<size_t>(L.s.carries));
  for (size_t i = 0; i < src.size(); ++i) {
    const Value* v = L.n.body->outputs[i].value;
    src[i] = cx.in(v);
    bool other_carry = v->def->op == Op::input && v != L.params[i] &&
                       std::find(L.params.begin(), L.params.begin() + L.s.carries, v) != L.params.begin() + L.s.carries;
    if (!other_carry) continue;
    int tmp = cx.new_buffer(v->name + ".old", v->type, BufKind::Temp);
    cx.group = {L.n.result(i)->name};
    cx.copy_kernel(fmt::format("scan carry {} (staged)", i), tmp, src[i]);
    src[i] = tmp;
  }
  for (size_t i = 0; i < src.size(); ++i) {
    int r = cx.in(L.n.result(i));
    if (src[i] == r) continue;
    cx.group = {L.n.result(i)->name};
    cx.copy_kernel(fmt::format("scan carry {}", i), r, src[i]);
  }
}

// The state a body's lowering replaces and the scan's own lowering gets back.
struct Saved {
  const Graph* g;
  FusionPlan plan;
  std::vector<std::string> group;
  const Node* node;
  std::string strategy;
};

void lower_body(ScanLowering& L) {
  auto& cx = L.cx;
  std::vector<int> views;
  for (size_t k = 0; k < L.ys.size(); ++k) views.push_back(output_view(L, k));
  cx.g = L.n.body.get();
  cx.plan = cx.options.fuse ? plan_fusion(*L.n.body, cx.stats) : FusionPlan{};
  place_body(L, views);
  gather_kernels(L);
  lower_nodes(cx, *L.n.body);
  store_outputs(L, views);
  store_carries(L);
}

}  // namespace

// A scan in a scan's body is a loop inside the other's: its views move with its own step, and
// its carries start again from their initial values at every step of the enclosing loop.
void scan(LowerContext& cx, const Node& n, const std::vector<int>& xs, int /*out*/) {
  ScanLowering L{cx, n, ScanShape(n), n.body->inputs(), {}, {}};
  for (size_t k = static_cast<size_t>(L.s.carries); k < n.results.size(); ++k) L.ys.push_back(cx.in(n.result(k)));
  Saved saved{cx.g, cx.plan, cx.group, cx.node, cx.strategy};
  int enclosing = cx.loop;
  Function& f = cx.prog.functions[static_cast<size_t>(cx.fn)];
  // The per-step views bind_operands makes move with this loop, placed before the body is
  // lowered so that the loops inside it come after it; the carries' first copies precede it.
  cx.loop = static_cast<int>(f.loops.size());
  bind_operands(L, xs);
  f.loops.push_back({static_cast<int>(f.kernels.size()), 0, L.s.length, L.s.reverse});
  lower_body(L);
  Function& done = cx.prog.functions[static_cast<size_t>(cx.fn)];
  done.loops[static_cast<size_t>(cx.loop)].last = static_cast<int>(done.kernels.size());
  if (done.loops[static_cast<size_t>(cx.loop)].last == done.loops[static_cast<size_t>(cx.loop)].first)
    done.loops.resize(static_cast<size_t>(cx.loop));  // no kernels: no loop, nor any inside it
  cx.loop = enclosing;
  cx.g = saved.g, cx.plan = std::move(saved.plan), cx.group = std::move(saved.group);
  cx.node = saved.node, cx.strategy = std::move(saved.strategy);
}

}  // namespace stag::lowering
