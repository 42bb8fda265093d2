// The bucket-gradients pass: data parallelism's split points in a gradients/update program and in
// a GAN's split steps. Every averaged value (the loss, each gradient) is in one bucket, started
// after the last kernel that writes or reads it (the all-reduce runs in place) and awaited before
// the first that reads it, never inside a loop; buckets keep to their size and are recorded for
// the runtime (dp.bucket.N); without dp.bucket_bytes the program has no split point.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

#include "compiler/passes/pass.h"
#include "compiler/train/gan.h"
#include "compiler/train/train_step.h"
#include "tests/compiler/catalog.h"

using namespace stag;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<Graph> training_graph(const std::string& model, int64_t batch) {
  LoadOptions options;
  options.batch = batch;
  options.training = true;
  return test::load_model_file(test::catalog_path(model), options);
}

kir::Program split_program(const std::string& model, int64_t bucket_bytes) {
  auto g = training_graph(model, 2);
  Diagnostics diags;
  auto [grads, update] = build_split_train_step(*g, optimizer_from_attrs(*g), diags);
  REQUIRE(grads);
  if (bucket_bytes >= 0) grads->set_attr("dp.bucket_bytes", bucket_bytes);
  std::ostringstream log;
  return compile_program({{"gradients", grads.get()}, {"update", update.get()}}, PassOptions{}, log);
}

const kir::Function& function(const kir::Program& p, const std::string& name) {
  for (const auto& f : p.functions)
    if (f.name == name) return f;
  FAIL("no function " << name);
  return p.functions[0];
}

bool inside_loop(const kir::Function& f, size_t k) {
  return std::any_of(f.loops.begin(), f.loops.end(), [&](const kir::Loop& l) { return l.first <= static_cast<int>(k) && static_cast<int>(k) < l.last; });
}

bool touches(const std::vector<int>& ids, int id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); }

// Checks one function's split points; returns bucket -> the names of its buffers.
std::map<int, std::vector<std::string>> check_split_points(const kir::Program& p, const std::string& fn, kir::Exchange::Op op) {
  const kir::Function& f = function(p, fn);
  std::map<int, std::vector<std::string>> buckets;
  for (size_t k = 0; k < f.kernels.size(); ++k) {
    const auto& x = f.kernels[k].exchange;
    if (!x) continue;
    CHECK(x->op == op);
    CHECK_FALSE(inside_loop(f, k));
    for (int id : x->buffers) {
      buckets[x->bucket].push_back(p.buffers[static_cast<size_t>(id)].name);
      // A start follows every access of its values; a wait precedes every read.
      for (size_t j = 0; j < f.kernels.size(); ++j) {
        if (f.kernels[j].exchange) continue;
        auto a = kir::accesses(f.kernels[j]);
        if (op == kir::Exchange::Op::start && (touches(a.writes, id) || touches(a.reads, id))) CHECK(j < k);
        if (op == kir::Exchange::Op::wait && touches(a.reads, id)) CHECK(j > k);
      }
    }
  }
  return buckets;
}

// The buckets the pass recorded for the runtime: dp.bucket.N = "FUNCTION VALUE ...", by N.
std::map<int, std::vector<std::string>> recorded(const kir::Program& p) {
  std::map<int, std::vector<std::string>> out;
  for (const auto& [key, value] : p.attrs) {
    if (!key.starts_with("dp.bucket.")) continue;
    std::istringstream words(std::get<std::string>(value));
    auto& names = out[std::stoi(key.substr(10))];
    for (std::string w; words >> w;) names.push_back(w);
  }
  return out;
}

// Split points' buckets with the function of their start in front, as recorded() lists them.
std::map<int, std::vector<std::string>> with_function(const std::string& fn, std::map<int, std::vector<std::string>> buckets) {
  for (auto& [b, names] : buckets) names.insert(names.begin(), fn);
  return buckets;
}

int64_t bytes_of(const kir::Program& p, const std::vector<std::string>& names, const std::string& fn) {
  int64_t n = 0;
  for (const auto& b : p.buffers)
    if (b.kind == kir::BufKind::Output && p.functions[static_cast<size_t>(b.function)].name == fn &&
        std::find(names.begin(), names.end(), b.name) != names.end())
      n += b.bytes();
  return n;
}

void check_buckets(const std::string& model, int64_t limit, size_t expected_buckets) {
  kir::Program p = split_program(model, limit);
  auto starts = check_split_points(p, "gradients", kir::Exchange::Op::start);
  auto waits = check_split_points(p, "update", kir::Exchange::Op::wait);
  CHECK(starts == waits);
  CHECK(starts.size() == expected_buckets);
  // Every averaged value once.
  std::vector<std::string> all;
  for (const auto& [b, names] : starts) all.insert(all.end(), names.begin(), names.end());
  std::vector<std::string> want;
  for (const auto& b : p.buffers)
    if (b.kind == kir::BufKind::Output && p.functions[static_cast<size_t>(b.function)].name == "gradients" &&
        (b.name == "loss" || b.name.starts_with("grad.")))
      want.push_back(b.name);
  std::sort(all.begin(), all.end());
  std::sort(want.begin(), want.end());
  CHECK(all == want);
  CHECK(starts.at(0).front() == "loss");
  for (const auto& [b, names] : starts) {
    int64_t room = b == 0 ? std::min<int64_t>(limit, 1 << 20) : limit;
    if (names.size() > 1) CHECK(bytes_of(p, names, "gradients") <= room);
  }
  CHECK(recorded(p) == with_function("gradients", starts));
}

}  // namespace

