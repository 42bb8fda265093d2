// Data parallelism's dropout and noise: a process's share of the batch draws the masks (and a
// GAN's noise) one process draws for those rows of the global batch. The ops (dropout's and the
// random draws' part) in the reference interpreter and compiled; then every catalog model with
// dropout, and a GAN's two steps, their split gradients per rank against the single-process
// gradients, in the reference interpreter.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include <unistd.h>

#include "compiler/autodiff/autodiff.h"
#include "compiler/jit/jit_model.h"
#include "compiler/train/gan.h"
#include "compiler/train/train_step.h"
#include "frontend/load.h"
#include "tests/compiler/catalog.h"
#include "ir/analysis.h"
#include "ir/builder.h"
#include "ir/random.h"
#include "ir/reference.h"
#include "tests/util.h"

using namespace stag;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kRows = 3, kCols = 37, kParts = 3;  // 111 elements a part: off the vector width

// dropout(x, step[, part]) of a [rows, kCols] tensor of 2s: the output is the mask times 2/(1-p).
std::unique_ptr<Graph> dropout_graph(int64_t rows, bool with_part) {
  auto g = std::make_unique<Graph>("drop");
  Builder b(*g);
  std::vector<Value*> ops{b.constant({DType::f32, {rows, kCols}}, {2.0}), b.input("step", {DType::i64, {}})};
  if (with_part) ops.push_back(b.input("part", {DType::i64, {}}));
  b.output("y", b.dropout(ops, {{"p", 0.5}, {"seed", int64_t{9}}}));
  return g;
}

// random_normal(step[, part]) of f32[rows, kCols], scaled by 2 as dropout_graph's output is.
std::unique_ptr<Graph> random_graph(int64_t rows, bool with_part) {
  auto g = std::make_unique<Graph>("draw");
  Builder b(*g);
  std::vector<Value*> ops{b.input("step", {DType::i64, {}})};
  if (with_part) ops.push_back(b.input("part", {DType::i64, {}}));
  b.output("y", b.create(Op::random_normal, ops, {{"seed", int64_t{9}}}, {{DType::f32, {rows, kCols}}})[0]);
  return g;
}

std::vector<double> reference(const Graph& g, int64_t step, int64_t part) {
  std::map<std::string, RefTensor> feeds{{"step", RefTensor({DType::i64, {}}, {static_cast<double>(step)})}};
  if (g.has_name("part")) feeds["part"] = RefTensor({DType::i64, {}}, {static_cast<double>(part)});
  return interpret(g, feeds).outputs.at("y").data;
}

std::vector<double> compiled(const Graph& g, int64_t step, int64_t part) {
  CompiledModel c = compile_jit(g);
  const auto& spec = c.model->manifest().function("forward");
  std::vector<rt::Tensor> args;
  for (const auto& in : spec.inputs) args.push_back(rt::Tensor::from<int64_t>({}, {in.name == "part" ? part : step}));
  std::vector<const rt::Tensor*> ptrs;
  for (const auto& t : args) ptrs.push_back(&t);
  return test::to_doubles(c.model->run("forward", ptrs)[0]);
}

using Runner = std::function<std::vector<double>(const Graph&, int64_t, int64_t)>;

using GraphMaker = std::function<std::unique_ptr<Graph>(int64_t rows, bool with_part)>;

// Each part's output is its rows of the whole tensor's, and the parts' masks differ.
void check_parts(const Runner& run, const GraphMaker& make = dropout_graph) {
  auto whole = run(*make(kRows * kParts, false), 5, 0);
  auto part_graph = make(kRows, true);
  const size_t n = static_cast<size_t>(kRows * kCols);
  for (int64_t r = 0; r < kParts; ++r) {
    INFO("part " << r);
    auto got = run(*part_graph, 5, r);
    CHECK(got == std::vector<double>(whole.begin() + static_cast<long>(r * n), whole.begin() + static_cast<long>((r + 1) * n)));
  }
  CHECK(run(*part_graph, 5, 0) != run(*part_graph, 5, 1));
  CHECK(run(*part_graph, 5, 1) != run(*part_graph, 6, 1));  // the step still keys the mask
}

