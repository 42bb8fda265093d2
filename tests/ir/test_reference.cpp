// The reference interpreter against PyTorch: every case in reference_cases/ holds its inputs
// as constants and PyTorch's float64 results as `attr expected.rN` (gen_reference_cases.py).

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ir/builder.h"
#include "ir/parser.h"
#include "ir/reference.h"
#include "ir/verifier.h"
#include "tests/util.h"

using namespace stag;
using stag::test::slurp;

namespace {

// Both sides compute in double; only the order of summation differs.
bool close(double got, double want) {
  if (std::isnan(want)) return std::isnan(got);
  return std::fabs(got - want) <= 1e-9 * (1 + std::fabs(want));
}

}  // namespace

TEST_CASE("the reference interpreter gives PyTorch's float64 results for every case", "[reference]") {
  auto dir = std::filesystem::path(STAG_TESTS_IR_DIR) / "reference_cases";
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".ir") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 90);
  for (const auto& file : files) {
    INFO(file.filename().string());
    Diagnostics diags;
    SourceMap map;
    auto g = parse_ir(slurp(file), file.filename().string(), diags, &map);
    REQUIRE(g);
    bool ok = verify(*g, diags, &map);
    INFO(diags.render());
    REQUIRE(ok);
    RefResult r = interpret(*g, {});
    REQUIRE(r.outputs.size() == g->outputs.size());
    for (const auto& [name, got] : r.outputs) {
      const Attr* want = g->attr("expected." + name);
      REQUIRE(want);
      Floats expected = std::holds_alternative<Ints>(*want) ? Floats(std::get<Ints>(*want).begin(), std::get<Ints>(*want).end())
                                                            : std::get<Floats>(*want);
      REQUIRE(got.data.size() == expected.size());
      for (size_t i = 0; i < expected.size(); ++i) {
        INFO(fmt::format("output {} element {}: got {} want {}", name, i, got.data[i], expected[i]));
        CHECK(close(got.data[i], expected[i]));
      }
    }
  }
}

TEST_CASE("dropout keeps about 1-p of the elements, scaled, and repeats for the same key", "[reference]") {
  Graph g("drop");
  Builder b(g);
  Value* x = b.constant({DType::f64, {100, 100}}, {2.0});
  Value* key = b.input("step", {DType::i64, {}});
  b.output("a", b.dropout({x, key}, {{"p", 0.3}, {"seed", int64_t{7}}}));
  b.output("b", b.dropout({x, key}, {{"p", 0.3}, {"seed", int64_t{8}}}));
  auto run = [&](double step) { return interpret(g, {{"step", RefTensor({DType::i64, {}}, {step})}}); };
  RefResult r1 = run(5), r2 = run(5), r3 = run(6);
  const auto& a = r1.outputs["a"].data;
  CHECK(a == r2.outputs["a"].data);
  CHECK(a != r3.outputs["a"].data);
  CHECK(a != r1.outputs["b"].data);
  int64_t kept = 0;
  for (double v : a) {
    REQUIRE((v == 0 || std::fabs(v - 2.0 / 0.7) < 1e-12));
    kept += v != 0;
  }
  CHECK(std::fabs(static_cast<double>(kept) / 10000 - 0.7) < 0.02);  // 5 standard deviations
}

TEST_CASE("random_uniform and random_normal have the asked-for moments", "[reference]") {
  Graph g("rng");
  Builder b(g);
  Type t{DType::f64, {200, 100}};
  b.output("u", b.create(Op::random_uniform, {}, {{"low", -1.0}, {"high", 3.0}, {"seed", int64_t{1}}}, {t})[0]);
  b.output("n", b.create(Op::random_normal, {}, {{"mean", 0.5}, {"std", 2.0}, {"seed", int64_t{1}}}, {t})[0]);
  RefResult r = interpret(g, {});
  auto moments = [](const std::vector<double>& v) {
    double m = 0, s = 0;
    for (double x : v) m += x;
    m /= static_cast<double>(v.size());
    for (double x : v) s += (x - m) * (x - m);
    return std::pair{m, std::sqrt(s / static_cast<double>(v.size()))};
  };
  auto [um, us] = moments(r.outputs["u"].data);
  auto [nm, ns] = moments(r.outputs["n"].data);
  for (double v : r.outputs["u"].data) REQUIRE((v >= -1 && v < 3));
  CHECK(std::fabs(um - 1.0) < 0.05);
  CHECK(std::fabs(us - 4 / std::sqrt(12.0)) < 0.05);
  CHECK(std::fabs(nm - 0.5) < 0.08);
  CHECK(std::fabs(ns - 2.0) < 0.08);
}

