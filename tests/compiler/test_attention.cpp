// The attention op (ir/attention.cpp, compiler/lower/attention.cpp): its reference against the
// same formula as matmuls, a mask, a softmax and a dropout; its gradient against that graph's;
// its compiled kernels against the reference on every ISA path the host has, in f32 and bf16,
// with and without dropout; BERT's training with the fused op against the decomposed form.
//
// Tolerances, relative to 1 + the largest magnitude of the result checked (the gradients' by
// sqrt(T) more, for their sums over the queries):
// - f32: sums of n products round within about sqrt(n) ulps of f32: 1e-5 sqrt(n).
// - bf16: 1e-4. The factors read from operands are rounded alike on both sides, but a
//   probability or a score's gradient that the kernel computes in f32 may round to the other
//   bf16 neighbour than the reference's f64 value does, which moves its product by 2^-8 of it
//   (measured: 1.4e-5 forward, 1.5e-4 for the gradients at GPT's sizes). bf16 against f32
//   differs by 3e-3, so a kernel that multiplied in f32 fails it (checked below).

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "compiler/autodiff/autodiff.h"
#include "compiler/jit/jit_model.h"
#include "compiler/passes/splice.h"
#include "ir/analysis.h"
#include "ir/attention.h"
#include "ir/builder.h"
#include "ir/random.h"
#include "ir/reference.h"
#include "runtime/thread_pool.h"
#include "tests/compiler/catalog.h"
#include "tests/compiler/isa_paths.h"
#include "tests/util.h"

using namespace stag;

