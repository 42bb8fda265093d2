// The attention op: its shape rules and its reference, the plain formulas the fused kernels
// (compiler/lower/attention.cpp) are checked against. Scores s_ij = scale q_i . k_j (-inf where a
// causal query may not see), lse_i = log sum_j exp(s_ij), p_ij = exp(s_ij - lse_i),
// out_i = sum_j p_ij v_j. Backward: dp_ij = dy_i . v_j, ds_ij = scale p_ij (dp_ij - sum_j p_ij dp_ij
// + dlse_i), dq_i = sum_j ds_ij k_j, dk_j = sum_i ds_ij q_i, dv_j = sum_i p_ij dy_i. With dropout
// (mask m_ij: 0 or 1/(1-p), dropout's draw): out_i = sum_j p_ij m_ij v_j, so dp_ij = m_ij dy_i . v_j
// and dv_j = sum_i p_ij m_ij dy_i; lse and the rest are unchanged.

#include "ir/attention.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "ir/random.h"

namespace stag {

namespace rules {

namespace {

Dims batch_of(const Type& t) { return Dims(t.dims.begin(), t.dims.end() - 2); }
Dims with(Dims d, std::initializer_list<int64_t> tail) {
  d.insert(d.end(), tail);
  return d;
}

std::vector<DType> dtypes(const std::vector<Type>& types) {
  std::vector<DType> d;
  for (const Type& t : types) d.push_back(t.dtype);
  return d;
}

// The key and the part, when given, are i64[]; the dropout probability is in [0, 1).
std::string check_dropout(const ShapeCtx& c, const AttentionOperands& at) {
  double p = c.f("dropout");
  if (!(p >= 0 && p < 1)) return fmt::format("dropout must be in [0, 1), got {}", p);
  for (auto [index, what] : {std::pair{at.key, "key"}, std::pair{at.part, "part"}})
    if (index >= 0 && c.operands[index] != Type{DType::i64, {}})
      return fmt::format("the {} must be i64[], got {}", what, to_string(c.operands[index]));
  return {};
}

// Checks q, k and v (operands 0-2) and gives attention's result types.
std::string attention_types(const ShapeCtx& c, std::vector<Type>& results) {
  const Type &q = c.operands[0], &k = c.operands[1], &v = c.operands[2];
  if (!is_float(q.dtype)) return fmt::format("q must be f32 or f64, got {}", to_string(q));
  if (k.dtype != q.dtype || v.dtype != q.dtype)
    return fmt::format("q, k and v must have one element type, got {}, {} and {}", to_string(q), to_string(k), to_string(v));
  if (q.rank() < 2 || k.rank() != q.rank() || v.rank() != q.rank())
    return fmt::format("q, k and v must have one rank of 2 or more, got {}, {} and {}", to_string(q), to_string(k), to_string(v));
  if (batch_of(k) != batch_of(q) || batch_of(v) != batch_of(q))
    return fmt::format("q, k and v must have the same leading dimensions, got {}, {} and {}", to_string(q), to_string(k), to_string(v));
  size_t r = q.rank();
  if (k.dims[r - 1] != q.dims[r - 1]) return fmt::format("q {} and k {} differ in width", to_string(q), to_string(k));
  if (v.dims[r - 2] != k.dims[r - 2]) return fmt::format("k {} and v {} differ in length", to_string(k), to_string(v));
  if (c.b("causal") && q.dims[r - 2] != k.dims[r - 2])
    return fmt::format("causal attention needs as many queries as keys, got q {} and k {}", to_string(q), to_string(k));
  if (!std::isfinite(c.f("scale"))) return fmt::format("scale must be finite, got {}", c.f("scale"));
  results = {{q.dtype, with(batch_of(q), {q.dims[r - 2], v.dims[r - 1]})}, {q.dtype, with(batch_of(q), {q.dims[r - 2]})}};
  return {};
}

}  // namespace

std::string attention(ShapeCtx& c) {
  if (auto e = check_dropout(c, AttentionOperands(false, dtypes(c.operands))); !e.empty()) return e;
  return attention_types(c, c.results);
}

std::string attention_grad(ShapeCtx& c) {
  std::vector<Type> fwd;
  AttentionOperands at(true, dtypes(c.operands));
  if (auto e = attention_types(c, fwd); !e.empty()) return e;
  if (auto e = check_dropout(c, at); !e.empty()) return e;
  if (c.operands[3] != fwd[1]) return fmt::format("lse must be {}, got {}", to_string(fwd[1]), to_string(c.operands[3]));
  if (c.operands[4] != fwd[0]) return fmt::format("dy must be {}, got {}", to_string(fwd[0]), to_string(c.operands[4]));
  if (at.dlse >= 0 && c.operands[5] != fwd[1])
    return fmt::format("dlse must be {}, got {}", to_string(fwd[1]), to_string(c.operands[5]));
  c.results = {c.operands[0], c.operands[1], c.operands[2]};
  return {};
}

}  // namespace rules

// After the fixed operands: dlse (the gradient's, a float), then the key and the part.
AttentionOperands::AttentionOperands(bool grad, const std::vector<DType>& dtypes) {
  int next = grad ? 5 : 3, count = static_cast<int>(dtypes.size());
  if (grad && next < count && is_float(dtypes[next])) dlse = next++;
  if (next < count) key = next++;
  if (next < count) part = next;
}

AttentionOperands::AttentionOperands(const Node& n) : AttentionOperands(n.op == Op::attention_grad, [&] {
  std::vector<DType> d;
  for (const Value* v : n.operands) d.push_back(v->type.dtype);
  return d;
}()) {}

AttentionShape::AttentionShape(const Node& n) {
  const Dims &q = n.operands[0]->type.dims, &v = n.operands[2]->type.dims;
  size_t r = q.size();
  T = q[r - 2], D = q[r - 1], S = v[r - 2], Dv = v[r - 1];
  batch = *checked_numel(q) / (T * D);
  scale = n.f("scale"), dropout = n.f("dropout"), seed = n.i("seed"), causal = n.b("causal"), bf16 = n.in_bf16();
}

namespace {

using Operands = std::vector<const RefTensor*>;

// A product's factor: rounded to bf16 when the node multiplies in bf16.
double factor(const AttentionShape& s, double x) { return s.bf16 ? round_to_bf16(x) : x; }

double dot(const AttentionShape& s, const double* a, const double* b, int64_t n) {
  double sum = 0;
  for (int64_t c = 0; c < n; ++c) sum += factor(s, a[c]) * factor(s, b[c]);
  return sum;
}

// Query i's scaled scores against every key of batch b (-inf where it may not see).
std::vector<double> scores(const AttentionShape& s, const Operands& xs, int64_t b, int64_t i) {
  std::vector<double> row(static_cast<size_t>(s.S), -std::numeric_limits<double>::infinity());
  const double* q = xs[0]->data.data() + (b * s.T + i) * s.D;
  for (int64_t j = 0; j < s.S; ++j)
    if (s.sees(i, j)) row[j] = s.scale * dot(s, q, xs[1]->data.data() + (b * s.S + j) * s.D, s.D);
  return row;
}

double logsumexp(const std::vector<double>& row) {
  double mx = -std::numeric_limits<double>::infinity(), sum = 0;
  for (double x : row) mx = std::max(mx, x);
  for (double x : row) sum += std::exp(x - mx);
  return mx + std::log(sum);
}

// The dropout mask of the probabilities: m(row, j) is 0 or 1/(1-p), row counting queries over
// the batches; 1 everywhere without dropout.
struct Mask {
  const AttentionShape& s;
  int64_t key = 0, first = 0;

