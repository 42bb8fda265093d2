// The verifier on graphs built with Graph::append, past the builder's checks: each broken
// invariant gives its exact error, located at the SourceMap position, else node.loc, else a name.

#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <functional>

#include "ir/builder.h"
#include "ir/verifier.h"
#include "test_util.h"

using namespace stag;

namespace {

Type f32(Dims d) { return {DType::f32, std::move(d)}; }
Attr I(int64_t v) { return v; }

/// x: f32[2,3] input, p: f32[2,3] parameter, y = relu(x), z = add(y, p); output out = z.
struct Base {
  Graph g{"g"};
  Value *x, *p, *y, *z;
  Base() {
    Builder b(g);
    x = b.input("x", f32({2, 3}));
    p = b.parameter("p", f32({2, 3}));
    y = b.create(Op::relu, {x}, {}, {}, {"y"})[0];
    z = b.create(Op::add, {y, p}, {}, {}, {"z"})[0];
    b.output("out", z);
  }
  Value* append(Op op, std::vector<Value*> operands, std::vector<Attr> attrs, Type type, std::string name) {
    return g.append(op, std::move(operands), std::move(attrs), {type}, {name})->result();
  }
  // An input of any type, appended without checks.
  Value* input(Type type, std::string name) { return append(Op::input, {}, {}, type, name); }
};

/// The head line of each diagnostic (`where: error: message`).
std::vector<std::string> errors(const Graph& g, const SourceMap* map = nullptr) {
  Diagnostics diags;
  bool ok = verify(g, diags, map);
  std::vector<std::string> out;
  for (const auto& d : diags.all()) {
    std::string r = diags.render(d);
    out.push_back(r.substr(0, r.find('\n')));
  }
  CHECK(ok == out.empty());
  return out;
}

struct Case {
  std::string what;
  std::function<void(Base&)> mutate;
  std::vector<std::string> want;
};

const int64_t k2to32 = int64_t{1} << 32;

std::vector<Case> cases() {
  return {
      {"the base graph is valid", [](Base&) {}, {}},
      {"an operand defined after its use", [](Base& b) { std::swap(b.g.nodes[2], b.g.nodes[3]); },
       {"%z: error: add: operand %y is not defined before its use"}},
      {"an operand from another graph",
       [](Base& b) {
         static Base other;
         b.append(Op::neg, {other.x}, {}, f32({2, 3}), "n");
       },
       {"%n: error: neg: operand %x is not defined before its use"}},
      {"a null operand", [](Base& b) { b.append(Op::neg, {nullptr}, {}, f32({2, 3}), "n"); },
       {"%n: error: neg: operand %? is not defined before its use"}},
      {"a name defined twice", [](Base& b) { b.z->name = b.y->name; },
       {"%y: error: value name '%y' is defined twice"}},
      {"an invalid value name", [](Base& b) { b.z->name = "a b"; },
       {"%a b: error: value name '%a b' is not valid"}},
      {"a value that does not point at its node", [](Base& b) { b.z->def = b.y->def; },
       {"%z: error: value %z does not point back at its node"}},
      {"too few operands", [](Base& b) { b.append(Op::add, {b.x}, {}, f32({2, 3}), "n"); },
       {"%n: error: add: expects 2 operands, got 1"}},
      {"too many operands", [](Base& b) { b.append(Op::relu, {b.x, b.x}, {}, f32({2, 3}), "n"); },
       {"%n: error: relu: expects 1 operand, got 2"}},
      {"operands to a source", [](Base& b) { b.append(Op::input, {b.x}, {}, f32({2, 3}), "n"); },
       {"%n: error: input: expects 0 operands, got 1"}},
      {"an attribute of the wrong kind",
       [](Base& b) { b.append(Op::softmax, {b.x}, {Attr(1.5)}, f32({2, 3}), "n"); },
       {"%n: error: softmax: attribute 'axis' must be int, got 1.5"}},
      {"a string attribute outside its choices",
       [](Base& b) { b.append(Op::gelu, {b.x}, {Attr(std::string("fast"))}, f32({2, 3}), "n"); },
       {"%n: error: gelu: attribute 'approximate' is \"fast\"; expected one of: none, tanh"}},
      {"missing attributes", [](Base& b) { b.append(Op::softmax, {b.x}, {}, f32({2, 3}), "n"); },
       {"%n: error: softmax: has 0 attributes, expected 1"}},
      {"attributes on an op without any", [](Base& b) { b.append(Op::relu, {b.x}, {I(1)}, f32({2, 3}), "n"); },
       {"%n: error: relu: has 1 attributes, expected 0"}},
      {"a declared type that differs from the inferred one",
       [](Base& b) { b.append(Op::relu, {b.x}, {}, f32({3, 2}), "n"); },
       {"%n: error: %n is declared f32[3,2] but relu gives f32[2,3]"}},
      {"a declared element type that differs", [](Base& b) { b.y->type.dtype = DType::f64; },
       {"%y: error: %y is declared f64[2,3] but relu gives f32[2,3]",
        "%z: error: add: operands have different element types: f64[2,3] and f32[2,3]"}},
      {"a shape rule error", [](Base& b) { b.append(Op::matmul, {b.x, b.x}, {false, false, std::string("f32")}, f32({2, 2}), "n"); },
       {"%n: error: matmul: inner dimensions differ (3 vs 2): f32[2,3] x f32[2,3]"}},
      {"fewer results than the op gives",
       [](Base& b) { b.append(Op::split, {b.x}, {I(0), Ints{1, 1}}, f32({1, 3}), "n"); },
       {"%n: error: split gives 2 results, 1 are declared"}},
      {"an element count that overflows int64", [](Base& b) { b.input(f32({k2to32, k2to32}), "big"); },
       {"%big: error: %big: f32[4294967296,4294967296] has more elements than fit in 64 bits"}},
      {"a byte size that overflows int64", [](Base& b) { b.input({DType::f64, {int64_t{1} << 61}}, "big"); },
       {"%big: error: %big: f64[2305843009213693952] has 2305843009213693952 elements, too many bytes for a 64-bit "
        "size"}},
      {"an overflowing operand is reported once, where it is defined",
       [](Base& b) {
         Value* big = b.input(f32({k2to32, k2to32}), "big");
         b.append(Op::reshape, {big}, {Ints{-1}}, f32({1}), "r");
       },
       {"%big: error: %big: f32[4294967296,4294967296] has more elements than fit in 64 bits"}},
      {"a zero dimension", [](Base& b) { b.input(f32({2, 0}), "e"); },
       {"%e: error: %e: dimension 1 of f32[2,0] is 0: dimensions must be at least 1"}},
      {"a negative dimension", [](Base& b) { b.input(f32({-3}), "e"); },
       {"%e: error: %e: dimension 0 of f32[-3] is -3: dimensions must be at least 1"}},
      {"rank 9", [](Base& b) { b.input(f32({1, 1, 1, 1, 1, 1, 1, 1, 1}), "e"); },
       {"%e: error: %e: rank 9 exceeds the maximum rank 8"}},
      {"an output of a value not in the graph",
       [](Base& b) {
         static Base other;
         b.g.outputs.push_back({"o", other.z, {}});
       },
       {"output o: error: output 'o' refers to a value not in the graph"}},
      {"an output defined twice", [](Base& b) { b.g.outputs.push_back({"out", b.y, {}}); },
       {"output out: error: output 'out' is defined twice"}},
      {"an output name that is not an identifier", [](Base& b) { b.g.outputs.push_back({"9lives", b.y, {}}); },
       {"output 9lives: error: output name '9lives' is not an identifier"}},
      {"an update of a non-parameter", [](Base& b) { b.g.updates.push_back({b.x, b.z, {}}); },
       {"update %x: error: update target %x is not a parameter (it comes from input)"}},
      {"an update with another type",
       [](Base& b) {
         Value* s = b.append(Op::sum, {b.z}, {Ints{}, false}, f32({}), "s");
         b.g.updates.push_back({b.p, s, {}});
       },
       {"update %p: error: update of %p (f32[2,3]) with %s (f32[]): the types differ"}},
      {"a parameter updated twice",
       [](Base& b) {
         b.g.updates.push_back({b.p, b.z, {}});
         b.g.updates.push_back({b.p, b.y, {}});
       },
       {"update %p: error: %p is updated twice"}},
      {"an update from a value not in the graph",
       [](Base& b) {
         static Base other;
         b.g.updates.push_back({b.p, other.z, {}});
       },
       {"update %p: error: update refers to a value not in the graph"}},
      {"a graph name that is not an identifier", [](Base& b) { b.g.name = "1g"; },
       {"graph 1g: error: graph name '1g' is not an identifier"}},
      {"a graph attribute set twice",
       [](Base& b) {
         b.g.attrs.emplace_back("batch", I(1));
         b.g.attrs.emplace_back("batch", I(2));
       },
       {"graph g: error: graph attribute 'batch' is set twice"}},
      {"every error of a run is reported, in graph order",
       [](Base& b) {
         b.y->type = f32({3, 3});
         b.append(Op::add, {b.x}, {}, f32({2, 3}), "n");
         b.input(f32({0}), "e");
         b.g.outputs.push_back({"out", b.x, {}});
         b.g.updates.push_back({b.x, b.x, {}});
       },
       {"%y: error: %y is declared f32[3,3] but relu gives f32[2,3]",
        "%z: error: add: cannot broadcast f32[3,3] with f32[2,3]",
        "%n: error: add: expects 2 operands, got 1",
        "%e: error: %e: dimension 0 of f32[0] is 0: dimensions must be at least 1",
        "output out: error: output 'out' is defined twice",
        "update %x: error: update target %x is not a parameter (it comes from input)"}},
  };
}

}  // namespace