namespace {

constexpr double kBf16Tolerance = 1e-4;

struct Sizes {
  Dims batch;
  int64_t T, S, D, Dv;
  bool causal;
};

const std::vector<Sizes> kSizes = {
    {{2, 3}, 5, 7, 3, 4, false},   // odd sizes, more keys than queries
    {{2}, 9, 9, 5, 6, true},
    {{3}, 1, 1, 1, 1, true},
    {{2}, 17, 33, 16, 16, false},  // a vector and a tail
    {{2, 4}, 64, 64, 32, 32, true},  // GPT's heads
    {{2}, 300, 300, 24, 40, true},   // a causal head over several row tiles and depth slices
};

Dims rows(const Sizes& z, int64_t n, int64_t width) {
  Dims d = z.batch;
  d.push_back(n), d.push_back(width);
  return d;
}
Type f32(Dims d) { return {DType::f32, std::move(d)}; }
double scale_of(const Sizes& z) { return 1 / std::sqrt(static_cast<double>(z.D)); }
// Attention dropout: its probability, seed, and the key and part operands (null: absent).
struct Drop {
  double p = 0;
  Value *key = nullptr, *part = nullptr;
  int64_t seed = 11;
  std::vector<Value*> operands() const {
    std::vector<Value*> ops;
    if (key) ops.push_back(key);
    if (part) ops.push_back(part);
    return ops;
  }
};

NamedAttrs attention_attrs(const Sizes& z, bool bf16, const Drop& drop = {}) {
  NamedAttrs a{{"scale", scale_of(z)}, {"causal", z.causal}, {"precision", std::string(bf16 ? "bf16" : "f32")}};
  if (drop.p > 0) a.emplace_back("dropout", drop.p), a.emplace_back("seed", drop.seed);
  return a;
}
std::vector<Value*> with(std::vector<Value*> ops, const Drop& drop) {
  for (Value* v : drop.operands()) ops.push_back(v);
  return ops;
}
NamedAttrs product(bool bf16, bool transpose_b = false) {
  return {{"transpose_b", transpose_b}, {"precision", std::string(bf16 ? "bf16" : "f32")}};
}

struct Qkv {
  Value *q, *k, *v;
};
Qkv qkv_inputs(Builder& b, const Sizes& z, bool trainable) {
  auto make = [&](const char* name, Dims d) { return trainable ? b.parameter(name, f32(d)) : b.input(name, f32(d)); };
  return {make("q", rows(z, z.T, z.D)), make("k", rows(z, z.S, z.D)), make("v", rows(z, z.S, z.Dv))};
}

// y and lse by the fused op.
std::pair<Value*, Value*> fused(Builder& b, const Sizes& z, const Qkv& x, bool bf16, const Drop& drop = {}) {
  auto r = b.create(Op::attention, with({x.q, x.k, x.v}, drop), attention_attrs(z, bf16, drop));
  return {r[0], r[1]};
}

// y and lse by matmuls, a mask, a softmax, a dropout and a logsumexp, as the frontend wrote
// attention.
std::pair<Value*, Value*> decomposed(Builder& b, const Sizes& z, const Qkv& x, bool bf16, const Drop& drop = {}) {
  Value* s = b.mul({b.matmul({x.q, x.k}, product(bf16, true)), b.scalar(scale_of(z))});
  if (z.causal) {
    Type grid{DType::i64, {z.T, z.S}};
    Value* keep = b.ge({b.create(Op::iota, {}, {{"axis", int64_t{0}}}, {grid})[0], b.create(Op::iota, {}, {{"axis", int64_t{1}}}, {grid})[0]});
    s = b.select({keep, s, b.scalar(-std::numeric_limits<double>::infinity())});
  }
  Value* p = b.softmax({s});
  if (drop.p > 0) p = b.dropout(with({p}, drop), {{"p", drop.p}, {"seed", drop.seed}});
  Value* y = b.matmul({p, x.v}, product(bf16));
  NamedAttrs last{{"axes", Ints{static_cast<int64_t>(z.batch.size()) + 1}}, {"keepdims", true}};
  Value* m = b.max({s}, last);
  Value* lse = b.add({b.log({b.sum({b.exp({b.sub({s, m})})}, last)}), m});
  Dims d = z.batch;
  d.push_back(z.T);
  return {y, b.reshape({lse}, {{"shape", Ints(d)}})};
}

using Form = std::pair<Value*, Value*> (*)(Builder&, const Sizes&, const Qkv&, bool, const Drop&);

// Standard normals (stream `seed`) for every float input and parameter of g, rounded to f32;
// integers below the input's bound (the dropout key and part: 10) for the others.
std::map<std::string, RefTensor> normal_feeds(const Graph& g, int64_t seed) {
  std::map<std::string, RefTensor> feeds;
  int64_t stream = 0;
  for (const auto& n : g.nodes) {
    if (n->op != Op::input && n->op != Op::parameter) continue;
    const Value* v = n->result();
    std::vector<double> data(static_cast<size_t>(*checked_numel(v->type.dims)));
    auto bound = static_cast<double>(index_bound(g, v, 10));
    for (size_t e = 0; e < data.size(); ++e)
      data[e] = is_float(v->type.dtype) ? static_cast<float>(random_standard_normal(seed, stream, static_cast<int64_t>(e)))
                                        : std::floor(random_uniform01(seed, stream, static_cast<int64_t>(e)) * bound);
    feeds[v->name] = RefTensor(v->type, data);
    ++stream;
  }
  return feeds;
}

// The dropout's key and part as inputs `key` and `part`, when it drops.
Drop drop_inputs(Builder& b, double p, bool with_part) {
  if (p == 0) return {};
  return {p, b.input("key", {DType::i64, {}}), with_part ? b.input("part", {DType::i64, {}}) : nullptr, 11};
}

// The forward graph (q, k, v inputs; outputs y and lse) in either form.
std::unique_ptr<Graph> forward_graph(const Sizes& z, Form form, bool bf16, double dropout = 0) {
  auto g = std::make_unique<Graph>("attention");
  Builder b(*g);
  Qkv x = qkv_inputs(b, z, false);
  auto [y, lse] = form(b, z, x, bf16, drop_inputs(b, dropout, true));
  b.output("y", y);
  b.output("lse", lse);
  return g;
}

// The largest |a - b| over the largest |b| of two results.
double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double err = 0, big = 0;
  for (size_t i = 0; i < a.size(); ++i) err = std::max(err, std::fabs(a[i] - b[i])), big = std::max(big, std::fabs(b[i]));
  return err / (1 + big);
}

// g compiled and run at `threads` on `feeds`: every output by name.
std::map<std::string, std::vector<double>> run_compiled(const Graph& g, const std::map<std::string, RefTensor>& feeds, int threads) {
  CompiledModel compiled = compile_jit(g);
  const auto& spec = compiled.model->manifest().function("forward");
  std::vector<rt::Tensor> inputs;
  for (const auto& in : spec.inputs) {
    rt::Tensor t(in.dtype, in.shape);
    const auto& data = feeds.at(in.name).data;
    for (size_t e = 0; e < data.size(); ++e)
      if (in.dtype == rt::DType::i64) t.values<int64_t>()[e] = static_cast<int64_t>(data[e]);
      else t.values<float>()[e] = static_cast<float>(data[e]);
    inputs.push_back(std::move(t));
  }
  std::vector<const rt::Tensor*> ptrs;
  for (const auto& t : inputs) ptrs.push_back(&t);
  stag_set_num_threads(threads);
  auto outs = compiled.model->run("forward", ptrs);
  stag_set_num_threads(0);
  std::map<std::string, std::vector<double>> got;
  for (size_t i = 0; i < outs.size(); ++i) got[spec.outputs[i].name] = test::to_doubles(outs[i]);
  return got;
}

