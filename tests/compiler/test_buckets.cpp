// The bucket-gradients pass: data parallelism's split points in a gradients/update program. Every
// averaged value (the loss, each gradient) is in one bucket, started after the last kernel that
// writes it and awaited before the first that reads it, never inside a loop; buckets keep to
// their size; without dp.bucket_bytes the program has no split point.

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

#include "compiler/passes/pass.h"
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
      // A start follows every write of its values; a wait precedes every read.
      for (size_t j = 0; j < f.kernels.size(); ++j) {
        if (f.kernels[j].exchange) continue;
        auto a = kir::accesses(f.kernels[j]);
        if (op == kir::Exchange::Op::start && touches(a.writes, id)) CHECK(j < k);
        if (op == kir::Exchange::Op::wait && touches(a.reads, id)) CHECK(j > k);
      }
    }
  }
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
