// Every op on random shapes and attributes, compiled against the reference interpreter:
// sizes of 1, odd sizes and sizes off the vector width, broadcasting in every direction, and
// the attribute combinations of each op. Seeded, so a failure reproduces.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <random>

#include "compiler/jit/jit_model.h"
#include "ir/builder.h"
#include "ir/printer.h"
#include "ir/reference.h"

using namespace stag;

namespace {

struct Gen {
  std::mt19937_64 rng;
  int64_t dim() {
    static constexpr int64_t sizes[] = {1, 2, 3, 5, 7, 8, 9, 16, 17, 31, 33};
    return sizes[rng() % std::size(sizes)];
  }
  int64_t pick(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1)); }
  bool coin() { return rng() % 2; }
  Dims dims(size_t rank) {
    Dims d;
    for (size_t i = 0; i < rank; ++i) d.push_back(dim());
    return d;
  }
  // A constant of random values: the inputs are baked in, so the whole case is one graph.
  Value* tensor(Builder& b, DType t, const Dims& d, double lo = -2, double hi = 2) {
    std::uniform_real_distribution<double> u(lo, hi);
    Floats v(static_cast<size_t>(*checked_numel(d)));
    for (auto& x : v) x = is_float(t) ? u(rng) : std::floor(u(rng));
    return b.constant({t, d}, v);
  }
};

// Numpy broadcasting partner of `d`: some dimensions set to 1, some leading ones dropped.
Dims broadcast_partner(Gen& g, const Dims& d) {
  Dims out(d.begin() + static_cast<long>(g.pick(0, static_cast<int64_t>(d.size()))), d.end());
  for (auto& x : out)
    if (g.coin()) x = 1;
  return out;
}

void check_case(const Graph& graph, double tol) {
  INFO(print(graph));
  RefResult want = interpret(graph, {});
  CompiledModel c = compile_jit(graph, {.opt_level = 2, .profile = false, .passes = {}});
  auto outs = c.model->run("forward", {});
  const auto& specs = c.model->manifest().function("forward").outputs;
  for (size_t o = 0; o < outs.size(); ++o) {
    const auto& ref = want.outputs.at(specs[o].name).data;
    auto got = outs[o].values<float>();
    REQUIRE(got.size() == ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      INFO(fmt::format("{}[{}]: compiled {} reference {}", specs[o].name, i, got[i], ref[i]));
      REQUIRE(std::fabs(got[i] - ref[i]) <= tol * (1 + std::fabs(ref[i])));
    }
  }
}