RefTensor ref_of(const Type& t, std::vector<double> v) { return RefTensor(t, std::move(v)); }

// Values for a model's inputs at the global batch: normals, or ids below the input's bound.
RefTensor global_input(const Graph& g, const Value* v, int64_t stream) {
  std::vector<double> d(static_cast<size_t>(*checked_numel(v->type.dims)));
  double bound = static_cast<double>(index_bound(g, v, 10));
  for (size_t i = 0; i < d.size(); ++i) {
    auto at = static_cast<int64_t>(i);
    d[i] = is_float(v->type.dtype) ? random_standard_normal(7, stream, at) : std::floor(random_uniform01(7, stream, at) * bound);
  }
  return ref_of(v->type, std::move(d));
}

// Rows [r*n/parts, (r+1)*n/parts) of a batch-first tensor, typed as `local`.
RefTensor rows(const RefTensor& t, const Type& local, int64_t r) {
  auto n = static_cast<long>(*checked_numel(local.dims));
  return ref_of(local, std::vector<double>(t.data.begin() + r * n, t.data.begin() + (r + 1) * n));
}

std::unique_ptr<Graph> load(const fs::path& path, int64_t batch) {
  LoadOptions options;
  options.batch = batch;
  options.training = true;
  return test::load_model_file(path, options);
}

bool has_dropout(const Graph& g) {
  for (const auto& n : g.nodes)
    if ((n->op == Op::dropout && n->b("training")) || (n->op == Op::attention && n->f("dropout") > 0)) return true;
  return false;
}

// The parameters (small normals from their names) and the data inputs at the global batch.
std::map<std::string, RefTensor> global_feeds(const Graph& g) {
  std::map<std::string, RefTensor> feeds;
  int64_t stream = 0;
  for (const auto& n : g.nodes) {
    const Value* v = n->result();
    if (n->op == Op::parameter) {
      RefTensor t = global_input(g, v, static_cast<int64_t>(std::hash<std::string>{}(v->name) & 0xffff));
      for (double& x : t.data) x *= 0.1;
      feeds[v->name] = t;
    } else if (n->op == Op::input && v->name != "step") {
      feeds[v->name] = global_input(g, v, ++stream);
    }
  }
  feeds["step"] = ref_of({DType::i64, {}}, {5});
  return feeds;
}

// Rank r's feeds for a split gradients graph: the parameters, its rows, the step and `rank`.
std::map<std::string, RefTensor> rank_feeds(const Graph& grads, const std::map<std::string, RefTensor>& global, int64_t r,
                                            int64_t rank) {
  std::map<std::string, RefTensor> feeds;
  for (const auto& [name, t] : global) {
    const Value* v = grads.find(name);
    bool data = v && v->def->op == Op::input && name != "step";
    feeds[name] = data ? rows(t, v->type, r) : t;
  }
  feeds[kRankInput] = ref_of({DType::i64, {}}, {static_cast<double>(rank)});
  return feeds;
}

// The worst difference between want's outputs (those `keep` takes) and the mean of two ranks'
// results, each relative to the output's largest magnitude.
double worst_of_mean(const RefResult& want, const RefResult (&got)[2], const std::function<bool(const std::string&)>& keep) {
  double worst = 0;
  for (const auto& [name, w] : want.outputs) {
    if (!keep(name)) continue;
    const auto& a = got[0].outputs.at(name).data;
    const auto& b = got[1].outputs.at(name).data;
    double scale = 0;
    for (double v : w.data) scale = std::max(scale, std::fabs(v));
    for (size_t i = 0; i < w.data.size(); ++i)
      worst = std::max(worst, std::fabs((a[i] + b[i]) / 2 - w.data[i]) / (scale + 1e-30));
  }
  return worst;
}