// Each output of g compiled against the reference: its relative error by name.
std::map<std::string, double> compiled_errors(const Graph& g, const std::map<std::string, RefTensor>& feeds, int threads) {
  auto got = run_compiled(g, feeds, threads);
  RefResult want = interpret(g, feeds);
  std::map<std::string, double> errors;
  for (const auto& [name, t] : want.outputs) errors[name] = relative_error(got.at(name), t.data);
  return errors;
}

// attention and attention_grad: inputs q, k, v, dy, dlse (and key, part when dropping out);
// outputs y, lse, dq, dk, dv.
std::unique_ptr<Graph> both_graph(const Sizes& z, bool bf16, double dropout = 0) {
  auto g = std::make_unique<Graph>("attention_both");
  Builder b(*g);
  Qkv x = qkv_inputs(b, z, false);
  Drop drop = drop_inputs(b, dropout, true);
  auto [y, lse] = fused(b, z, x, bf16, drop);
  Value* dy = b.input("dy", y->type);
  Value* dlse = b.input("dlse", lse->type);
  auto r = b.create(Op::attention_grad, with({x.q, x.k, x.v, lse, dy, dlse}, drop), attention_attrs(z, bf16, drop));
  b.output("y", y);
  b.output("lse", lse);
  b.output("dq", r[0]);
  b.output("dk", r[1]);
  b.output("dv", r[2]);
  return g;
}

std::string what(const Sizes& z, bool bf16, double dropout = 0) {
  return fmt::format("batch {} T {} S {} D {} Dv {}{}{}{} on {}", dims_to_string(z.batch), z.T, z.S, z.D, z.Dv,
                     z.causal ? " causal" : "", bf16 ? " bf16" : "", dropout > 0 ? fmt::format(" dropout {}", dropout) : "",
                     isa_name(host_isa()));
}

constexpr double kDropouts[] = {0, 0.3};

// Every attention node of g replaced by the decomposed form, with its dropout's seed and key.
void decompose_attention(Graph& g) {
  std::vector<Node*> nodes;
  for (const auto& n : g.nodes)
    if (n->op == Op::attention) nodes.push_back(n.get());
  for (Node* n : nodes) {
    AttentionShape a(*n);
    AttentionOperands at(*n);
    const Dims& q = n->operands[0]->type.dims;
    Sizes z{Dims(q.begin(), q.end() - 2), a.T, a.S, a.D, a.Dv, a.causal};
    REQUIRE(a.scale == scale_of(z));
    size_t from = g.nodes.size();
    Builder b(g);
    Drop drop{a.dropout, at.key >= 0 ? n->operands[at.key] : nullptr, at.part >= 0 ? n->operands[at.part] : nullptr, a.seed};
    auto [y, lse] = decomposed(b, z, {n->operands[0], n->operands[1], n->operands[2]}, a.bf16, drop);
    splice(g, *n, from, std::vector<Value*>{y, lse});
  }
}

// The loss and every gradient of a differentiated graph, by output name.
std::map<std::string, std::vector<double>> reference_outputs(const Graph& g, const std::map<std::string, RefTensor>& feeds) {
  std::map<std::string, std::vector<double>> out;
  for (const auto& [name, t] : interpret(g, feeds).outputs) out[name] = t.data;
  return out;
}

}  // namespace

TEST_CASE("attention's reference is the decomposed formula's, in f32 and bf16, with dropout", "[attention]") {
  for (const Sizes& z : kSizes)
    for (bool bf16 : {false, true})
      for (double dropout : kDropouts) {
      auto a = forward_graph(z, fused, bf16, dropout), b = forward_graph(z, decomposed, bf16, dropout);
      auto feeds = normal_feeds(*a, 7);
      RefResult ra = interpret(*a, feeds), rb = interpret(*b, feeds);
      INFO(what(z, bf16, dropout));
      CHECK(relative_error(ra.outputs.at("y").data, rb.outputs.at("y").data) < 1e-12);
      CHECK(relative_error(ra.outputs.at("lse").data, rb.outputs.at("lse").data) < 1e-12);
    }
}

