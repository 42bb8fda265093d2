// Parameter initialisation (the "init" function, one kernel a parameter) and the source ops
// iota, random_uniform and random_normal.

#include <cmath>

#include "compiler/lower/families.h"

namespace stag::lowering {

using namespace kir;

static void init_param(LowerContext& cx, const Node& n, int seed_buf, int stream);
static void orthogonalize(LowerContext& cx, const Node& n, int w);

void lower_init(LowerContext& cx) {
  cx.begin_function("init");
  int seed = cx.new_buffer("seed", {DType::i64, {}}, BufKind::Input);
  int index = 0;
  for (const Node* n : cx.param_nodes) init_param(cx, *n, seed, index++);
  cx.end_function();
}

static double gain_of(const Node& n) {
  const std::string& nl = n.s("nonlinearity");
  if (nl == "relu") return std::sqrt(2.0);
  if (nl == "leaky_relu") return std::sqrt(2.0 / (1 + n.f("a") * n.f("a")));
  if (nl == "tanh") return 5.0 / 3;
  return 1;
}

static void init_param(LowerContext& cx, const Node& n, int seed_buf, int stream) {
  const Type& t = n.result()->type;
  int out = cx.in(n.result());
  const std::string& init = n.s("init");
  int64_t receptive = 1;
  for (size_t d = 2; d < t.rank(); ++d) receptive *= t.dims[d];
  double fan_in = t.rank() >= 2 ? static_cast<double>(t.dims[1] * receptive) : 1;
  double fan_out = t.rank() >= 2 ? static_cast<double>(t.dims[0] * receptive) : 1;
  double fan = n.s("mode") == "fan_in" ? fan_in : fan_out;
  // Every init is affine in a uniform or normal draw: value = shift + scale * draw.
  bool normal = false;
  double shift = 0, scale = 0;
  if (init == "ones") shift = 1;
  else if (init == "constant") shift = n.f("value");
  else if (init == "uniform") shift = n.f("low"), scale = n.f("high") - n.f("low");
  else if (init == "normal") normal = true, shift = n.f("mean"), scale = n.f("std");
  else if (init == "xavier_uniform") {
    double bound = n.f("gain") * std::sqrt(6.0 / (fan_in + fan_out));
    shift = -bound, scale = 2 * bound;
  } else if (init == "xavier_normal") normal = true, scale = n.f("gain") * std::sqrt(2.0 / (fan_in + fan_out));
  else if (init == "kaiming_uniform") {
    double bound = gain_of(n) * std::sqrt(3.0 / fan);
    shift = -bound, scale = 2 * bound;
  } else if (init == "kaiming_normal") normal = true, scale = gain_of(n) / std::sqrt(fan);
  else if (init == "orthogonal") normal = true, scale = 1;
  std::string from = fmt::format("init %{} {}", n.result()->name, init);
  // A random init reads its shift, scale and stream from a constant of its own, so that every
  // parameter drawn from one distribution shares one compiled kernel whatever its size.
  int affine = -1;
  if (scale != 0) {
    Buffer b = make_buffer(n.result()->name + ".init", {DType::f64, {3}}, BufKind::Const);
    b.data = {shift, scale, static_cast<double>(stream)};
    affine = cx.prog.add_buffer(std::move(b));
  }
  cx.map_kernel("init", from, out, {numel(t)}, [&](const std::vector<E>& idx) {
    if (affine < 0) return cast(fconst(shift, DType::f64), t.dtype);
    E seed = load(seed_buf, DType::i64, int_(0)), at = cast(load(affine, DType::f64, int_(2)), DType::i64);
    E draw = normal ? philox_normal(seed, at, idx[0]) : philox_uniform(seed, at, idx[0]);
    return cast(add(load(affine, DType::f64, int_(0)), mul(load(affine, DType::f64, int_(1)), draw)), t.dtype);
  });
  if (init == "orthogonal") orthogonalize(cx, n, out);
}

// Gram-Schmidt on the rows (or, for tall matrices, the columns) of the flattened weight,
// then the gain: PyTorch's orthogonal_ up to the random draws.
static void orthogonalize(LowerContext& cx, const Node& n, int w) {
  const Type& t = n.result()->type;
  int64_t rows = t.dims[0], cols = numel(t) / rows;
  bool by_rows = rows <= cols;
  int64_t count = by_rows ? rows : cols, len = by_rows ? cols : rows;
  DType dt = t.dtype;
  KernelBuilder kb("orthogonal", fmt::format("init %{} orthogonal", n.result()->name));
  int i = 0, j = kb.new_var("j"), k = kb.new_var("k"), dot = kb.new_var("dot", DType::f64), norm = kb.new_var("norm", DType::f64);
  auto at = [&](E vec, E e) { return by_rows ? add(mul(vec, int_(cols)), e) : add(mul(e, int_(cols)), vec); };
  auto val = [&](E vec, E e) { return cast(cx.ld(w, at(vec, e)), DType::f64); };
  E vi = kb.v(i), vj = kb.v(j), vk = kb.v(k);
  // q_i -= <q_i, q_j> q_j for every j < i (later j are masked out), then q_i /= |q_i|.
  std::vector<Stmt> project = {
      assign(dot, fconst(0, DType::f64)),
      for_(k, 0, len, {assign(dot, add(kb.v(dot), mul(val(vi, vk), val(vj, vk))))}),
      for_(k, 0, len, {store(w, at(vi, vk), cast(sub(val(vi, vk), mul(select(lt(vj, vi), kb.v(dot), fconst(0, DType::f64)), val(vj, vk))), dt))}),
  };
  std::vector<Stmt> body = {for_(j, 0, count, std::move(project))};
  body.push_back(assign(norm, fconst(0, DType::f64)));
  body.push_back(for_(k, 0, len, {assign(norm, add(kb.v(norm), mul(val(vi, vk), val(vi, vk))))}));
  body.push_back(for_(k, 0, len, {store(w, at(vi, vk), cast(mul(fconst(n.f("gain"), DType::f64), div(val(vi, vk), un(Un::sqrt, kb.v(norm)))), dt))}));
  kb.k.extent = count;  // sequential: each vector depends on the ones before it
  kb.k.body = std::move(body);
  cx.emit(std::move(kb));
}

void iota(LowerContext& cx, const Node& n, const std::vector<int>&, int out) {
  const Type& ot = n.result()->type;
  int64_t axis = norm_axis(n.i("axis"), ot.rank());
  cx.map_kernel("iota", cx.origin(n), out, ot.dims, [&](const std::vector<E>& idx) { return cast(idx[axis], ot.dtype); });
}

// random_uniform and random_normal: an affine map of a Philox draw, keyed by the optional operand.
void random(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out) {
  const Type& ot = n.result()->type;
  bool normal = n.op == Op::random_normal;
  double a = normal ? n.f("mean") : n.f("low"), b = normal ? n.f("std") : n.f("high") - n.f("low");
  cx.map_kernel(std::string(n.info().name), cx.origin(n), out, {numel(ot)}, [&](const std::vector<E>& idx) {
    E key = xs.empty() ? int_(0) : cx.ld(xs[0], int_(0));
    E at = xs.size() > 1 ? add(mul(cx.ld(xs[1], int_(0)), int_(numel(ot))), idx[0]) : idx[0];  // ops.def: the part's
    E draw = normal ? philox_normal(int_(n.i("seed")), key, at) : philox_uniform(int_(n.i("seed")), key, at);
    return cast(add(fconst(a, DType::f64), mul(fconst(b, DType::f64), draw)), ot.dtype);
  });
}

}  // namespace stag::lowering
