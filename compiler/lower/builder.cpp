#include "compiler/lower/builder.h"

#include <algorithm>

namespace stag::kir {

Dims strides_of(const Dims& dims) {
  Dims s(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) s[i - 1] = s[i] * dims[i];
  return s;
}

KernelBuilder::KernelBuilder(std::string name, std::string origin) {
  k.name = std::move(name);
  k.origin = std::move(origin);
  new_var("p");
}

int KernelBuilder::new_var(const std::string& name, DType t) {
  k.vars.push_back({name, t});
  return static_cast<int>(k.vars.size()) - 1;
}

void loop_nest(KernelBuilder& kb, const Dims& dims, const std::function<std::vector<Stmt>(const std::vector<E>&)>& body,
               int64_t grain_elements) {
  std::vector<E> idx;
  if (dims.empty()) {
    kb.k.extent = 1;
    kb.k.body = body(idx);
    return;
  }
  kb.k.extent = dims[0];
  idx.push_back(kb.v(0));
  std::vector<int> vars;
  for (size_t d = 1; d < dims.size(); ++d) {
    vars.push_back(kb.new_var("i" + std::to_string(d)));
    idx.push_back(kb.v(vars.back()));
  }
  std::vector<Stmt> stmts = body(idx);
  for (size_t d = dims.size(); d-- > 1;) stmts = {for_(vars[d - 1], 0, dims[d], std::move(stmts))};
  kb.k.body = std::move(stmts);
  int64_t inner = 1;
  for (size_t d = 1; d < dims.size(); ++d) inner *= dims[d];
  kb.k.grain = grain_of(grain_elements, inner);
  kb.k.parallel = dims[0] > kb.k.grain;
}

E offset(const std::vector<E>& idx, const Dims& dims) {
  Dims st = strides_of(dims);
  E off = int_(0);
  for (size_t d = 0; d < idx.size(); ++d) off = add(off, mul(idx[d], int_(st[d])));
  return off;
}

E broadcast_offset(const std::vector<E>& idx, const Dims& out_dims, const Dims& in_dims) {
  Dims st = strides_of(in_dims);
  size_t lead = out_dims.size() - in_dims.size();
  E off = int_(0);
  for (size_t d = 0; d < in_dims.size(); ++d)
    if (in_dims[d] != 1) off = add(off, mul(idx[lead + d], int_(st[d])));
  return off;
}

namespace {
constexpr int64_t kMask32 = 0xffffffffLL;
E lo32(E x) { return bin(Bin::and_, std::move(x), int_(kMask32)); }
E hi32(E x) { return bin(Bin::lshr, std::move(x), int_(32)); }
E xor_(E a, E b) { return bin(Bin::xor_, std::move(a), std::move(b)); }
}  // namespace

std::array<E, 2> philox_bits(E seed, E key, E index) {
  std::array<E, 4> c = {lo32(index), hi32(index), lo32(key), hi32(key)};
  E k0 = lo32(seed), k1 = hi32(seed);
  for (int round = 0; round < 10; ++round) {
    // 32x32 -> 64-bit products of values below 2^32: exact in wrapping i64 arithmetic.
    E p0 = mul(int_(0xD2511F53LL), c[0]);
    E p1 = mul(int_(0xCD9E8D57LL), c[2]);
    c = {xor_(xor_(hi32(p1), c[1]), k0), lo32(p1), xor_(xor_(hi32(p0), c[3]), k1), lo32(p0)};
    k0 = lo32(add(k0, int_(0x9E3779B9LL)));
    k1 = lo32(add(k1, int_(0xBB67AE85LL)));
  }
  return {c[0], c[1]};
}

static E bits_to_unit(E bits) {
  return bin(Bin::mul, cast(bin(Bin::lshr, std::move(bits), int_(8)), DType::f64), float_(1.0 / 16777216.0, DType::f64));
}

E philox_uniform(E seed, E key, E index) { return bits_to_unit(philox_bits(std::move(seed), std::move(key), std::move(index))[0]); }

E philox_normal(E seed, E key, E index) {
  auto b = philox_bits(std::move(seed), std::move(key), std::move(index));
  E u1 = bin(Bin::sub, float_(1.0, DType::f64), bits_to_unit(b[0]));
  E u2 = bits_to_unit(b[1]);
  E radius = un(Un::sqrt, bin(Bin::mul, float_(-2.0, DType::f64), un(Un::log, u1)));
  return bin(Bin::mul, radius, un(Un::cos, bin(Bin::mul, float_(6.283185307179586, DType::f64), u2)));
}

// The largest arguments whose exp rounds to 0: every x at or below them gives 0 in glibc's
// exp and expf (and in the correctly rounded result).
static constexpr double kExpZeroF32 = -103.97208404541016, kExpZeroF64 = -745.1332191019412;

E exp_masked(E x) {
  DType t = x->type;
  E under = bin(Bin::le, x, float_(t == DType::f32 ? kExpZeroF32 : kExpZeroF64, t));
  return select(under, float_(0, t), un(Un::exp, select(under, float_(0, t), x)));
}

}  // namespace stag::kir