  Mask(const Node& n, const AttentionShape& s, const Operands& xs) : s(s) {
    AttentionOperands at(n);
    if (at.key >= 0) key = static_cast<int64_t>(xs[at.key]->data[0]);
    if (at.part >= 0) first = static_cast<int64_t>(xs[at.part]->data[0]) * s.probabilities();
  }
  double operator()(int64_t row, int64_t j) const {
    if (s.dropout == 0) return 1;
    return random_uniform01(s.seed, key, first + row * s.S + j) < s.dropout ? 0 : 1 / (1 - s.dropout);
  }
};

// acc[0, n) += f * factor(x[0, n)), f already a factor.
void axpy(const AttentionShape& s, double* acc, double f, const double* x, int64_t n) {
  for (int64_t c = 0; c < n; ++c) acc[c] += f * factor(s, x[c]);
}

}  // namespace

std::vector<RefTensor> evaluate_attention(const Node& n, const Operands& xs) {
  AttentionShape s(n);
  RefTensor out = RefTensor::filled(n.result(0)->type, 0), lse = RefTensor::filled(n.result(1)->type, 0);
  Mask mask(n, s, xs);
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t i = 0; i < s.T; ++i) {
      std::vector<double> row = scores(s, xs, b, i);
      double l = lse.data[b * s.T + i] = logsumexp(row);
      for (int64_t j = 0; j < s.S; ++j)
        axpy(s, &out.data[(b * s.T + i) * s.Dv], factor(s, std::exp(row[j] - l) * mask(b * s.T + i, j)),
             &xs[2]->data[(b * s.S + j) * s.Dv], s.Dv);
    }
  return {out, lse};
}

std::vector<RefTensor> evaluate_attention_grad(const Node& n, const Operands& xs) {
  AttentionShape s(n);
  RefTensor dq = RefTensor::filled(xs[0]->type, 0), dk = RefTensor::filled(xs[1]->type, 0), dv = RefTensor::filled(xs[2]->type, 0);
  Mask mask(n, s, xs);
  int dlse = AttentionOperands(n).dlse;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t i = 0; i < s.T; ++i) {
      int64_t row = b * s.T + i;
      std::vector<double> p = scores(s, xs, b, i), dp(p.size());
      double sum = 0;
      const double* dy = &xs[4]->data[row * s.Dv];
      for (int64_t j = 0; j < s.S; ++j) {
        p[j] = std::exp(p[j] - xs[3]->data[row]);
        dp[j] = mask(row, j) * dot(s, dy, &xs[2]->data[(b * s.S + j) * s.Dv], s.Dv);
        sum += p[j] * dp[j];
      }
      if (dlse >= 0) sum -= xs[dlse]->data[row];
      for (int64_t j = 0; j < s.S; ++j) {
        double ds = factor(s, s.scale * p[j] * (dp[j] - sum));
        axpy(s, &dq.data[row * s.D], ds, &xs[1]->data[(b * s.S + j) * s.D], s.D);
        axpy(s, &dk.data[(b * s.S + j) * s.D], ds, &xs[0]->data[row * s.D], s.D);
        axpy(s, &dv.data[(b * s.S + j) * s.Dv], factor(s, p[j] * mask(row, j)), dy, s.Dv);
      }
    }
  return {dq, dk, dv};
}

}  // namespace stag
