// Losses: regression (mse, huber, bce_with_logits), classification (cross_entropy, nll) and
// the weight penalties.

#include <algorithm>

#include "compiler/lower/families.h"

namespace stag::lowering {

using namespace kir;

// A per-element loss, then its sum or mean into a scalar (or the elements themselves).
static void reduce_elements(LowerContext& cx, const Node& n, int per, int64_t count_or_neg, int count_buf, int out) {
  const std::string& red = n.s("reduction");
  DType dt = cx.B(out).type.dtype;
  KernelBuilder kb("loss_reduce", cx.origin(n));
  int i = kb.new_var("i"), acc = kb.new_var("acc", dt);
  E total = kb.v(acc);
  if (red == "mean")
    total = div(total, count_buf >= 0 ? cx.ld(count_buf, int_(0)) : fconst(static_cast<double>(count_or_neg), dt));
  kb.k.extent = 1;
  kb.k.body = {assign(acc, zero_of(dt)), for_(i, 0, cx.B(per).numel(), {assign(acc, add(kb.v(acc), cx.ld(per, kb.v(i))))}),
               store(out, int_(0), total)};
  cx.emit(std::move(kb));
}

void regression_loss(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  int x = xs[0];
  int t = xs[1];
  const Type xt = cx.B(x).type;
  DType dt = xt.dtype;
  bool none = n.s("reduction") == "none";
  int per = none ? out : cx.new_buffer(n.result()->name + ".elements", xt, BufKind::Temp);
  cx.map_kernel(std::string(n.info().name), cx.origin(n), per, {numel(xt)}, [&](const std::vector<E>& i) {
    E a = cx.ld(x, i[0]), b = cx.ld(t, i[0]);
    E d = sub(a, b);
    switch (n.op) {
      case Op::mse: return mul(d, d);
      case Op::huber: {
        double delta = n.f("delta");
        E ad = un(Un::abs, d);
        return select(lt(ad, fconst(delta, dt)), mul(fconst(0.5, dt), mul(d, d)),
                      mul(fconst(delta, dt), sub(ad, fconst(0.5 * delta, dt))));
      }
      default:  // bce_with_logits: max(a, 0) - a t + log(1 + exp(-|a|))
        return add(sub(select(gt(a, zero_of(dt)), a, zero_of(dt)), mul(a, b)),
                     un(Un::log, add(fconst(1, dt), un(Un::exp, un(Un::neg, un(Un::abs, a))))));
    }
  });
  if (!none) reduce_elements(cx, n, per, numel(xt), -1, out);
}

void classification_loss(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  int x = xs[0];
  int labels = xs[1];
  const Type xt = cx.B(x).type;
  int64_t N = xt.dims[0], C = xt.dims[1];
  DType dt = xt.dtype;
  bool none = n.s("reduction") == "none";
  bool from_logits = n.op == Op::cross_entropy;
  double smooth = from_logits ? n.f("label_smoothing") : 0;
  int64_t ignore = n.i("ignore_index");
  int per = none ? out : cx.new_buffer(n.result()->name + ".rows", {dt, {N}}, BufKind::Temp);
  int counted = cx.new_buffer(n.result()->name + ".counted", {dt, {N}}, BufKind::Temp);
  KernelBuilder kb(std::string(n.info().name), cx.origin(n));
  int c = kb.new_var("c"), mx = kb.new_var("mx", dt), s = kb.new_var("s", dt), all = kb.new_var("all", dt);
  loop_nest(kb, {N}, [&](const std::vector<E>& i) {
    std::vector<Stmt> stmts;
    E raw = cast(cx.ld(labels, i[0]), DType::i64);
    E ignored = bin(Bin::eq, raw, int_(ignore));
    int code = cx.add_check(fmt::format("{} %{}: label {{}} is out of range [0, {})", n.info().name, n.result()->name, C));
    stmts.push_back(check(bin(Bin::or_, ignored, in_range(raw, C)), raw, code));
    E y = bin(Bin::min, bin(Bin::max, raw, int_(0)), int_(C - 1));
    E v = cx.ld(x, add(mul(i[0], int_(C)), kb.v(c)));
    E lse = from_logits ? add(kb.v(mx), un(Un::log, kb.v(s))) : zero_of(dt);  // log-sum-exp
    E logp_y = sub(cx.ld(x, add(mul(i[0], int_(C)), y)), lse);
    if (from_logits) {
      stmts.push_back(assign(mx, fconst(-kInf, dt)));
      stmts.push_back(for_(c, 0, C, {assign(mx, nan_max(kb.v(mx), v))}));
      stmts.push_back(assign(s, zero_of(dt)));
      stmts.push_back(for_(c, 0, C, {assign(s, add(kb.v(s), exp_masked(sub(v, kb.v(mx)))))}));
    }
    E loss = un(Un::neg, logp_y);
    if (smooth != 0) {
      // (1 - e) (-log p_y) + e/C sum_c (-log p_c), with sum_c log p_c = sum_c x_c - C lse.
      stmts.push_back(assign(all, zero_of(dt)));
      stmts.push_back(for_(c, 0, C, {assign(all, add(kb.v(all), v))}));
      E sum_neg_logp = sub(mul(fconst(static_cast<double>(C), dt), lse), kb.v(all));
      loss = add(mul(fconst(1 - smooth, dt), loss), mul(fconst(smooth / static_cast<double>(C), dt), sum_neg_logp));
    }
    stmts.push_back(store(per, i[0], select(ignored, zero_of(dt), loss)));
    stmts.push_back(store(counted, i[0], select(ignored, zero_of(dt), fconst(1, dt))));
    return stmts;
  }, 16);
  cx.emit(std::move(kb));
  if (none) return;
  int count = cx.new_buffer(n.result()->name + ".count", {dt, {}}, BufKind::Temp);
  KernelBuilder kc("count", cx.origin(n));
  int i = kc.new_var("i"), acc = kc.new_var("acc", dt);
  kc.k.body = {assign(acc, zero_of(dt)), for_(i, 0, N, {assign(acc, add(kc.v(acc), cx.ld(counted, kc.v(i))))}),
               store(count, int_(0), kc.v(acc))};
  cx.emit(std::move(kc));
  reduce_elements(cx, n, per, N, count, out);
}

void penalty(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  int x = xs[0];
  DType dt = cx.B(out).type.dtype;
  KernelBuilder kb(std::string(n.info().name), cx.origin(n));
  int i = kb.new_var("i"), acc = kb.new_var("acc", dt);
  E v = cx.ld(x, kb.v(i));
  E term = n.op == Op::l1_penalty ? un(Un::abs, v) : mul(v, v);
  kb.k.body = {assign(acc, zero_of(dt)), for_(i, 0, cx.B(x).numel(), {assign(acc, add(kb.v(acc), term))}),
               store(out, int_(0), kb.v(acc))};
  cx.emit(std::move(kb));
}

}  // namespace stag::lowering