// loss = sum(y wy) + sum(lse wl): both results carry gradients.
TEST_CASE("attention's gradient is the decomposed formula's, in f32 and bf16, with dropout", "[attention][autodiff]") {
  for (const Sizes& z : kSizes)
    for (bool bf16 : {false, true})
      for (double dropout : kDropouts) {
      std::map<std::string, RefTensor> grads[2];
      for (int form = 0; form < 2; ++form) {
        Graph g("attention_loss");
        Builder b(g);
        Qkv x = qkv_inputs(b, z, true);
        auto [y, lse] = (form ? decomposed : fused)(b, z, x, bf16, drop_inputs(b, dropout, true));
        Value* wy = b.input("wy", y->type);
        Value* wl = b.input("wl", lse->type);
        b.output("loss", b.add({b.sum({b.mul({y, wy})}), b.sum({b.mul({lse, wl})})}));
        Diagnostics diags;
        auto ad = differentiate(g, "loss", diags);
        INFO(diags.render());
        REQUIRE(ad);
        RefResult r = interpret(*ad, normal_feeds(g, 13));
        for (const char* p : {"q", "k", "v"}) grads[form][p] = r.outputs.at(grad_output_name(p));
      }
      INFO(what(z, bf16, dropout));
      // bf16: the score gradient is rounded from f64 values that differ in the last bits
      for (const char* p : {"q", "k", "v"}) CHECK(relative_error(grads[0][p].data, grads[1][p].data) < (bf16 ? 1e-2 : 1e-12));
    }
}

TEST_CASE("attention and its gradient compile to the reference's values on every ISA path with and without dropout", "[attention][bf16]") {
  int turn = 0;
  for (Isa isa : test::host_paths()) {
    test::ForcedIsa forced(isa);
    // the host's own path on every size; the others on the odd sizes and GPT's
    std::vector<Sizes> sizes = kSizes;
    if (isa != detected_isa()) sizes = {kSizes.front(), kSizes[4], kSizes.back()};
    for (const Sizes& z : sizes)
      for (bool bf16 : {false, true})
        for (double dropout : kDropouts) {
        int threads = 1 + turn++ % 2;
        double n = static_cast<double>(std::max({z.S, z.D, z.Dv}));
        double tol = bf16 ? kBf16Tolerance : 1e-5 * std::sqrt(n);
        INFO(what(z, bf16, dropout) << ", threads " << threads);
        auto g = both_graph(z, bf16, dropout);
        for (const auto& [name, err] : compiled_errors(*g, normal_feeds(*g, 5), threads)) {
          INFO(name);
          CHECK(err <= (name[0] == 'd' ? tol * std::sqrt(static_cast<double>(z.T)) : tol));
        }
      }
  }
}

// The bf16 tolerance is tight enough to catch a kernel that multiplied in f32.
TEST_CASE("bf16 attention differs from f32 attention by more than the bf16 tolerance", "[attention][bf16]") {
  const Sizes& z = kSizes[4];
  auto f = forward_graph(z, fused, false), h = forward_graph(z, fused, true);
  auto feeds = normal_feeds(*f, 5);
  CHECK(relative_error(interpret(*h, feeds).outputs.at("y").data, interpret(*f, feeds).outputs.at("y").data) > 10 * kBf16Tolerance);
}

TEST_CASE("attention's shape rule names the operands that disagree", "[attention]") {
  Graph g("bad");
  Builder b(g);
  Value* q = b.input("q", f32({2, 4, 8}));
  Value* k = b.input("k", f32({2, 5, 8}));
  Value* v = b.input("v", f32({2, 5, 3}));
  Value* w = b.input("w", f32({2, 5, 7}));
  auto err = [&](std::vector<Value*> xs, bool causal) { return b.try_create(Op::attention, xs, {{"scale", 0.5}, {"causal", causal}}).error; };
  CHECK(err({q, k, v}, false).empty());
  CHECK(err({q, k, v}, true) == "attention: causal attention needs as many queries as keys, got q f32[2,4,8] and k f32[2,5,8]");
  CHECK(err({q, w, v}, false) == "attention: q f32[2,4,8] and k f32[2,5,7] differ in width");
  CHECK(err({q, k, q}, false) == "attention: k f32[2,5,8] and v f32[2,4,8] differ in length");
}

