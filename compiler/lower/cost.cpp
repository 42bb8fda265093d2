// The static cost model: walks a kernel's statements once, multiplying by loop trip counts.

#include "compiler/lower/cost.h"

#include <algorithm>
#include <unordered_set>

namespace stag::kir {

namespace {

bool counts_as_flop(const Expr& e) {
  if (e.kind == EK::Unary) return is_float(e.args[0]->type) && static_cast<Un>(e.op) != Un::not_;
  if (e.kind != EK::Binary || !is_float(e.args[0]->type)) return false;
  switch (static_cast<Bin>(e.op)) {
    case Bin::add: case Bin::sub: case Bin::mul: case Bin::div: case Bin::rem:
    case Bin::min: case Bin::max: case Bin::pow: return true;
    default: return false;
  }
}

class Counter {
 public:
  explicit Counter(const Program& p) : p_(p) {}

  // Codegen emits each node of a statement's expression DAG once, so a shared subexpression
  // (a load used twice) is counted once per statement, as it executes.
  void expr(const E& e, double times, std::unordered_set<const Expr*>& seen) {
    if (!seen.insert(e.get()).second) return;
    if (counts_as_flop(*e)) c_.flops += times;
    if (e->kind == EK::Load) c_.bytes += times * static_cast<double>(dtype_size(p_.buffers[e->buffer].type.dtype));
    for (const auto& a : e->args) expr(a, times, seen);
  }

  void stmt(const Stmt& s, double times) {
    std::unordered_set<const Expr*> seen;
    if (s.index) expr(s.index, times, seen);
    if (s.value) expr(s.value, times, seen);
    if (s.kind == SK::Store) c_.bytes += times * static_cast<double>(dtype_size(p_.buffers[s.buffer].type.dtype));
    if (s.kind == SK::For) {
      double trips = static_cast<double>(std::max<int64_t>(0, s.end - s.begin));
      for (const auto& b : s.body) stmt(b, times * trips);
    }
  }

  Cost result() const { return c_; }

 private:
  const Program& p_;
  Cost c_;
};

}  // namespace

Cost cost(const Program& p, const Kernel& k) {
  Counter c(p);
  for (const auto& s : k.body) c.stmt(s, static_cast<double>(k.extent));
  Cost total = c.result();
  if (k.gemm) {
    // A multiply-add per (row, column, k); A, B and C each pass through memory once at best.
    const Gemm& g = *k.gemm;
    double batches = static_cast<double>(g.batches()), M = static_cast<double>(g.M), N = static_cast<double>(g.N),
           K = static_cast<double>(g.K);
    double size = static_cast<double>(dtype_size(p.buffers[g.c].type.dtype));
    total.flops += 2 * batches * M * N * K;
    total.bytes += size * (batches * (M * K + K * N) + (g.sum_batches ? 1 : batches) * M * N);
  }
  return total;
}

}  // namespace stag::kir
