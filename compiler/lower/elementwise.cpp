// Elementwise ops (and broadcast_to): their scalar formulas, and one kernel mapping an
// elementwise node over its result when it is not fused into its reader.

#include <cmath>
#include <stdexcept>

#include "compiler/lower/families.h"

namespace stag::lowering {

using namespace kir;

// The scalar formula of an elementwise op.
E scalar(const Node& n, const std::vector<E>& x, DType out) {
  DType t = x[0]->type;
  auto c = [&](double v) { return const_of(v, t); };
  switch (n.op) {
    case Op::neg: return un(Un::neg, x[0]);
    case Op::abs: return un(Un::abs, x[0]);
    case Op::exp: return un(Un::exp, x[0]);
    case Op::log: return un(Un::log, x[0]);
    case Op::sqrt: return un(Un::sqrt, x[0]);
    case Op::rsqrt: return div(c(1), un(Un::sqrt, x[0]));
    case Op::square: return mul(x[0], x[0]);
    case Op::tanh: return un(Un::tanh, x[0]);
    case Op::sigmoid: return div(c(1), add(c(1), un(Un::exp, un(Un::neg, x[0]))));
    case Op::relu: return select(gt(x[0], c(0)), x[0], c(0));
    case Op::leaky_relu: return select(gt(x[0], c(0)), x[0], mul(c(n.f("alpha")), x[0]));
    case Op::gelu:
      if (n.s("approximate") == "tanh") {
        E inner = mul(c(std::sqrt(2 / M_PI)), add(x[0], mul(c(0.044715), mul(x[0], mul(x[0], x[0])))));
        return mul(mul(c(0.5), x[0]), add(c(1), un(Un::tanh, inner)));
      }
      return mul(mul(c(0.5), x[0]), add(c(1), un(Un::erf, mul(x[0], c(M_SQRT1_2)))));
    case Op::erf: return un(Un::erf, x[0]);
    case Op::sign: return select(gt(x[0], c(0)), c(1), select(lt(x[0], c(0)), c(-1), c(0)));
    case Op::cast:
      if (out == DType::b8) return bin(Bin::ne, x[0], c(0));
      return cast(x[0], out);  // float to int rounds toward zero
    case Op::add: return add(x[0], x[1]);
    case Op::sub: return sub(x[0], x[1]);
    case Op::mul: return mul(x[0], x[1]);
    case Op::div: return div(x[0], x[1]);
    case Op::pow: return bin(Bin::pow, x[0], x[1]);
    case Op::maximum: return is_float(t) ? select(bin(Bin::ne, x[0], x[0]), x[0], nan_max(x[0], x[1])) : bin(Bin::max, x[0], x[1]);
    case Op::minimum:
      return is_float(t) ? select(bin(Bin::ne, x[0], x[0]), x[0], select(bin(Bin::ne, x[1], x[1]), x[1], bin(Bin::min, x[0], x[1])))
                         : bin(Bin::min, x[0], x[1]);
    case Op::gt: return gt(x[0], x[1]);
    case Op::ge: return ge(x[0], x[1]);
    case Op::lt: return lt(x[0], x[1]);
    case Op::le: return bin(Bin::le, x[0], x[1]);
    case Op::eq: return bin(Bin::eq, x[0], x[1]);
    case Op::select: return select(x[0], x[1], x[2]);
    case Op::broadcast_to: return x[0];
    default: break;
  }
  throw std::logic_error(fmt::format("no scalar formula for {}", n.info().name));
}

// Marks the axes of n's result that a broadcast read in n's fused tree indexes by; every
// other read goes through the flat index (node_value), as do reads below a reshape.
static void indexed_axes(LowerContext& cx, const Node& n, std::vector<bool>& used) {
  if (n.op == Op::reshape || n.op == Op::flatten) return;
  const Dims& D = n.result()->type.dims;
  for (const Value* x : n.operands) {
    const Dims& d = x->type.dims;
    int id = cx.in(x);
    if (d == D && id < 0) indexed_axes(cx, *cx.pseudo_node[static_cast<size_t>(-id - 1)], used);
    if (d == D || numel(x->type) == 1) continue;
    size_t lead = D.size() - d.size();
    for (size_t j = 0; j < d.size(); ++j) used[lead + j] = used[lead + j] || d[j] != 1;
  }
}

// The result's trailing axes that no broadcast indexes by run as one loop: a plane of 7 x 7
// as one loop of 49 (LLVM left loops of 7 scalar), a whole image when nothing broadcasts.
// Their indices are still given (div/rem of the inner loop), for any read that asks.
void elementwise(LowerContext& cx, const Node& n, const std::vector<int>&, int out) {
  const Dims& D = n.result()->type.dims;
  std::vector<bool> used(D.size(), false);
  indexed_axes(cx, n, used);
  size_t keep = D.size();
  while (keep > 1 && !used[keep - 1]) --keep;
  Dims loops(D.begin(), D.begin() + static_cast<long>(keep));
  if (keep < D.size()) loops.push_back(*checked_numel(Dims(D.begin() + static_cast<long>(keep), D.end())));
  cx.map_kernel(std::string(n.info().name), cx.origin(n), out, loops, [&](const std::vector<E>& idx) {
    std::vector<E> multi(idx.begin(), idx.begin() + static_cast<long>(keep));
    int64_t inner = keep < D.size() ? loops.back() : 1;
    for (size_t a = keep; a < D.size(); ++a) {
      inner /= D[a];
      multi.push_back(bin(Bin::rem, bin(Bin::div, idx[keep], int_(inner)), int_(D[a])));
    }
    return cx.node_value(n, &multi, offset(idx, loops));
  });
}

}  // namespace stag::lowering
