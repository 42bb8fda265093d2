// Printer and parser: print -> parse -> print is the identity on every graph built here.

#include <catch2/catch.hpp>

#include "ir/builder.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/verifier.h"

using namespace stag;

namespace {

std::string reprint(const std::string& text) {
  Diagnostics diags;
  SourceMap map;
  auto g = parse_ir(text, "roundtrip.ir", diags, &map);
  INFO(diags.render());
  REQUIRE(g);
  REQUIRE(verify(*g, diags, &map));
  return print(*g);
}

void check_roundtrip(const Graph& g) {
  Diagnostics diags;
  INFO(diags.render());
  REQUIRE(verify(g, diags));
  std::string text = print(g);
  INFO(text);
  CHECK(reprint(text) == text);
}

}  // namespace

TEST_CASE("an MLP built in C++ prints and reads back", "[roundtrip]") {
  Graph g("mlp");
  Builder b(g);
  g.set_attr("batch", int64_t{64});
  g.set_attr("train.lr", 0.001);
  b.set_loc({"models/mlp.stag", 3, 5});
  Value* x = b.input("x", {DType::f32, {64, 784}});
  Value* y = b.input("y", {DType::i64, {64}});
  Value* w = b.parameter("fc1.weight", {DType::f32, {10, 784}}, {{"init", std::string("kaiming_uniform")}, {"a", 2.2360679774997898}});
  Value* bias = b.parameter("fc1.bias", {DType::f32, {10}}, {{"init", std::string("zeros")}});
  b.set_loc({"models/mlp.stag", 7, 9});
  Value* logits = b.add({b.matmul({x, w}, {{"transpose_b", true}}), bias});
  Value* loss = b.cross_entropy({logits, y}, {{"label_smoothing", 0.1}});
  b.output("logits", logits);
  b.output("loss", loss);
  check_roundtrip(g);
}

TEST_CASE("awkward literals read back exactly", "[roundtrip]") {
  Graph g("literals");
  Builder b(g);
  g.set_attr("note", std::string("quote \" backslash \\ newline \n tab \t bell \x07"));
  g.set_attr("tiny", 1e-300);
  g.set_attr("third", 1.0 / 3.0);
  g.set_attr("big", int64_t{-9223372036854775807LL - 1});
  g.set_attr("list", Floats{0.1, -0.0, 1e22});
  g.set_attr("flag", false);
  g.set_attr("dtype", DType::b8);
  Value* c = b.constant({DType::f64, {2, 2}}, {1.0 / 7.0, -2.5e-8, 3.0, 4.0});
  b.output("c", c);
  check_roundtrip(g);
}

TEST_CASE("multi-result nodes and updates read back", "[roundtrip]") {
  Graph g("bn");
  Builder b(g);
  Value* x = b.input("x", {DType::f32, {8, 3, 5, 5}});
  Value* gamma = b.parameter("bn.weight", {DType::f32, {3}}, {{"init", std::string("ones")}});
  Value* beta = b.parameter("bn.bias", {DType::f32, {3}});
  Value* rm = b.parameter("bn.running_mean", {DType::f32, {3}}, {{"trainable", false}});
  Value* rv = b.parameter("bn.running_var", {DType::f32, {3}}, {{"init", std::string("ones")}, {"trainable", false}});
  auto r = b.create(Op::batch_norm, {x, gamma, beta, rm, rv}, {{"training", true}});
  REQUIRE(r.size() == 3);
  Value* m = b.scalar(0.1);
  Value* new_mean = b.add({b.mul({rm, b.scalar(0.9)}), b.mul({r[1], m})});
  b.update(rm, new_mean);
  auto parts = b.create(Op::split, {r[0]}, {{"axis", int64_t{1}}, {"sizes", Ints{1, 2}}});
  b.output("a", parts[0]);
  b.output("b", parts[1]);
  check_roundtrip(g);
}