TEST_CASE("the interpreter reports bad feeds and bad indices as RefError", "[reference]") {
  Graph g("feeds");
  Builder b(g);
  Value* w = b.parameter("w", {DType::f64, {4, 2}});
  Value* ids = b.input("ids", {DType::i64, {3}});
  b.output("e", b.embedding({w, ids}));
  RefTensor wv = RefTensor::filled({DType::f64, {4, 2}}, 1);
  CHECK_THROWS_WITH(interpret(g, {{"w", wv}}), "no value fed for %ids (i64[3])");
  CHECK_THROWS_WITH(interpret(g, {{"w", wv}, {"ids", RefTensor({DType::i64, {2}}, {0, 1})}}),
                    "%ids is i64[3] but the value fed is i64[2]");
  CHECK_THROWS_WITH(interpret(g, {{"w", wv}, {"ids", RefTensor({DType::i64, {3}}, {0, 4, 1})}}),
                    "embedding index 4 is out of range [0, 4)");
  RefResult ok = interpret(g, {{"w", wv}, {"ids", RefTensor({DType::i64, {3}}, {0, 3, 1})}});
  CHECK(ok.outputs["e"].data == std::vector<double>(6, 1.0));
}

TEST_CASE("embedding_grad is the one_hot product it replaces, and checks its ids", "[reference]") {
  Graph g("scatter");
  Builder b(g);
  Value* dy = b.input("dy", {DType::f64, {2, 5, 3}});
  Value* ids = b.input("ids", {DType::i64, {2, 5}});
  b.output("scatter", b.embedding_grad({dy, ids}, {{"num_embeddings", 4}}));
  Value* hot = b.reshape({b.one_hot({ids}, {{"num_classes", 4}, {"dtype", DType::f64}})}, {{"shape", Ints{10, 4}}});
  b.output("product", b.matmul({hot, b.reshape({dy}, {{"shape", Ints{10, 3}}})}, {{"transpose_a", true}}));
  std::vector<double> dyv;
  for (int i = 0; i < 30; ++i) dyv.push_back(std::sin(1.7 * i + 0.3));
  RefTensor dyt({DType::f64, {2, 5, 3}}, dyv);
  // row 1 three times, row 3 never
  RefResult r = interpret(g, {{"dy", dyt}, {"ids", RefTensor({DType::i64, {2, 5}}, {1, 0, 1, 2, 0, 2, 1, 0, 2, 2})}});
  const auto &scatter = r.outputs["scatter"].data, &product = r.outputs["product"].data;
  REQUIRE(scatter.size() == 12);
  for (size_t i = 0; i < scatter.size(); ++i) CHECK(scatter[i] == Approx(product[i]).margin(1e-14));
  CHECK(scatter[1 * 3] == Approx(dyv[0] + dyv[6] + dyv[18]).margin(1e-14));
  for (size_t i = 9; i < 12; ++i) CHECK(scatter[i] == 0);
  CHECK_THROWS_WITH(interpret(g, {{"dy", dyt}, {"ids", RefTensor({DType::i64, {2, 5}}, {1, 0, 1, 2, 0, 2, 4, 0, 2, 2})}}),
                    "embedding_grad index 4 is out of range [0, 4)");
}

TEST_CASE("updates give the parameters' new values", "[reference]") {
  Graph g("upd");
  Builder b(g);
  Value* p = b.parameter("p", {DType::f64, {2}}, {{"trainable", false}});
  b.update(p, b.mul({p, b.scalar(3.0, DType::f64)}));
  RefResult r = interpret(g, {{"p", RefTensor({DType::f64, {2}}, {1, -2})}});
  CHECK(r.updates["p"].data == std::vector<double>{3, -6});
}