TEST_CASE("attention's shape rule checks the dropout probability and the key", "[attention]") {
  Graph g("bad");
  Builder b(g);
  Value* q = b.input("q", f32({2, 4, 8}));
  Value* key = b.input("key", {DType::i64, {}});
  Value* wide = b.input("wide", {DType::i64, {2}});
  auto err = [&](std::vector<Value*> xs, double p) { return b.try_create(Op::attention, xs, {{"scale", 0.5}, {"dropout", p}}).error; };
  CHECK(err({q, q, q, key}, 0.5).empty());
  CHECK(err({q, q, q, key, key}, 0.5).empty());
  CHECK(err({q, q, q, key}, 1) == "attention: dropout must be in [0, 1), got 1");
  CHECK(err({q, q, q, wide}, 0.5) == "attention: the key must be i64[], got i64[2]");
  CHECK(err({q, q, q, key, q}, 0.5) == "attention: the part must be i64[], got f32[2,4,8]");
}

// The mask is drawn: dropping out changes the output, and the key and the part change the mask.
TEST_CASE("attention dropout's mask depends on the key and the part", "[attention]") {
  const Sizes& z = kSizes[1];
  auto dropped = forward_graph(z, fused, false, 0.3), kept = forward_graph(z, fused, false);
  auto feeds = normal_feeds(*dropped, 7);
  auto y = [&](const Graph& g, const std::map<std::string, RefTensor>& f) { return interpret(g, f).outputs.at("y").data; };
  CHECK(relative_error(y(*dropped, feeds), y(*kept, feeds)) > 1e-3);
  for (const char* input : {"key", "part"}) {
    auto other = feeds;
    other.at(input).data[0] += 1;
    INFO(input);
    CHECK(relative_error(y(*dropped, other), y(*dropped, feeds)) > 1e-3);
  }
}

TEST_CASE("attention's second derivative is an error naming the op", "[attention][autodiff]") {
  const Sizes& z = kSizes[1];
  Graph g("second");
  Builder b(g);
  Qkv x = qkv_inputs(b, z, true);
  Dims t = z.batch;
  t.push_back(z.T);
  Value* lse = fused(b, z, x, false).second;
  auto r = b.create(Op::attention_grad, {x.q, x.k, x.v, lse, b.input("dy", f32(rows(z, z.T, z.Dv)))}, attention_attrs(z, false));
  b.output("loss", b.sum({r[0]}));
  Diagnostics diags;
  CHECK(!differentiate(g, "loss", diags));
  CHECK_THAT(diags.render(), Catch::Contains("no gradient rule for op 'attention_grad'"));
}

TEST_CASE("f64 attention is the reference interpreter's: compiling it is an error naming the node", "[attention]") {
  Graph g("f64");
  Builder b(g);
  Type t{DType::f64, {2, 3, 4}};
  Value* q = b.input("q", t);
  b.output("y", b.create(Op::attention, {q, q, q}, {{"scale", 0.5}})[0]);
  CHECK_THROWS_WITH(compile_jit(g), Catch::Contains("attention: no compiled lowering for f64[2,3,4]"));
}

// BERT's attention drops out its probabilities (dropout=0.1) inside the fused op: its training
// step's loss and gradients equal those of the decomposed form with the dropout op's mask, in the
// reference interpreter (f64) and compiled.
TEST_CASE("catalog bert: the fused attention with dropout trains as the decomposed form", "[attention][models]") {
  LoadOptions options;
  options.batch = 2;
  options.training = true;
  auto fused_graph = test::load_model_file(std::filesystem::path(STAG_TESTS_DIR) / "../models/bert.stag", options);
  auto decomposed_graph = fused_graph->clone();
  decompose_attention(*decomposed_graph);
  int dropping = 0;
  for (const auto& n : fused_graph->nodes) dropping += n->op == Op::attention && n->f("dropout") > 0;
  CHECK(dropping == 2);
  for (const auto& n : decomposed_graph->nodes) CHECK(n->op != Op::attention);
  Diagnostics diags;
  auto a = differentiate(*fused_graph, "loss", diags), b = differentiate(*decomposed_graph, "loss", diags);
  INFO(diags.render());
  REQUIRE(a);
  REQUIRE(b);
  auto feeds = normal_feeds(*a, 3);
  auto want = reference_outputs(*b, feeds), got = reference_outputs(*a, feeds);
  auto compiled_a = run_compiled(*a, feeds, 2), compiled_b = run_compiled(*b, feeds, 2);
  CHECK(want.size() > 30);
  for (const auto& [name, w] : want) {
    INFO(name);
    CHECK(relative_error(got.at(name), w) < 1e-12);
    CHECK(relative_error(compiled_a.at(name), compiled_b.at(name)) < 1e-4);
  }
}
