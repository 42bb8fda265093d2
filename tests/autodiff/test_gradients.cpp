// Every differentiable op's gradient rule: autodiff vs central finite differences on the
// reference interpreter (f64), then the same gradient graph compiled (f32) vs the reference.

#include <set>

#include "ir/builder.h"
#include "ir/printer.h"
#include "tests/autodiff/check.h"

using namespace stag;
using namespace stag::test;

namespace {

// How an operand's values are drawn.
enum class Gen { normal, positive, unit, index, boolean };

struct Operand {
  Type type;
  Gen gen = Gen::normal;
  int64_t bound = 0;  ///< indices: values in [0, bound); some become `ignore` when set
  std::optional<int64_t> ignore;
};

struct Case {
  Op op;
  std::vector<Operand> operands;
  NamedAttrs attrs;
};

Operand F(Dims d, Gen g = Gen::normal) { return {{DType::f32, std::move(d)}, g, 0, std::nullopt}; }
Operand I(Dims d, int64_t bound, std::optional<int64_t> ignore = {}) {
  return {{DType::i64, std::move(d)}, Gen::index, bound, ignore};
}

Dims rand_dims(Rng& r, size_t rank, int64_t hi = 4) {
  Dims d;
  for (size_t i = 0; i < rank; ++i) d.push_back(r.pick(1, hi));
  return d;
}
// A shape that broadcasts with d: some leading dims dropped, some set to 1.
Dims partner(Rng& r, const Dims& d) {
  Dims e(d.begin() + r.pick(0, static_cast<int64_t>(d.size())), d.end());
  for (auto& x : e)
    if (r.pick(0, 2) == 0) x = 1;
  return e;
}

std::vector<double> draw(Rng& r, const Operand& o) {
  std::vector<double> v(static_cast<size_t>(*checked_numel(o.type.dims)));
  for (auto& x : v) {
    switch (o.gen) {
      case Gen::normal: x = f32(r.normal()); break;
      case Gen::positive: x = f32(r.uniform(0.5, 2)); break;
      case Gen::unit: x = f32(r.uniform(0, 1)); break;
      case Gen::index: x = static_cast<double>(o.ignore && r.pick(0, 3) == 0 ? *o.ignore : r.pick(0, o.bound - 1)); break;
      case Gen::boolean: x = static_cast<double>(r.coin()); break;
    }
  }
  return v;
}

struct Built {
  std::unique_ptr<Graph> g;
  std::map<std::string, RefTensor> feeds;
  std::vector<std::string> params;
};

// Float operands become trainable parameters, the others constants; the loss weighs every
// float result by a random tensor so that no gradient is trivially uniform.
std::optional<Built> build(const Case& cs, Rng& r) {
  Built out{std::make_unique<Graph>("grad_case"), {}, {}};
  Builder b(*out.g);
  std::vector<Value*> xs;
  for (size_t i = 0; i < cs.operands.size(); ++i) {
    const Operand& o = cs.operands[i];
    auto v = draw(r, o);
    if (is_float(o.type.dtype)) {
      std::string name = fmt::format("x{}", i);
      xs.push_back(b.parameter(name, o.type));
      out.feeds[name] = RefTensor(o.type, v);
      out.params.push_back(name);
    } else {
      xs.push_back(b.constant(o.type, v));
    }
  }
  auto made = b.try_create(cs.op, xs, cs.attrs);
  if (!made.error.empty()) return std::nullopt;
  Value* loss = nullptr;
  for (Value* y : made.values) {
    if (!is_float(y->type.dtype)) continue;
    Floats w;
    for (int64_t i = 0; i < *checked_numel(y->type.dims); ++i) w.push_back(f32(r.normal()));
    Value* term = b.sum({b.mul({y, b.constant(y->type, w)})});
    loss = loss ? b.add({loss, term}) : term;
  }
  b.output("loss", loss);
  return out;
}

using Gens = std::vector<Case> (*)(Op, Rng&);

std::vector<Case> unary(Op op, Rng& r) {
  std::vector<Case> cs;
  bool pos = op == Op::log || op == Op::sqrt || op == Op::rsqrt;
  for (size_t rank = 0; rank < 4; ++rank) {
    Case c{op, {F(rand_dims(r, rank), pos ? Gen::positive : Gen::normal)}, {}};
    if (op == Op::leaky_relu) c.attrs = {{"alpha", 0.05 * static_cast<double>(r.pick(1, 6))}};
    if (op == Op::gelu) c.attrs = {{"approximate", std::string(rank % 2 ? "tanh" : "none")}};
    if (op == Op::cast) {
      c.operands[0].type.dtype = rank % 2 ? DType::f64 : DType::f32;
      c.attrs = {{"to", rank % 2 ? DType::f32 : DType::f64}};
    }
    cs.push_back(c);
  }
  return cs;
}

std::vector<Case> binary(Op op, Rng& r) {
  std::vector<Case> cs;
  for (int i = 0; i < 4; ++i) {
    Dims d = rand_dims(r, static_cast<size_t>(r.pick(0, 3))), e = partner(r, d);
    if (r.coin()) std::swap(d, e);
    Gen ga = op == Op::pow ? Gen::positive : Gen::normal, gb = op == Op::div ? Gen::positive : Gen::normal;
    cs.push_back({op, {F(d, ga), F(e, gb)}, {}});
  }
  return cs;
}

std::vector<Case> select_cases(Op op, Rng& r) {
  std::vector<Case> cs;
  for (int i = 0; i < 3; ++i) {
    Dims d = rand_dims(r, 3);
    Operand cond{{DType::b8, partner(r, d)}, Gen::boolean, 0, std::nullopt};
    cs.push_back({op, {cond, F(partner(r, d)), F(d)}, {}});
  }
  return cs;
}

std::vector<Case> reduction(Op op, Rng& r) {
  std::vector<Case> cs;
  for (int i = 0; i < 4; ++i) {
    Dims d = rand_dims(r, static_cast<size_t>(r.pick(1, 3)));
    Ints axes;
    for (size_t a = 0; a < d.size(); ++a)
      if (r.coin()) axes.push_back(r.coin() ? static_cast<int64_t>(a) : static_cast<int64_t>(a) - static_cast<int64_t>(d.size()));
    cs.push_back({op, {F(d)}, {{"axes", axes}, {"keepdims", i % 2 == 0}}});
  }
  return cs;
}

std::vector<Case> matmul_cases(Op op, Rng& r) {
  std::vector<Case> cs;
  // The last two: a batched A against a shared 2-D B (a linear layer on a sequence), whose
  // B gradient is one product over the stacked rows.
  const std::vector<std::pair<Dims, Dims>> batches = {{{}, {}}, {{2}, {2}}, {{2}, {1}}, {{3, 1}, {2}}, {{}, {2}}, {{3}, {}}, {{2, 3}, {}}};
  for (int flags = 0; flags < 4; ++flags)
    for (int bi : {0, 1 + static_cast<int>(r.pick(0, 5)), 5 + static_cast<int>(r.pick(0, 1))}) {
      bool ta = flags & 1, tb = flags & 2;
      int64_t m = r.pick(1, 4), k = r.pick(1, 4), n = r.pick(1, 4);
      Dims a = batches[bi].first, b = batches[bi].second;
      a.push_back(ta ? k : m), a.push_back(ta ? m : k);
      b.push_back(tb ? n : k), b.push_back(tb ? k : n);
      cs.push_back({op, {F(a), F(b)}, {{"transpose_a", ta}, {"transpose_b", tb}}});
    }
  return cs;
}

std::vector<Case> conv(Op op, Rng& r) {
  std::vector<Case> cs;
  for (int i = 0; i < 5; ++i) {
    int64_t groups = i == 0 ? 1 : r.pick(1, 2), cin = groups * r.pick(1, 2), cout = groups * r.pick(1, 2);
    Ints s{r.pick(1, 3), r.pick(1, 2)}, d{r.pick(1, 2), r.pick(1, 2)}, p{r.pick(0, 2), r.pick(0, 1)};
    int64_t kh = r.pick(1, 3), kw = r.pick(1, 3);
    Dims x{r.pick(1, 2), cin, r.pick(4, 7), r.pick(3, 6)};
    Dims w = op == Op::conv2d ? Dims{cout, cin / groups, kh, kw} : Dims{cin, cout / groups, kh, kw};
    NamedAttrs a{{"stride", s}, {"padding", p}, {"dilation", d}, {"groups", groups}};
    if (op == Op::conv_transpose2d) a.emplace_back("output_padding", Ints{r.pick(0, std::max(s[0], d[0]) - 1), 0});
    Case c{op, {F(x), F(w)}, a};
    if (r.coin()) c.operands.push_back(F({cout}));
    cs.push_back(c);
  }
  return cs;
}

std::vector<Case> weight_grad_cases(Op op, Rng& r) {
  std::vector<Case> cs;
  for (int i = 0; i < 4; ++i) {
    int64_t groups = i == 0 ? 1 : r.pick(1, 2), cin = groups * r.pick(1, 2), cout = groups * r.pick(1, 2);
    Ints s{r.pick(1, 2), r.pick(1, 2)}, d{r.pick(1, 2), 1}, p{r.pick(0, 1), r.pick(0, 1)}, k{r.pick(1, 3), r.pick(1, 2)};
    Dims x{r.pick(1, 2), cin, r.pick(4, 6), r.pick(3, 5)}, dy{x[0], cout, 0, 0};
    for (int j = 0; j < 2; ++j) dy[2 + j] = (x[2 + j] + 2 * p[j] - d[j] * (k[j] - 1) - 1) / s[j] + 1;
    cs.push_back({op, {F(x), F(dy)}, {{"kernel", k}, {"stride", s}, {"padding", p}, {"dilation", d}, {"groups", groups}}});
  }
  return cs;
}

std::vector<Case> pool(Op op, Rng& r) {
  std::vector<Case> cs;
  for (int i = 0; i < 6; ++i) {
    Ints k{r.pick(1, 3), r.pick(2, 3)};
    NamedAttrs a{{"kernel", k}, {"padding", Ints{r.pick(0, k[0] / 2), r.pick(0, k[1] / 2)}}, {"ceil_mode", r.coin()}};
    if (r.coin()) a.emplace_back("stride", Ints{r.pick(1, 3), r.pick(1, 2)});
    if (op == Op::max_pool2d && r.coin()) a.emplace_back("dilation", Ints{r.pick(1, 2), 1});
    if (op == Op::avg_pool2d) a.emplace_back("count_include_pad", r.coin());
    cs.push_back({op, {F({r.pick(1, 2), r.pick(1, 2), r.pick(3, 7), r.pick(3, 7)})}, a});
  }
  return cs;
}

// x and dy of a random max pool (the pool's cases, dy of its result's shape): dy's gradient
// is linear, x's zero.
std::vector<Case> pool_grad(Op op, Rng& r) {
  std::vector<Case> cs;
  for (Case c : pool(Op::max_pool2d, r)) {
    Graph g("pooled");
    Builder b(g);
    auto pooled = b.try_create(Op::max_pool2d, {b.input("x", c.operands[0].type)}, c.attrs);
    if (!pooled.error.empty()) continue;
    c.op = op;
    c.operands.push_back(F(pooled.values[0]->type.dims));
    cs.push_back(c);
  }
  return cs;
}

std::vector<Case> global_pool(Op op, Rng& r) {
  return {{op, {F({2, 3, 4, 5})}, {}}, {op, {F(rand_dims(r, 4))}, {}}};
}

std::vector<Case> batch_norm_cases(Op op, Rng& r) {
  std::vector<Case> cs;
  for (int i = 0; i < 4; ++i) {
    Dims x = i % 2 ? Dims{r.pick(2, 3), r.pick(1, 3)} : Dims{r.pick(1, 2), r.pick(1, 3), r.pick(1, 3), r.pick(2, 3)};
    Dims ch{x[1]};
    cs.push_back({op, {F(x), F(ch), F(ch), F(ch), F(ch, Gen::positive)}, {{"training", i < 2}, {"eps", 1e-3}}});
  }
  return cs;
}

std::vector<Case> layer_norm_cases(Op op, Rng& r) {
  std::vector<Case> cs;
  for (int i = 0; i < 4; ++i) {
    Dims x = rand_dims(r, 3);
    x.back() = r.pick(2, 5);
    int64_t nd = r.pick(1, 2);
    Case c{op, {F(x)}, {{"normalized_dims", nd}, {"eps", 1e-3}}};
    if (i % 2 == 0) {
      Dims nshape(x.end() - nd, x.end());
      c.operands.push_back(F(nshape));
      c.operands.push_back(F(nshape));
    }
    cs.push_back(c);
  }
  return cs;
}

std::vector<Case> dropout_cases(Op op, Rng& r) {
  std::vector<Case> cs;
  for (int i = 0; i < 4; ++i) {
    Case c{op, {F(rand_dims(r, 3, 5))}, {{"p", i == 3 ? 0.0 : 0.3 + 0.2 * (i % 2)}, {"training", i != 2}, {"seed", r.pick(0, 9)}}};
    if (i % 2 == 0) c.operands.push_back(I({}, 100));
    cs.push_back(c);
  }
  return cs;
}

std::vector<Case> softmax_cases(Op op, Rng& r) {
  std::vector<Case> cs;
  for (int i = 0; i < 4; ++i) {
    Dims d = rand_dims(r, static_cast<size_t>(r.pick(1, 3)));
    cs.push_back({op, {F(d)}, {{"axis", r.pick(-static_cast<int64_t>(d.size()), static_cast<int64_t>(d.size()) - 1)}}});
  }
  return cs;
}

// Causal or not, as many keys as queries or not, one or two batch axes.
std::vector<Case> attention_cases(Op op, Rng& r) {
  std::vector<Case> cs;
  for (int i = 0; i < 4; ++i) {
    bool causal = i % 2;
    Dims batch = rand_dims(r, i < 2 ? 1 : 2, 3);
    int64_t t = r.pick(1, 5), s = causal ? t : r.pick(1, 5);
    auto rows = [&](int64_t n, int64_t width) {
      Dims d = batch;
      d.push_back(n), d.push_back(width);
      return d;
    };
    int64_t d = r.pick(1, 4);
    cs.push_back({op, {F(rows(t, d)), F(rows(s, d)), F(rows(s, r.pick(1, 4)))}, {{"scale", r.uniform(0.3, 1.5)}, {"causal", causal}}});
  }
  return cs;
}

std::vector<Case> embedding_cases(Op op, Rng& r) {
  std::vector<Case> cs;
  for (int i = 0; i < 3; ++i) {
    int64_t v = r.pick(2, 6);
    cs.push_back({op, {F({v, r.pick(1, 4)}), I(rand_dims(r, static_cast<size_t>(i), 5), v)}, {}});
  }
  return cs;
}

// dy [ids..., D] and ids with repeats (more ids than rows), so rows gather several of dy's.
std::vector<Case> embedding_grad_cases(Op op, Rng& r) {
  std::vector<Case> cs;
  for (int i = 0; i < 3; ++i) {
    int64_t v = r.pick(1, 4);
    Dims ids = rand_dims(r, static_cast<size_t>(i), 5), dy = ids;
    dy.push_back(r.pick(1, 4));
    cs.push_back({op, {F(dy), I(ids, v)}, {{"num_embeddings", v}}});
  }
  return cs;
}

std::vector<Case> shape_cases(Op op, Rng& r) {
  std::vector<Case> cs;
  for (int i = 0; i < 4; ++i) {
    Dims d = rand_dims(r, 3);
    int64_t rank = 3;
    switch (op) {
      case Op::reshape: {
        int64_t n = *checked_numel(d);
        cs.push_back({op, {F(d)}, {{"shape", i % 2 ? Ints{n} : Ints{d[2], -1}}}});
        break;
      }
      case Op::flatten: cs.push_back({op, {F(d)}, {{"start_dim", int64_t{i % 2}}, {"end_dim", int64_t{-1 - (i / 2)}}}}); break;
      case Op::transpose: {
        Ints perm{0, 1, 2};
        std::shuffle(perm.begin(), perm.end(), r.gen);
        if (i == 0) perm = {-1, 0, 1};
        cs.push_back({op, {F(d)}, {{"perm", perm}}});
        break;
      }
      case Op::broadcast_to: cs.push_back({op, {F(partner(r, d))}, {{"shape", Ints(d)}}}); break;
      case Op::concat: {
        int64_t axis = r.pick(-rank, rank - 1);
        Case c{op, {}, {{"axis", axis}}};
        for (int k = 0; k < 1 + i % 3; ++k) {
          Dims e = d;
          e[axis < 0 ? axis + rank : axis] = r.pick(1, 3);
          c.operands.push_back(F(e));
        }
        cs.push_back(c);
        break;
      }
      case Op::slice: {
        Dims x = rand_dims(r, 3, 7);
        Ints axes, starts, ends, steps;
        for (int64_t a = 0; a < rank; ++a) {
          if (r.coin() && a != i % 3) continue;
          int64_t s = r.pick(0, x[a] - 1), e = r.pick(s + 1, x[a]);
          axes.push_back(r.coin() ? a : a - rank);
          starts.push_back(r.coin() || s == 0 ? s : s - x[a]);
          ends.push_back(e);
          steps.push_back(r.pick(1, 3));
        }
        NamedAttrs a{{"axes", axes}, {"starts", starts}, {"ends", ends}};
        if (i % 2) a.emplace_back("steps", steps);
        cs.push_back({op, {F(x)}, a});
        break;
      }
      case Op::pad: {
        Ints pads;
        for (int64_t a = 0; a < 2 * rank; ++a) pads.push_back(r.pick(0, 2));
        cs.push_back({op, {F(d)}, {{"pads", pads}, {"value", 0.5 * i}}});
        break;
      }
      case Op::split: {
        int64_t axis = r.pick(0, rank - 1);
        d[axis] = r.pick(2, 5);
        Ints sizes;
        for (int64_t left = d[axis]; left > 0;) {
          int64_t s = r.pick(1, left);
          sizes.push_back(s);
          left -= s;
        }
        cs.push_back({op, {F(d)}, {{"axis", axis}, {"sizes", sizes}}});
        break;
      }
      default: break;
    }
  }
  return cs;
}

const std::string kReductions[] = {"mean", "sum", "none"};

std::vector<Case> regression(Op op, Rng& r) {
  std::vector<Case> cs;
  for (int i = 0; i < 3; ++i) {
    Dims d = rand_dims(r, static_cast<size_t>(r.pick(0, 3)));
    Case c{op, {F(d), F(d, op == Op::bce_with_logits ? Gen::unit : Gen::normal)}, {{"reduction", kReductions[i]}}};
    if (op == Op::huber) c.attrs.emplace_back("delta", 0.5 * static_cast<double>(r.pick(1, 3)));
    cs.push_back(c);
  }
  return cs;
}

std::vector<Case> classification(Op op, Rng& r) {
  std::vector<Case> cs;
  for (int i = 0; i < 4; ++i) {
    int64_t n = r.pick(1, 5), classes = r.pick(2, 5), ignore = i == 3 ? 1 : -100;
    Case c{op, {F({n, classes}), I({n}, classes, i >= 2 ? std::optional<int64_t>(ignore) : std::nullopt)},
           {{"reduction", kReductions[i % 3]}, {"ignore_index", ignore}}};
    if (op == Op::cross_entropy) c.attrs.emplace_back("label_smoothing", i % 2 ? 0.1 : 0.0);
    cs.push_back(c);
  }
  return cs;
}

std::vector<Case> penalty(Op op, Rng& r) {
  return {{op, {F(rand_dims(r, 2))}, {}}, {op, {F(rand_dims(r, 3))}, {}}};
}

// Which generator covers each differentiable op.
Gens generator(Op op) {
  const OpInfo& info = op_info(op);
  if (info.has(Elementwise)) return op == Op::select ? select_cases : info.min_operands == 1 ? unary : binary;
  switch (op) {
    case Op::sum: case Op::mean: case Op::max: return reduction;
    case Op::matmul: return matmul_cases;
    case Op::conv2d: case Op::conv_transpose2d: return conv;
    case Op::conv2d_weight_grad: return weight_grad_cases;
    case Op::max_pool2d: case Op::avg_pool2d: return pool;
    case Op::max_pool2d_grad: return pool_grad;
    case Op::global_avg_pool: return global_pool;
    case Op::batch_norm: return batch_norm_cases;
    case Op::layer_norm: return layer_norm_cases;
    case Op::dropout: return dropout_cases;
    case Op::softmax: case Op::log_softmax: return softmax_cases;
    case Op::attention: return attention_cases;
    case Op::embedding: return embedding_cases;
    case Op::embedding_grad: return embedding_grad_cases;
    case Op::reshape: case Op::flatten: case Op::transpose: case Op::broadcast_to: case Op::concat:
    case Op::slice: case Op::pad: case Op::split: return shape_cases;
    case Op::mse: case Op::huber: case Op::bce_with_logits: return regression;
    case Op::cross_entropy: case Op::nll: return classification;
    case Op::l1_penalty: case Op::l2_penalty: return penalty;
    default: return nullptr;
  }
}

std::vector<Op> differentiable_ops() {
  std::vector<Op> ops;
  for (const auto& info : all_ops())
    // scan's gradient is checked in test_scan.cpp (it has no compiled lowering yet)
    if (!autodiff::is_non_differentiable(info.op) && !autodiff::lacks_gradient_rule(info.op) && !info.has(HasBody))
      ops.push_back(info.op);
  return ops;
}

}  // namespace