// Builds one random case of `op`; returns its output.
Value* random_case(Gen& g, Builder& b, Op op, double& tol) {
  DType f = DType::f32;
  tol = 2e-5;
  auto A = [&](std::initializer_list<std::pair<const char*, Attr>> a) {
    NamedAttrs out;
    for (auto& [k, v] : a) out.emplace_back(k, v);
    return out;
  };
  const OpInfo& info = op_info(op);
  if (info.has(Elementwise) && info.min_operands == 1 && op != Op::cast) {
    bool positive = op == Op::log || op == Op::sqrt || op == Op::rsqrt;
    Value* x = g.tensor(b, f, g.dims(static_cast<size_t>(g.pick(0, 4))), positive ? 0.1 : -3, 3);
    NamedAttrs a;
    if (op == Op::leaky_relu) a = A({{"alpha", 0.1 * static_cast<double>(g.pick(0, 5))}});
    if (op == Op::gelu && g.coin()) a = A({{"approximate", std::string("tanh")}});
    return b.create(op, {x}, a)[0];
  }
  if (info.has(Elementwise) && info.min_operands == 2) {
    Dims d = g.dims(static_cast<size_t>(g.pick(1, 4)));
    Dims e = broadcast_partner(g, d);
    if (g.coin()) std::swap(d, e);
    Value* x = g.tensor(b, f, d, op == Op::pow ? 0.2 : -2, 2);
    Value* y = g.tensor(b, f, e, op == Op::div ? 0.5 : -2, 2);
    Value* r = b.create(op, {x, y})[0];
    return r->type.dtype == DType::b8 ? b.cast({r}, A({{"to", DType::f32}})) : r;
  }
  switch (op) {
    case Op::cast: return b.cast({b.cast({g.tensor(b, f, g.dims(2), -5, 5)}, A({{"to", DType::i32}}))}, A({{"to", DType::f32}}));
    case Op::select: {
      Dims d = g.dims(3);
      Value* c = b.gt({g.tensor(b, f, broadcast_partner(g, d)), b.scalar(0.0)});
      return b.select({c, g.tensor(b, f, broadcast_partner(g, d)), g.tensor(b, f, d)});
    }
    case Op::sum:
    case Op::mean:
    case Op::max: {
      Dims d = g.dims(static_cast<size_t>(g.pick(1, 4)));
      Ints axes;
      for (size_t i = 0; i < d.size(); ++i)
        if (g.coin()) axes.push_back(g.coin() ? static_cast<int64_t>(i) : static_cast<int64_t>(i) - static_cast<int64_t>(d.size()));
      tol = 1e-4;
      return b.create(op, {g.tensor(b, f, d)}, A({{"axes", axes}, {"keepdims", g.coin()}}))[0];
    }
    case Op::argmax: {
      Dims d = g.dims(static_cast<size_t>(g.pick(1, 3)));
      Value* r = b.argmax({g.tensor(b, f, d)}, A({{"axis", g.pick(0, static_cast<int64_t>(d.size()) - 1)}, {"keepdims", g.coin()}}));
      return b.cast({r}, A({{"to", DType::f32}}));
    }
    case Op::matmul: {
      int64_t m = g.dim(), k = g.dim(), n = g.dim();
      bool ta = g.coin(), tb = g.coin();
      Dims batch_a, batch_b;
      if (g.coin()) batch_a = {g.pick(1, 3)}, batch_b = g.coin() ? batch_a : Dims{1};
      Dims da = batch_a, db = batch_b;
      da.push_back(ta ? k : m), da.push_back(ta ? m : k);
      db.push_back(tb ? n : k), db.push_back(tb ? k : n);
      tol = 1e-4;
      return b.matmul({g.tensor(b, f, da), g.tensor(b, f, db)}, A({{"transpose_a", ta}, {"transpose_b", tb}}));
    }
    case Op::conv2d:
    case Op::conv_transpose2d: {
      int64_t groups = g.pick(1, 2), cin = groups * g.pick(1, 3), cout = groups * g.pick(1, 3);
      Ints s{g.pick(1, 3), g.pick(1, 2)}, d{g.pick(1, 2), g.pick(1, 2)}, p{g.pick(0, 2), g.pick(0, 1)};
      int64_t kh = g.pick(1, 3), kw = g.pick(1, 3);
      Dims x{g.pick(1, 2), cin, g.pick(6, 11), g.pick(5, 9)};
      Dims w = op == Op::conv2d ? Dims{cout, cin / groups, kh, kw} : Dims{cin, cout / groups, kh, kw};
      NamedAttrs a = A({{"stride", s}, {"padding", p}, {"dilation", d}, {"groups", groups}});
      if (op == Op::conv_transpose2d) a.emplace_back("output_padding", Ints{g.pick(0, s[0] - 1), 0});
      std::vector<Value*> xs = {g.tensor(b, f, x), g.tensor(b, f, w)};
      if (g.coin()) xs.push_back(g.tensor(b, f, {cout}));
      tol = 1e-4;
      return b.create(op, xs, a)[0];
    }
    case Op::conv2d_weight_grad: {
      // Stride 1 and one group take the product over lines (kir::Gemm::b_lines); others loops.
      int64_t groups = g.pick(1, 2), cin = groups * g.pick(1, 3), cout = groups * g.pick(1, 3);
      Ints s{g.coin() ? 1 : g.pick(2, 3), g.pick(1, 2)}, d{g.pick(1, 2), g.pick(1, 2)}, p{g.pick(0, 2), g.pick(0, 1)};
      if (g.coin()) s = {1, 1}, groups = 1;
      Ints k{g.pick(1, 3), g.pick(1, 3)};
      Dims x{g.pick(1, 11), cin, g.pick(6, 11), g.pick(5, 9)}, dy{x[0], cout, 0, 0};
      for (int i = 0; i < 2; ++i) dy[2 + i] = (x[2 + i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) / s[i] + 1;
      tol = 1e-4;
      return b.create(op, {g.tensor(b, f, x), g.tensor(b, f, dy)},
                      A({{"kernel", k}, {"stride", s}, {"padding", p}, {"dilation", d}, {"groups", groups}}))[0];
    }
    case Op::max_pool2d:
    case Op::avg_pool2d: {
      Ints k{g.pick(1, 3), g.pick(1, 3)};
      NamedAttrs a = A({{"kernel", k}, {"stride", Ints{g.pick(1, 3), g.pick(1, 2)}}, {"padding", Ints{g.pick(0, k[0] / 2), g.pick(0, k[1] / 2)}},
                        {"ceil_mode", g.coin()}});
      if (op == Op::max_pool2d) a.emplace_back("dilation", Ints{g.pick(1, 2), 1});
      else a.emplace_back("count_include_pad", g.coin());
      return b.create(op, {g.tensor(b, f, {2, 3, g.pick(5, 9), g.pick(4, 8)})}, a)[0];
    }
    case Op::max_pool2d_grad: {
      // Windows that tile the input, are disjoint, overlap, or overhang it; rows as long as 40
      // windows (vectorized with a remainder); integer values, so windows hold ties.
      Ints k{g.pick(1, 3), g.pick(1, 3)};
      Ints s = g.coin() ? k : Ints{g.pick(1, 3), g.pick(1, 3)};
      NamedAttrs a = A({{"kernel", k}, {"stride", s}, {"padding", Ints{g.pick(0, k[0] / 2), g.pick(0, k[1] / 2)}},
                        {"ceil_mode", g.coin()}, {"dilation", Ints{g.pick(1, 2), g.pick(1, 2)}}});
      if (g.coin()) a[2].second = Ints{0, 0};
      Dims xd{2, 3, g.pick(5, 12), g.pick(4, 40)};
      Floats xv(static_cast<size_t>(*checked_numel(xd)));
      for (auto& v : xv) v = static_cast<double>(g.pick(-2, 2));
      Value* x = b.constant({f, xd}, xv);
      auto pooled = b.try_create(Op::max_pool2d, {x}, a);
      if (!pooled.error.empty()) return random_case(g, b, op, tol);  // a window larger than the input
      return b.max_pool2d_grad({x, g.tensor(b, f, pooled.values[0]->type.dims)}, a);
    }
    case Op::global_avg_pool: return b.global_avg_pool({g.tensor(b, f, {2, 3, g.dim(), g.dim()})});
    case Op::batch_norm: {
      Dims x{g.pick(2, 5), g.pick(1, 4), g.dim(), g.dim()};
      Dims c{x[1]};
      auto r = b.create(op, {g.tensor(b, f, x), g.tensor(b, f, c), g.tensor(b, f, c), g.tensor(b, f, c), g.tensor(b, f, c, 0.5, 2)},
                        A({{"training", g.coin()}}));
      b.output("mean", r[1]);
      b.output("var", r[2]);
      tol = 1e-4;
      return r[0];
    }
    case Op::layer_norm: {
      Dims x = g.dims(3);
      int64_t k = g.pick(1, 2);
      std::vector<Value*> xs = {g.tensor(b, f, x)};
      if (g.coin()) {
        Dims w(x.end() - k, x.end());
        xs.push_back(g.tensor(b, f, w));
        xs.push_back(g.tensor(b, f, w));
      }
      tol = 1e-4;
      return b.layer_norm(xs, A({{"normalized_dims", k}}));
    }
    case Op::dropout: return b.dropout({g.tensor(b, f, g.dims(2))}, A({{"p", 0.3}, {"seed", g.pick(0, 100)}}));
    case Op::softmax:
    case Op::log_softmax: {
      Dims d = g.dims(3);
      return b.create(op, {g.tensor(b, f, d, -5, 5)}, A({{"axis", g.pick(-3, 2)}}))[0];
    }
    case Op::attention:
    case Op::attention_grad: {
      // the gradient reads the forward's logsumexp, so both are in the graph
      bool causal = g.coin();
      int64_t t = g.dim(), s = causal ? t : g.dim(), d = g.dim();
      Dims batch{g.pick(1, 3), g.pick(1, 3)}, q = batch, k = batch, v = batch;
      q.insert(q.end(), {t, d}), k.insert(k.end(), {s, d}), v.insert(v.end(), {s, g.dim()});
      NamedAttrs a = A({{"scale", 0.5}, {"causal", causal}});
      std::vector<Value*> xs = {g.tensor(b, f, q), g.tensor(b, f, k), g.tensor(b, f, v)};
      auto fwd = b.create(Op::attention, xs, a);
      tol = 1e-4;
      if (op == Op::attention) return fwd[g.pick(0, 1)];
      xs.push_back(fwd[1]);
      xs.push_back(g.tensor(b, f, fwd[0]->type.dims));
      return b.create(op, xs, a)[g.pick(0, 2)];
    }
    case Op::embedding: {
      int64_t v = g.dim();
      return b.embedding({g.tensor(b, f, {v, g.dim()}), g.tensor(b, DType::i64, g.dims(2), 0, static_cast<double>(v) - 0.01)});
    }
    case Op::embedding_grad: {
      // few rows for many ids: rows gather several of dy's
      int64_t v = g.pick(1, 9);
      Dims ids = g.dims(2), dy = ids;
      dy.push_back(g.dim());
      tol = 1e-4;
      return b.embedding_grad({g.tensor(b, f, dy), g.tensor(b, DType::i64, ids, 0, static_cast<double>(v) - 0.01)},
                              A({{"num_embeddings", v}}));
    }
    case Op::one_hot: {
      int64_t c = g.dim();
      return b.one_hot({g.tensor(b, DType::i64, g.dims(2), 0, static_cast<double>(c) - 0.01)}, A({{"num_classes", c}}));
    }
    case Op::reshape: {
      Dims d = g.dims(3);
      return b.reshape({g.tensor(b, f, d)}, A({{"shape", Ints{d[2], -1}}}));
    }
    case Op::flatten: return b.flatten({g.tensor(b, f, g.dims(4))}, A({{"start_dim", g.pick(0, 1)}, {"end_dim", g.pick(2, 3)}}));
    case Op::transpose: {
      Ints perm{0, 1, 2, 3};
      std::shuffle(perm.begin(), perm.end(), g.rng);
      return b.transpose({g.tensor(b, f, g.dims(4))}, A({{"perm", perm}}));
    }
    case Op::broadcast_to: {
      Dims d = g.dims(3);
      return b.broadcast_to({g.tensor(b, f, broadcast_partner(g, d))}, A({{"shape", d}}));
    }
    case Op::concat: {
      Dims d = g.dims(3);
      int64_t axis = g.pick(0, 2);
      std::vector<Value*> xs;
      for (int i = 0; i < g.pick(1, 3); ++i) {
        Dims e = d;
        e[axis] = g.dim();
        xs.push_back(g.tensor(b, f, e));
      }
      return b.concat(xs, A({{"axis", axis - (g.coin() ? 3 : 0)}}));
    }
    case Op::slice: {
      Dims d = g.dims(3);
      int64_t axis = g.pick(0, 2), start = g.pick(0, d[axis] - 1), end = g.pick(start + 1, d[axis]);
      return b.slice({g.tensor(b, f, d)}, A({{"axes", Ints{axis}}, {"starts", Ints{start - (g.coin() ? d[axis] : 0)}},
                                            {"ends", Ints{end}}, {"steps", Ints{g.pick(1, 3)}}}));
    }
    case Op::pad: {
      Dims d = g.dims(2);
      return b.pad({g.tensor(b, f, d)}, A({{"pads", Ints{g.pick(0, 2), g.pick(0, 2), g.pick(0, 2), g.pick(0, 2)}}, {"value", 0.5}}));
    }
    case Op::split: {
      // along axis 0 the pieces are views of the input (read here by neg), along axis 1 copies
      int64_t axis = g.pick(0, 1);
      Dims d = g.dims(2);
      d[axis] += 1;
      int64_t first = g.pick(1, d[axis] - 1);
      auto r = b.create(op, {g.tensor(b, f, d)}, A({{"axis", axis}, {"sizes", Ints{first, d[axis] - first}}}));
      b.output("second", b.neg({r[1]}));
      return b.neg({r[0]});
    }
    case Op::mse:
    case Op::huber:
    case Op::bce_with_logits: {
      Dims d = g.dims(2);
      static const char* reds[] = {"mean", "sum", "none"};
      tol = 1e-4;
      return b.create(op, {g.tensor(b, f, d), g.tensor(b, f, d, 0, 1)}, A({{"reduction", std::string(reds[g.pick(0, 2)])}}))[0];
    }
    case Op::cross_entropy:
    case Op::nll: {
      int64_t n = g.dim(), c = g.dim();
      static const char* reds[] = {"mean", "sum", "none"};
      NamedAttrs a = A({{"reduction", std::string(reds[g.pick(0, 2)])}});
      if (op == Op::cross_entropy) a.emplace_back("label_smoothing", 0.1 * static_cast<double>(g.pick(0, 3)));
      tol = 1e-4;
      return b.create(op, {g.tensor(b, f, {n, c}), g.tensor(b, DType::i64, {n}, 0, static_cast<double>(c) - 0.01)}, a)[0];
    }
    case Op::l1_penalty:
    case Op::l2_penalty: tol = 1e-4; return b.create(op, {g.tensor(b, f, g.dims(3))})[0];
    case Op::iota: return b.create(op, {}, A({{"axis", int64_t{1}}}), {{f, g.dims(3)}})[0];
    case Op::random_uniform:
    case Op::random_normal: return b.create(op, {}, A({{"seed", g.pick(0, 9)}}), {{f, g.dims(2)}})[0];
    case Op::constant: return g.tensor(b, f, g.dims(2));
    default: return nullptr;
  }
}

}  // namespace

