// MultiheadAttention (self-attention) with PyTorch's packed in_proj_weight [3E, E], in_proj_bias
// and out_proj; a causal option masks future positions with iota + compare + select.

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "frontend/lowering.h"

namespace stag::fe {

namespace {

Value* param_or_null(Instance& in, const char* name) {
  auto it = in.params.find(name);
  return it == in.params.end() ? nullptr : it->second;
}

bool make_mha(Ctx& c, Instance& in) {
  int64_t e = in.i("embed_dim"), h = in.i("num_heads");
  if (e % h) {
    c.error(in.loc, fmt::format("{}: embed_dim {} must be divisible by num_heads {}", in.path, e, h));
    return false;
  }
  c.parameter(in, "in_proj_weight", {DType::f32, {3 * e, e}}, {{"init", std::string("xavier_uniform")}});
  if (in.b("bias")) c.parameter(in, "in_proj_bias", {DType::f32, {3 * e}}, {{"init", std::string("zeros")}});
  c.parameter(in, "out_proj.weight", {DType::f32, {e, e}}, kaiming_default());
  if (in.b("bias")) c.parameter(in, "out_proj.bias", {DType::f32, {e}}, {{"init", std::string("zeros")}});
  return true;
}

// A decode step: one token [1, 1, e] against the cached keys and values of the tokens before it.
// Cache row i holds position i: row `pos` takes this token's key and value, later rows (stale or
// never written) are masked out of the softmax.
Value* decode_mha(Ctx& c, Instance& in, Value* x, const Loc& loc) {
  int64_t e = in.i("embed_dim"), heads = in.i("num_heads"), d = e / heads, n = c.context;
  std::string ctx = in.label();
  auto op = [&](Op o, std::vector<Value*> xs, NamedAttrs a = {}) { return c.op(o, xs, a, loc, ctx); };
  auto reshape = [&](Value* v, Ints shape) { return op(Op::reshape, {v}, {{"shape", shape}}); };
  auto qkv = c.ops(Op::split, {linear(c, x, param_or_null(in, "in_proj_weight"), param_or_null(in, "in_proj_bias"), loc, ctx)},
                   {{"axis", int64_t{2}}, {"sizes", Ints{e, e, e}}}, loc, ctx);
  auto rows = c.ops(Op::iota, {}, {{"axis", int64_t{0}}}, loc, ctx, {{DType::i64, {n}}});
  Value* pos = c.position(loc);
  if (qkv.size() != 3 || rows.empty() || !pos) return nullptr;
  auto heads_first = [&](Value* v) { return reshape(v, {1, heads, 1, d}); };  // t = 1: no transpose
  Value* here = reshape(op(Op::eq, {rows[0], pos}), {1, 1, n, 1});
  Type cache{DType::f32, {1, heads, n, d}};
  Value* k = op(Op::select, {here, heads_first(qkv[1]), c.cache_input(in.path + ".k", cache, loc)});
  Value* v = op(Op::select, {here, heads_first(qkv[2]), c.cache_input(in.path + ".v", cache, loc)});
  c.cache_output(in.path + ".k", k, loc);
  c.cache_output(in.path + ".v", v, loc);
  Value* scores = op(Op::matmul, {heads_first(qkv[0]), k}, {{"transpose_b", true}});
  scores = op(Op::mul, {scores, c.scalar(1.0 / std::sqrt(static_cast<double>(d)), DType::f32, loc)});
  Value* seen = reshape(op(Op::le, {rows[0], pos}), {1, 1, 1, n});
  scores = op(Op::select, {seen, scores, c.scalar(-std::numeric_limits<double>::infinity(), DType::f32, loc)});
  Value* y = op(Op::matmul, {op(Op::softmax, {scores}, {{"axis", int64_t{-1}}}), v});
  return linear(c, reshape(y, {1, 1, e}), param_or_null(in, "out_proj.weight"), param_or_null(in, "out_proj.bias"), loc, ctx);
}

// q, k, v [b, heads, t, d] -> [b, heads, t, d]: the fused attention op (scores, mask, softmax,
// dropout in training and weighted sum as row kernels).
Value* attend(Ctx& c, Instance& in, Value* q, Value* k, Value* v, const Loc& loc) {
  if (!q || !k || !v) return nullptr;
  double scale = 1.0 / std::sqrt(static_cast<double>(q->type.dims[3]));
  NamedAttrs attrs{{"scale", scale}, {"causal", in.b("causal")}};
  std::vector<Value*> operands{q, k, v};
  if (in.f("dropout") > 0 && c.training()) {
    operands.push_back(c.step_key(loc));
    attrs.emplace_back("dropout", in.f("dropout"));
    attrs.emplace_back("seed", c.next_seed++);
  }
  auto r = c.ops(Op::attention, operands, attrs, loc, in.label());
  return r.empty() ? nullptr : r[0];
}

std::vector<Val> fwd_mha(Ctx& c, Instance& in, const std::vector<Val>& args, const Loc& loc) {
  Value* x = args[0].t;
  int64_t e = in.i("embed_dim"), heads = in.i("num_heads"), d = e / heads;
  bool bf = in.b("batch_first");
  std::string ctx = in.label();
  if (x->type.rank() != 3 || x->type.dims[2] != e) {
    c.error(loc, fmt::format("{}: expects input {} with embed_dim {}, got {}", ctx,
                             bf ? "[batch, seq, embed]" : "[seq, batch, embed]", e, to_string(x->type)));
    return {};
  }
  auto op = [&](Op o, std::vector<Value*> xs, NamedAttrs a = {}) { return c.op(o, xs, a, loc, ctx); };
  auto param = [&](const char* n) -> Value* { return in.params.count(n) ? in.params[n] : nullptr; };
  if (!param("in_proj_weight") || !param("out_proj.weight")) return {};
  if (!bf) x = op(Op::transpose, {x}, {{"perm", Ints{1, 0, 2}}});
  if (!x) return {};
  if (c.opts.decode) {
    if (!in.b("causal")) {
      c.error(loc, fmt::format("{}: a decode step needs causal attention (causal=true)", ctx));
      return {};
    }
    Value* y = decode_mha(c, in, x, loc);
    if (y && !bf) y = op(Op::transpose, {y}, {{"perm", Ints{1, 0, 2}}});
    return {Val::tensor(y)};
  }
  int64_t b = x->type.dims[0], t = x->type.dims[1];
  // [b, t, 3e] -> [3, b, heads, t, d] in one transpose, then q, k and v [b, heads, t, d] as
  // contiguous pieces of it (views, not copies)
  Value* packed = op(Op::reshape, {linear(c, x, param("in_proj_weight"), param("in_proj_bias"), loc, ctx)}, {{"shape", Ints{b, t, 3, heads, d}}});
  auto qkv = c.ops(Op::split, {op(Op::transpose, {packed}, {{"perm", Ints{2, 0, 3, 1, 4}}})},
                   {{"axis", int64_t{0}}, {"sizes", Ints{1, 1, 1}}}, loc, ctx);
  if (qkv.size() != 3) return {};
  auto heads_first = [&](Value* v) { return op(Op::reshape, {v}, {{"shape", Ints{b, heads, t, d}}}); };
  Value *q = heads_first(qkv[0]), *k = heads_first(qkv[1]), *v = heads_first(qkv[2]);
  if (c.opts.prefill && in.b("causal")) {
    c.cache_output(in.path + ".k", k, loc);
    c.cache_output(in.path + ".v", v, loc);
  }
  Value* y = attend(c, in, q, k, v, loc);
  y = op(Op::reshape, {op(Op::transpose, {y}, {{"perm", Ints{0, 2, 1, 3}}})}, {{"shape", Ints{b, t, e}}});
  y = linear(c, y, param("out_proj.weight"), param("out_proj.bias"), loc, ctx);
  if (!bf) y = op(Op::transpose, {y}, {{"perm", Ints{1, 0, 2}}});
  return {Val::tensor(y)};
}

}  // namespace

void add_attention_layers(std::vector<LayerKind>& t) {
  using A = ArgKind;
  t.push_back({"MultiheadAttention",
               {{"embed_dim", A::Size},
                {"num_heads", A::Size},
                {"dropout", A::Prob, Val::real(0)},
                {"bias", A::Bool, Val::boolean(true)},
                {"batch_first", A::Bool, Val::boolean(false)},
                {"causal", A::Bool, Val::boolean(false)}},
               make_mha, fwd_mha});
}

}  // namespace stag::fe