TEST_CASE("every op has a gradient rule or is listed as non-differentiable or without one", "[autodiff]") {
  for (const auto& info : all_ops()) {
    INFO(info.name);
    bool rule = autodiff::gradient_rule(info.op) != nullptr;
    CHECK(rule + autodiff::is_non_differentiable(info.op) + autodiff::lacks_gradient_rule(info.op) == 1);
    // and every rule is exercised by the finite-difference test below
    if (rule && !info.has(HasBody)) CHECK(generator(info.op) != nullptr);
  }
}

int g_checked = 0;  // gradient cases run, for the summary

TEST_CASE("every differentiable op's gradient matches finite differences and compiles", "[autodiff][fd]") {
  for (Op op : differentiable_ops()) {
    std::string name(op_info(op).name);
    Rng r(std::hash<std::string>{}(name));
    auto cases = generator(op)(op, r);
    int built = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
      auto made = build(cases[i], r);
      if (!made) continue;  // a random attribute combination the shape rule refuses
      ++built;
      std::string label = fmt::format("{} case {}: {}", name, i, print(*made->g));
      SECTION(fmt::format("{} {}", name, i)) {
        auto ad = differentiate_ok(*made->g);
        check_fd(*made->g, *ad, made->feeds, made->params, label);
        check_compiled(*ad, made->feeds, label);
        ++g_checked;
      }
    }
    INFO(name);
    CHECK(built >= 2);
  }
}

// Declared last so that Catch runs it last: the numbers of the report.
TEST_CASE("gradient check summary", "[autodiff][fd]") {
  WARN(fmt::format("{} op gradient cases; largest finite-difference error {:.3g} (abs), {:.3g} (relative, at {})",
                   g_checked, worst_fd().abs, worst_fd().rel, worst_fd().where.substr(0, worst_fd().where.find('\n'))));
}