// The loss and every gradient of two ranks' split gradients, averaged, equal one process's at
// batch 2 (reference interpreter, f64). `ranks_given` says which rank each process claims.
double worst_difference(const fs::path& path, std::array<int64_t, 2> ranks_given = {0, 1}) {
  auto whole = load(path, 2);
  auto part = load(path, 1);
  Diagnostics diags;
  auto single = differentiate(*whole, "loss", diags);
  auto grads = build_split_train_step(*part, optimizer_from_attrs(*part), diags).first;
  INFO(diags.render());
  REQUIRE(single);
  REQUIRE(grads);
  // Every dropout of the split step (the forward's and the gradient's, attention's too) takes the rank.
  for (const auto& n : grads->nodes) {
    if (n->op == Op::dropout && n->b("training")) CHECK((n->operands.size() == 3 && n->operands[2]->name == kRankInput));
    if ((n->op == Op::attention || n->op == Op::attention_grad) && n->f("dropout") > 0)
      CHECK(n->operands.back()->name == kRankInput);
  }
  auto feeds = global_feeds(*whole);
  RefResult want = interpret(*single, feeds);
  RefResult got[2] = {interpret(*grads, rank_feeds(*grads, feeds, 0, ranks_given[0])),
                      interpret(*grads, rank_feeds(*grads, feeds, 1, ranks_given[1]))};
  return worst_of_mean(want, got, [](const std::string& name) { return name == "loss" || name.starts_with("grad."); });
}

}  // namespace

TEST_CASE("dropout's part draws its rows of the whole tensor's mask, in the reference and compiled", "[dropout][dp]") {
  SECTION("reference") { check_parts(reference); }
  SECTION("compiled") { check_parts(compiled); }
}

TEST_CASE("a random draw's part draws its rows of the whole tensor's numbers, in the reference and compiled", "[random][dp]") {
  SECTION("reference") { check_parts(reference, random_graph); }
  SECTION("compiled") { check_parts(compiled, random_graph); }
}

// Batch norm's statistics are per process (as DDP's), so a model with both (vgg) is left out.
TEST_CASE("every catalog model with dropout: two ranks' averaged gradients are one process's", "[dropout][dp][models]") {
  int models = 0;
  for (const auto& e : fs::directory_iterator(fs::path(STAG_TESTS_DIR) / "../models")) {
    auto g = load(e.path(), 1);
    bool batch_norm = std::any_of(g->nodes.begin(), g->nodes.end(), [](const auto& n) { return n->op == Op::batch_norm; });
    if (!has_dropout(*g) || batch_norm) continue;
    INFO(e.path());
    double worst = worst_difference(e.path());
    INFO("worst relative difference " << worst);
    CHECK(worst < 1e-12);
    ++models;
  }
  CHECK(models == 7);  // mlp, alexnet, gpt, bert, gru_lm, lstm_lm, vit_tiny
  // Both ranks drawing rank 0's masks: the test tells.
  CHECK(worst_difference(fs::path(STAG_TESTS_DIR) / "../models/mlp.stag", {0, 0}) > 1e-6);
}

// A loop's dropout draws per step (its key is the step's) and per rank (its part, passed into
// the loop's body and its gradient's as an invariant).
TEST_CASE("dropout in a loop: two ranks' averaged gradients are one process's", "[dropout][dp][loops]") {
  fs::path path = fs::temp_directory_path() / fmt::format("stag_dp_loop_{}.stag", ::getpid());
  {
    std::ofstream f(path);
    f << R"(
model m {
  batch 2
  input x: f32[B, 4, 3]
  param w: f32[3] = normal(1, 0.2)
  forward {
    h = constant(f32[B, 3], value=[0])
    for xt in x along 1 {
      h = tanh(h * w + dropout(xt, p=0.3))
      stack hs = h
    }
    loss = mean(square(hs)) + mean(h)
  }
}
)";
  }
  double worst = worst_difference(path), same_masks = worst_difference(path, {0, 0});
  fs::remove(path);
  INFO("worst relative difference " << worst);
  CHECK(worst < 1e-12);
  CHECK(same_masks > 1e-6);
}

