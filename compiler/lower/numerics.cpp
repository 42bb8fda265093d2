// --check-numerics: a check after every kernel that what it stored is finite, and on entry that
// the inputs and parameters are, so the first kernel to make a NaN or an infinity is named.

#include "compiler/lower/numerics.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/ranges.h>

namespace stag::lowering {

using namespace kir;

namespace {

void stored_by(const std::vector<Stmt>& body, std::set<int>& out) {
  for (const auto& s : body) {
    if (s.kind == SK::Store) out.insert(s.buffer);
    if (s.kind == SK::For) stored_by(s.body, out);
  }
}

// An infinity may be meant: a mask's -inf (attention's causal mask, a max's start). A kernel
// that writes an infinite literal, or reads a constant or a buffer that may hold one, has its
// stores checked for NaN only.
bool may_hold_infinity(const LowerContext& cx, int buffer) {
  if (cx.may_hold_infinity.count(buffer)) return true;
  const Buffer& b = cx.B(buffer);
  return b.kind == BufKind::Const && std::any_of(b.data.begin(), b.data.end(), [](double v) { return std::isinf(v); });
}

bool reads_infinity(const LowerContext& cx, const E& e) {
  if (!e) return false;
  if (e->kind == EK::Float && std::isinf(e->f)) return true;
  if (e->kind == EK::Load && may_hold_infinity(cx, e->buffer)) return true;
  return std::any_of(e->args.begin(), e->args.end(), [&](const E& a) { return reads_infinity(cx, a); });
}

bool reads_infinity(const LowerContext& cx, const std::vector<Stmt>& body) {
  return std::any_of(body.begin(), body.end(), [&](const Stmt& s) {
    return reads_infinity(cx, s.index) || reads_infinity(cx, s.value) || reads_infinity(cx, s.body);
  });
}

bool reads_infinity(const LowerContext& cx, const Kernel& k) {
  if (k.gemm && (may_hold_infinity(cx, k.gemm->a) || may_hold_infinity(cx, k.gemm->b))) return true;
  return reads_infinity(cx, k.body);
}

int64_t view_start(const Kernel& k, int buffer) {
  for (const auto& [b, first] : k.views)
    if (b == buffer) return first;
  return 0;
}

// Every element of `buffer` from `first` on is checked, not only what the kernel wrote: memory
// starts zeroed and every earlier store was checked, so a NaN there is new. An infinity is
// looked for only where the kernel wrote the whole buffer (`nan_only` otherwise), since a part
// it did not write may hold an earlier buffer's meant -inf.
void check_buffer(LowerContext& cx, int buffer, int64_t first, bool nan_only, const std::string& origin,
                  const std::string& what) {
  const Buffer& b = cx.B(buffer);
  if (!is_float(b.type.dtype) || b.numel() <= first) return;
  int code = cx.add_check(fmt::format("--check-numerics: {}: element {{}} of {} {} is {}", what, b.name,
                                      to_string(b.type), nan_only ? "a NaN" : "a NaN or an infinity"));
  KernelBuilder kb("check_finite", origin);
  DType t = b.type.dtype;
  loop_nest(kb, {b.numel() - first}, [&](const std::vector<E>& i) {
    E x = cast(load(buffer, t, i[0]), DType::f64);
    E ok = nan_only ? bin(Bin::eq, x, x) : lt(un(Un::abs, x), float_(kInf, DType::f64));
    return std::vector<Stmt>{check(ok, add(i[0], int_(first)), code)};
  });
  if (first != 0) kb.k.views.push_back({buffer, first});
  kb.k.name = fmt::format("k{}_check_finite", cx.prog.functions[cx.fn].kernels.size());
  cx.prog.functions[cx.fn].kernels.push_back(std::move(kb.k));
}

}  // namespace

void check_entry(LowerContext& cx) {
  for (int id = 0; id < static_cast<int>(cx.prog.buffers.size()); ++id) {
    const Buffer& b = cx.prog.buffers[id];
    if (b.kind == BufKind::Param) check_buffer(cx, id, 0, false, "entry", fmt::format("parameter {}", b.name));
    else if (b.kind == BufKind::Input && b.function == cx.fn) check_buffer(cx, id, 0, false, "entry", fmt::format("input {}", b.name));
  }
}

void check_stored(LowerContext& cx) {
  const Kernel& k = cx.prog.functions[cx.fn].kernels.back();
  std::set<int> stored;
  stored_by(k.body, stored);
  if (k.gemm) stored.insert(k.gemm->c);
  std::string what = fmt::format("kernel {} ({}", k.name, k.origin);
  if (cx.node && cx.node->loc.known()) what += fmt::format(" at {}", to_string(cx.node->loc));
  if (k.nodes.size() > 1) what += fmt::format(", computing %{}", fmt::join(k.nodes, ", %"));
  what += ")";
  std::string origin = k.origin;
  bool meant_infinity = reads_infinity(cx, k);
  // Everything read from `k` is collected first: each check appends a kernel, which may move `k`.
  struct Check { int buffer; int64_t first; bool nan_only; };
  std::vector<Check> checks;
  for (int b : stored) {
    int64_t first = view_start(k, b);
    bool whole = first == 0 && k.views.empty();
    checks.push_back({b, first, meant_infinity || !whole});
  }
  for (const Check& c : checks) {
    if (meant_infinity) cx.may_hold_infinity.insert(c.buffer);
    check_buffer(cx, c.buffer, c.first, c.nan_only, origin, what);
  }
}

}  // namespace stag::lowering