TEST_CASE("every op compiles and matches the reference on random shapes and attributes", "[codegen][random]") {
  Gen g{std::mt19937_64(20261129)};
  int cases = 0;
  for (const auto& info : all_ops()) {
    if (info.op == Op::input || info.op == Op::parameter) continue;  // fed, covered by the model tests
    if (info.has(HasBody)) continue;  // scan: tests/ir/reference_cases and tests/autodiff/test_scan.cpp
    for (int rep = 0; rep < 4; ++rep) {
      Graph graph(fmt::format("{}_{}", info.name, rep));
      Builder b(graph);
      double tol = 0;
      Value* out = random_case(g, b, info.op, tol);
      INFO(info.name);
      REQUIRE(out != nullptr);
      b.output("out", out);
      check_case(graph, tol);
      ++cases;
    }
  }
  CHECK(cases >= 4 * 60);
}

TEST_CASE("pooling matches the reference on windows inside, across and around the border", "[codegen][random]") {
  // The lowerings split each plane into windows needing bounds checks and windows inside the
  // input; many random attributes reach every split (none inside, all inside, both).
  Gen g{std::mt19937_64(7)};
  for (Op op : {Op::max_pool2d, Op::avg_pool2d, Op::max_pool2d_grad})
    for (int rep = 0; rep < 30; ++rep) {
      Graph graph(fmt::format("{}_{}", op_info(op).name, rep));
      Builder b(graph);
      double tol = 0;
      Value* out = random_case(g, b, op, tol);
      b.output("out", out);
      check_case(graph, tol);
    }
}
