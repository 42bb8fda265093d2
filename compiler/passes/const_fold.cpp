// Constant folding: a node whose operands are all constants is evaluated at compile time by
// the reference interpreter (the same code that is the oracle of every op) and becomes a
// constant. The reference computes in double, so a folded f32 chain is rounded once rather
// than after every op: within an ulp of what the kernels would give. Loops (ops with a body)
// stay: their cost at compile time would grow with the trip count.

#include <algorithm>
#include <cstdint>
#include <optional>

#include "compiler/passes/pass.h"
#include "ir/reference.h"

namespace stag {

namespace {

// Results up to this size are kept element by element; larger ones only when every element
// is equal (a splat costs one number however large it is).
constexpr int64_t kMaxStoredElements = 4096;
constexpr int64_t kMaxEvaluatedElements = int64_t{1} << 20;

// The reference computes in double; the kernels would have rounded (f32), wrapped (integers)
// or tested (bool) the result of this one op, so the constant does too.
// An integer beyond i64 (or NaN) has no defined value in the kernels: such nodes stay.
std::optional<double> as_dtype(double x, DType t) {
  bool in_i64 = x > -9.2e18 && x < 9.2e18;
  switch (t) {
    case DType::f32: return static_cast<double>(static_cast<float>(x));
    case DType::i32:
      if (!in_i64) return std::nullopt;
      return static_cast<double>(static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(static_cast<int64_t>(x)))));
    case DType::i64:
      if (!in_i64) return std::nullopt;
      return x;
    case DType::b8: return x != 0 ? 1.0 : 0.0;
    default: return x;
  }
}

RefTensor tensor_of(const Node& constant) {
  const Type& t = constant.result()->type;
  const Floats& v = constant.floats("value");
  if (v.size() == 1) return RefTensor::filled(t, v[0]);
  return RefTensor(t, v);
}

}  // namespace

bool const_fold(Graph& g, PassCounters& c) {
  int64_t folded = 0;
  for (auto& n : g.nodes) {
    if (n->info().has(Source) || n->info().has(Stochastic) || n->info().has(HasBody) || n->results.size() != 1 || n->operands.empty()) continue;
    bool all_constant = std::all_of(n->operands.begin(), n->operands.end(), [](const Value* v) { return v->def->op == Op::constant; });
    int64_t numel = *checked_numel(n->result()->type.dims);
    if (!all_constant || numel > kMaxEvaluatedElements) continue;
    bool small_operands = std::all_of(n->operands.begin(), n->operands.end(),
                                      [](const Value* v) { return *checked_numel(v->type.dims) <= kMaxEvaluatedElements; });
    if (!small_operands) continue;
    std::vector<RefTensor> operands;
    for (const Value* v : n->operands) operands.push_back(tensor_of(*v->def));
    std::vector<const RefTensor*> ptrs;
    for (const auto& t : operands) ptrs.push_back(&t);
    std::vector<RefTensor> result;
    try {
      result = evaluate(*n, ptrs);
    } catch (const RefError&) {
      continue;  // bad data (an index out of range) is reported when the program runs, not here
    }
    std::vector<double>& data = result[0].data;
    bool representable = true;
    for (double& x : data) {
      auto r = as_dtype(x, n->result()->type.dtype);
      representable = representable && r.has_value();
      if (r) x = *r;
    }
    if (!representable) continue;
    bool splat = std::all_of(data.begin(), data.end(), [&](double x) { return x == data[0] || (x != x && data[0] != data[0]); });
    if (!splat && numel > kMaxStoredElements) continue;
    n->op = Op::constant;
    n->operands.clear();
    n->attrs = {splat ? Floats{data[0]} : Floats(data.begin(), data.end())};
    ++folded;
  }
  if (folded) c.add("nodes folded", folded);
  return folded > 0;
}

}  // namespace stag