namespace {

std::unique_ptr<Graph> gan_member(const std::string& name, int64_t batch) {
  LoadOptions options;
  options.batch = batch;
  options.training = true;
  options.model = name;
  return test::load_model_file(fmt::format("{}/cli/gan_tanh.stag", STAG_TESTS_DIR), options);
}

// The GAN of tests/cli/gan_tanh.stag (no batch norm) with its steps split, at `batch`.
GanGraphs split_gan(int64_t batch) {
  auto gen = gan_member("gen", batch), disc = gan_member("disc", batch);
  GanOptions o;
  o.generator_optimizer = optimizer_from_attrs(*gen);
  o.discriminator_optimizer = optimizer_from_attrs(*disc);
  o.split = true;
  Diagnostics diags;
  auto graphs = build_gan(*gen, *disc, o, {}, diags);
  INFO(diags.render());
  REQUIRE(graphs);
  REQUIRE(graphs->d_update);
  REQUIRE(graphs->g_update);
  return std::move(*graphs);
}

// A GAN step's feeds: the parameters (small normals), the real images `x` when the step takes them
// (the given rows of a batch of `rows` drawn from stream 1), the key and the rank.
std::map<std::string, RefTensor> gan_feeds(const Graph& step, int64_t first_row, int64_t rank) {
  std::map<std::string, RefTensor> feeds;
  for (const auto& n : step.nodes) {
    const Value* v = n->result();
    if (n->op == Op::parameter) {
      RefTensor t = global_input(step, v, static_cast<int64_t>(std::hash<std::string>{}(v->name) & 0xffff));
      for (double& x : t.data) x *= 0.1;
      feeds[v->name] = t;
    } else if (v->name == "x") {
      std::vector<double> d(static_cast<size_t>(*checked_numel(v->type.dims)));
      int64_t offset = first_row * static_cast<int64_t>(d.size()) / v->type.dims[0];
      for (size_t i = 0; i < d.size(); ++i) d[i] = random_uniform01(7, 1, offset + static_cast<int64_t>(i));
      feeds["x"] = ref_of(v->type, std::move(d));
    }
  }
  feeds["key"] = ref_of({DType::i64, {}}, {5});
  feeds[kRankInput] = ref_of({DType::i64, {}}, {static_cast<double>(rank)});
  return feeds;
}

// Every output of a split GAN step (its loss, D's scalars, its gradients): two ranks' at batch 1,
// averaged, against one process's at batch 2 (rank 0: its counters start where one process's
// do). `ranks_given` says which rank each process claims.
double gan_worst(const Graph& whole, const Graph& part, std::array<int64_t, 2> ranks_given = {0, 1}) {
  RefResult want = interpret(whole, gan_feeds(whole, 0, 0));
  RefResult got[2] = {interpret(part, gan_feeds(part, 0, ranks_given[0])), interpret(part, gan_feeds(part, 1, ranks_given[1]))};
  return worst_of_mean(want, got, [](const std::string&) { return true; });
}

}  // namespace

// Each rank draws its rows of the global batch's noise: its random_normal takes dp.rank as part.
TEST_CASE("a GAN's split steps: two ranks' averaged gradients are one process's", "[gan][dp]") {
  GanGraphs whole = split_gan(2), part = split_gan(1);
  for (const Graph* step : {part.d_step.get(), part.g_step.get()}) {
    INFO(step->name);
    auto noise = std::find_if(step->nodes.begin(), step->nodes.end(), [](const auto& n) { return n->op == Op::random_normal; });
    REQUIRE(noise != step->nodes.end());
    CHECK(((*noise)->operands.size() == 2 && (*noise)->operands[1]->name == kRankInput));
  }
  double d = gan_worst(*whole.d_step, *part.d_step), g = gan_worst(*whole.g_step, *part.g_step);
  INFO("worst relative difference: discriminator " << d << ", generator " << g);
  CHECK(d < 1e-12);
  CHECK(g < 1e-12);
  // Both ranks drawing rank 0's noise: the test tells.
  CHECK(gan_worst(*whole.d_step, *part.d_step, {0, 0}) > 1e-6);
  CHECK(gan_worst(*whole.g_step, *part.g_step, {0, 0}) > 1e-6);
  // Each update takes its step's averaged gradients and loss by name.
  for (const auto& [grads, update] : {std::pair{part.d_step.get(), part.d_update.get()}, std::pair{part.g_step.get(), part.g_update.get()}})
    for (const auto& n : update->nodes) {
      if (n->op != Op::input || n->result()->name == "lr") continue;
      INFO(n->result()->name);
      CHECK(std::any_of(grads->outputs.begin(), grads->outputs.end(), [&](const Output& o) { return o.name == n->result()->name; }));
    }
}