TEST_CASE("the verifier reports each broken invariant exactly", "[verifier]") {
  for (const Case& c : cases()) {
    INFO(c.what);
    Base b;
    c.mutate(b);
    CHECK(errors(b.g) == c.want);
  }
}

TEST_CASE("verifier errors point at the SourceMap position, else node.loc, else the name", "[verifier]") {
  Base b;
  b.y->type = f32({9});
  b.z->def->loc = {"model.stag", 4, 7};
  b.g.outputs[0].loc = {"model.stag", 9, 1};
  b.g.updates.push_back({b.x, b.z, {"model.stag", 10, 2}});
  SECTION("with no map: loc, else the name") {
    CHECK(errors(b.g) == std::vector<std::string>{
                             "%y: error: %y is declared f32[9] but relu gives f32[2,3]",
                             "model.stag:4:7: error: add: cannot broadcast f32[9] with f32[2,3]",
                             "model.stag:10:2: error: update target %x is not a parameter (it comes from input)"});
  }
  SECTION("with a map: its positions win") {
    SourceMap map;
    map.nodes[b.y->def] = {"g.ir", 5, 3};
    map.nodes[b.z->def] = {"g.ir", 6, 3};
    map.updates.push_back({"g.ir", 8, 3});
    CHECK(errors(b.g, &map) == std::vector<std::string>{
                                   "g.ir:5:3: error: %y is declared f32[9] but relu gives f32[2,3]",
                                   "g.ir:6:3: error: add: cannot broadcast f32[9] with f32[2,3]",
                                   "g.ir:8:3: error: update target %x is not a parameter (it comes from input)"});
  }
}

TEST_CASE("a verifier error quotes the source line with a caret", "[verifier]") {
  Base b;
  b.y->type = f32({9});
  SourceMap map;
  map.nodes[b.y->def] = {"g.ir", 2, 3};
  Diagnostics diags;
  diags.add_source("g.ir", "graph g {\n  %y: f32[9] = relu(%x)\n}\n");
  CHECK_FALSE(verify(b.g, diags, &map));
  CHECK(diags.render(diags.all().at(0)) ==
        "g.ir:2:3: error: %y is declared f32[9] but relu gives f32[2,3]\n"
        "    2 |   %y: f32[9] = relu(%x)\n"
        "      |   ^\n");
}

TEST_CASE("the verifier stops collecting after the error limit", "[verifier]") {
  Base b;
  for (size_t i = 0; i < Diagnostics::kMaxErrors + 5; ++i) b.input(f32({0}), fmt::format("e{}", i));
  Diagnostics diags;
  CHECK_FALSE(verify(b.g, diags));
  CHECK(diags.error_count() == Diagnostics::kMaxErrors);
  REQUIRE(diags.all().size() == Diagnostics::kMaxErrors + 1);
  CHECK(diags.render(diags.all().back()) == "stag: error: too many errors; stopping\n");
}