TEST_CASE("bucket-gradients: split points after the last write and before the first read", "[dp][buckets]") {
  // The MLP's 2 MB: the first bucket 1 MB at most, the rest in one.
  check_buckets("mlp", int64_t{25} << 20, 2);
  // 0.3 MB: fc2.weight (512 KB) and fc1.weight (1.6 MB) alone, fc1.bias between them alone.
  check_buckets("mlp", 300 * 1024, 4);
}

TEST_CASE("bucket-gradients: a recurrent model's split points stay outside its loops", "[dp][buckets]") {
  check_buckets("lstm_lm", 50 * 1024, 6);
}

TEST_CASE("bucket-gradients: no split points without a positive bucket size", "[dp][buckets]") {
  for (int64_t limit : {int64_t{-1}, int64_t{0}}) {
    kir::Program p = split_program("mlp", limit);
    for (const auto& f : p.functions)
      for (const auto& k : f.kernels) CHECK_FALSE(k.exchange);
  }
}

namespace {

std::unique_ptr<Graph> gan_member(const std::string& name) {
  LoadOptions options;
  options.batch = 2;
  options.training = true;
  options.model = name;
  return test::load_model_file(fmt::format("{}/cli/gan_tanh.stag", STAG_TESTS_DIR), options);
}

// The GAN of tests/cli/gan_tanh.stag with its steps split, compiled as mpirun's processes run it.
kir::Program split_gan_program(int64_t bucket_bytes) {
  auto gen = gan_member("gen"), disc = gan_member("disc");
  GanOptions o;
  o.generator_optimizer = optimizer_from_attrs(*gen);
  o.discriminator_optimizer = optimizer_from_attrs(*disc);
  o.split = true;
  Diagnostics diags;
  auto g = build_gan(*gen, *disc, o, {}, diags);
  INFO(diags.render());
  REQUIRE(g);
  g->sample->set_attr("dp.bucket_bytes", bucket_bytes);
  std::ostringstream log;
  return compile_program({{"forward", g->sample.get()}, {"d_gradients", g->d_step.get()}, {"d_update", g->d_update.get()},
                          {"g_gradients", g->g_step.get()}, {"g_update", g->g_update.get()}}, PassOptions{}, log);
}

// What a GAN step averages: its loss, its gradients and the other f32 scalars (D's accuracies).
std::vector<std::string> averaged(const kir::Program& p, const std::string& fn) {
  std::vector<std::string> out;
  for (const auto& b : p.buffers)
    if (b.kind == kir::BufKind::Output && p.functions[static_cast<size_t>(b.function)].name == fn &&
        (b.name.starts_with("grad.") || (b.type.dtype == DType::f32 && b.type.rank() == 0)))
      out.push_back(b.name);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> all_names(const std::map<int, std::vector<std::string>>& buckets) {
  std::vector<std::string> out;
  for (const auto& [b, names] : buckets) out.insert(out.end(), names.begin(), names.end());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("bucket-gradients: a GAN's split steps get buckets of their own", "[dp][buckets][gan]") {
  // 1 KB: each model's 401 KB weight alone, its 512-byte layers' gradients apart.
  kir::Program p = split_gan_program(1024);
  auto d_starts = check_split_points(p, "d_gradients", kir::Exchange::Op::start);
  auto g_starts = check_split_points(p, "g_gradients", kir::Exchange::Op::start);
  auto d_waits = check_split_points(p, "d_update", kir::Exchange::Op::wait);
  auto g_waits = check_split_points(p, "g_update", kir::Exchange::Op::wait);
  REQUIRE(d_starts.size() >= 3);
  REQUIRE(g_starts.size() >= 3);
  // Numbered across the program: D's first, then G's.
  CHECK(d_starts.begin()->first == 0);
  CHECK(g_starts.begin()->first == static_cast<int>(d_starts.size()));
  CHECK(all_names(d_starts) == averaged(p, "d_gradients"));
  CHECK(all_names(g_starts) == averaged(p, "g_gradients"));
  // update waits for every bucket holding a value it reads (D's accuracies it never reads).
  for (const auto& [b, names] : d_waits) CHECK(d_starts.contains(b));
  CHECK(d_waits.size() == d_starts.size());
  CHECK(g_waits == g_starts);
  CHECK(d_starts.at(0).front() == "loss");
  CHECK(g_starts.at(static_cast<int>(d_starts.size())).front() == "loss");
  auto want = with_function("d_gradients", d_starts);
  want.merge(with_function("g_gradients", g_starts));
  CHECK(recorded(p) == want);
}
