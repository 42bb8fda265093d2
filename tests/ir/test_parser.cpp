// The IR text form: literals, comments, every syntax error with its line:col, and a seeded
// random round trip (build with the builder -> print -> parse -> print) over the whole op table.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <set>

#include "ir/builder.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "test_util.h"

using namespace stag;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

uint64_t bits(double v) { return std::bit_cast<uint64_t>(v); }

/// The first diagnostic's head line, or "" when the text parses.
std::string first_error(const std::string& text) {
  Diagnostics diags;
  auto g = parse_ir(text, "t.ir", diags);
  CHECK((g == nullptr) == diags.has_errors());
  if (!diags.has_errors()) return {};
  std::string r = diags.render(diags.all().front());
  return r.substr(0, r.find('\n'));
}

/// A graph around one statement, which sits at line 3, column 3.
std::string around(const std::string& statement) {
  return "graph g {\n  %x: f32[2,3] = input()\n  " + statement + "\n}\n";
}

}  // namespace

// ------------------------------------------------------------------ literals

TEST_CASE("integer literals, including the int64 limits", "[parser][literal]") {
  CHECK(parse_attr_literal("3") == Attr(int64_t{3}));
  CHECK(parse_attr_literal("+5") == Attr(int64_t{5}));
  CHECK(parse_attr_literal("-9223372036854775808") == Attr(std::numeric_limits<int64_t>::min()));
  CHECK(parse_attr_literal("9223372036854775807") == Attr(std::numeric_limits<int64_t>::max()));
  CHECK_FALSE(parse_attr_literal("9223372036854775808"));
  CHECK_FALSE(parse_attr_literal("-9223372036854775809"));
  CHECK_FALSE(parse_attr_literal("3x"));
  CHECK_FALSE(parse_attr_literal("1 2"));
}

TEST_CASE("float literals read exactly, with their special values", "[parser][literal]") {
  struct Row {
    const char* text;
    double want;
  };
  for (Row r : {Row{"1.5", 1.5}, Row{"1.", 1.0}, Row{"1e5", 1e5}, Row{"1E+5", 1e5}, Row{"-2.5e-3", -2.5e-3},
                Row{"1e-300", 1e-300}, Row{"5e-324", 4.9406564584124654e-324}, Row{"1.7976931348623157e+308", 1.7976931348623157e308},
                Row{"0.1", 0.1}, Row{"inf", kInf}, Row{"+inf", kInf}, Row{"-inf", -kInf}, Row{"-0.0", -0.0}}) {
    INFO(r.text);
    auto a = parse_attr_literal(r.text);
    REQUIRE(a);
    REQUIRE(std::holds_alternative<double>(*a));
    CHECK(bits(std::get<double>(*a)) == bits(r.want));
  }
  auto nan = parse_attr_literal("nan");
  REQUIRE(nan);
  CHECK(std::isnan(std::get<double>(*nan)));
  CHECK_FALSE(parse_attr_literal("1e400"));
  CHECK_FALSE(parse_attr_literal("1e"));
  CHECK_FALSE(parse_attr_literal("-nan"));
  CHECK_FALSE(parse_attr_literal(".5"));
}

TEST_CASE("floats print in the shortest form that reads back to the same bits", "[parser][literal]") {
  std::mt19937_64 rng(7);
  std::vector<double> values{0.1, 1.0 / 3, -0.0, 0.0, 1e-300, 5e-324, 2.2250738585072014e-308, 1e22, 1e16, 123456789012345680.0,
                             std::numeric_limits<double>::max(), -kInf, kInf, 1.0, 100.0, 0.001};
  for (int i = 0; i < 2000; ++i) {
    double d = std::bit_cast<double>(rng());
    if (std::isfinite(d)) values.push_back(d);
  }
  for (double v : values) {
    std::string text = format_float(v);
    INFO(text);
    CHECK(text.find_first_of(".ein") != std::string::npos);  // never an int literal
    auto a = parse_attr_literal(text);
    REQUIRE(a);
    CHECK(bits(std::get<double>(*a)) == bits(v));
  }
  CHECK(format_float(0.1) == "0.1");
  CHECK(format_float(1.0) == "1.0");
  CHECK(format_float(-0.0) == "-0.0");
  CHECK(format_float(1e22) == "1e+22");
  CHECK(format_float(1e-05) == "1e-05");
}

TEST_CASE("string literals with escapes", "[parser][literal]") {
  CHECK(parse_attr_literal(R"("a\"b\\c\n\t\x07\x7f")") == Attr(std::string("a\"b\\c\n\t\x07\x7f")));
  CHECK(parse_attr_literal(R"("")") == Attr(std::string()));
  CHECK(parse_attr_literal("\"caf\xc3\xa9 # not a comment\"") == Attr(std::string("caf\xc3\xa9 # not a comment")));
  CHECK_FALSE(parse_attr_literal(R"("\q")"));
  CHECK_FALSE(parse_attr_literal(R"("\x4")"));
  CHECK_FALSE(parse_attr_literal(R"("open)"));
  CHECK_FALSE(parse_attr_literal("\"two\nlines\""));
  std::string every_byte;
  for (int c = 0; c < 256; ++c) every_byte += static_cast<char>(c);
  CHECK(parse_attr_literal(to_string(Attr(every_byte))) == Attr(every_byte));
}

TEST_CASE("lists, booleans and dtypes", "[parser][literal]") {
  CHECK(parse_attr_literal("[1, -2, 3]") == Attr(Ints{1, -2, 3}));
  CHECK(parse_attr_literal("[]") == Attr(Ints{}));
  CHECK(parse_attr_literal("[1, 2.5]") == Attr(Floats{1, 2.5}));
  auto special = parse_attr_literal("[inf, -inf, nan]");
  REQUIRE(special);
  const Floats& f = std::get<Floats>(*special);
  CHECK((f.size() == 3 && f[0] == kInf && f[1] == -kInf && std::isnan(f[2])));
  CHECK_FALSE(parse_attr_literal("[1,]"));
  CHECK_FALSE(parse_attr_literal("[1 2]"));
  CHECK_FALSE(parse_attr_literal("[\"a\"]"));
  CHECK_FALSE(parse_attr_literal("[[1]]"));
  CHECK(parse_attr_literal("true") == Attr(true));
  CHECK(parse_attr_literal("false") == Attr(false));
  for (DType d : {DType::f32, DType::f64, DType::i32, DType::i64, DType::b8})
    CHECK(parse_attr_literal(dtype_name(d)) == Attr(d));
  CHECK_FALSE(parse_attr_literal("f16"));
  CHECK_FALSE(parse_attr_literal("True"));
}

TEST_CASE("comments and blank space carry no meaning", "[parser]") {
  std::string text =
      "# leading comment\n"
      "graph g {   // trailing comment\n"
      "\t%x: f32[2] = input()  # another\r\n"
      "\n"
      "  %y: f32[2]=relu(%x)output y=%y\n"
      "}  # after the graph\n";
  CHECK(first_error(text) == "");
  Diagnostics diags;
  auto g = parse_ir(text, "t.ir", diags);
  REQUIRE(g);
  CHECK(print(*g) == "graph g {\n  %x: f32[2] = input()\n  %y: f32[2] = relu(%x)\n  output y = %y\n}\n");
}

TEST_CASE("names spelled like inf and nan stay names", "[parser]") {
  std::string text = "graph inf {\n  attr nan = nan\n  %x: f32[1] = input()\n  output inf = %x\n}\n";
  CHECK(first_error(text) == "");
  Diagnostics diags;
  auto g = parse_ir(text, "t.ir", diags);
  REQUIRE(g);
  CHECK(print(*g) == text);
}

TEST_CASE("the SourceMap records where each node, output and update starts", "[parser]") {
  std::string text =
      "graph g {\n  %p: f32[2] = parameter()\n    %y: f32[2] = neg(%p)\n  output y = %y\n update %p = %y\n}\n";
  Diagnostics diags;
  SourceMap map;
  auto g = parse_ir(text, "t.ir", diags, &map);
  REQUIRE(g);
  CHECK(map.nodes.at(g->nodes[0].get()) == Loc{"t.ir", 2, 3});
  CHECK(map.nodes.at(g->nodes[1].get()) == Loc{"t.ir", 3, 5});
  CHECK(map.outputs == std::vector<Loc>{{"t.ir", 4, 3}});
  CHECK(map.updates == std::vector<Loc>{{"t.ir", 5, 2}});
}

// ------------------------------------------------------------------ syntax errors

TEST_CASE("every syntax error names the problem at its line and column", "[parser][errors]") {
  struct Row {
    const char* what;
    std::string text;
    std::string want;
  };
  const std::vector<Row> rows = {
      {"an empty file", "", "t.ir:1:1: error: expected 'graph', found end of file"},
      {"a misspelt keyword", "graf g {}", "t.ir:1:1: error: expected 'graph', found 'graf'"},
      {"a graph without a name", "graph {", "t.ir:1:7: error: expected the graph's name after 'graph'"},
      {"a graph without a brace", "graph g }", "t.ir:1:9: error: expected '{' after the graph's name, found '}'"},
      {"a truncated graph", "graph g {\n  %x: f32[2] = input()\n",
       "t.ir:2:23: error: expected '}' to close the graph"},
      {"text after the graph", "graph g {}\nx", "t.ir:2:1: error: expected end of file after the graph, found 'x'"},
      {"an unknown statement", around("foo"),
       "t.ir:3:3: error: expected a node ('%name: type = op(...)'), 'attr', 'output' or 'update', found 'foo'"},
      {"an attribute without a name", around("attr 1 = 2"), "t.ir:3:8: error: expected an attribute name, found number 1"},
      {"an attribute without '='", around("attr a 2"), "t.ir:3:10: error: expected '=' after the attribute name, found number 2"},
      {"an attribute without a value", around("attr a = }"), "t.ir:3:12: error: expected a value, found '}'"},
      {"an attribute set twice", around("attr a = 1 attr a = 2"), "t.ir:3:19: error: graph attribute 'a' is set twice"},
      {"an output without a name", around("output = %x"), "t.ir:3:10: error: expected the output's name, found '='"},
      {"an output without '='", around("output o %x"), "t.ir:3:12: error: expected '=' after the output's name, found '%x'"},
      {"an output of a number", around("output o = 3"), "t.ir:3:14: error: expected a value such as %x, found number 3"},
      {"an output defined twice", around("output o = %x output o = %x"), "t.ir:3:24: error: output 'o' is defined twice"},
      {"an update without '='", around("update %x %x"), "t.ir:3:13: error: expected '=' after the updated parameter, found '%x'"},
      {"use of an undefined value", around("output o = %q"),
       "t.ir:3:14: error: use of undefined value '%q' (values must be defined before they are used)"},
      {"use of a misspelt value", around("output o = %xx"), "t.ir:3:14: error: use of undefined value '%xx'; did you mean '%x'?"},
      {"use before definition", "graph g {\n  %y: f32[2] = neg(%z)\n  %z: f32[2] = input()\n}\n",
       "t.ir:2:20: error: use of undefined value '%z' (values must be defined before they are used)"},
      {"a result without a type", around("%y f32[2] = neg(%x)"),
       "t.ir:3:6: error: expected ':' and a type after the result name, found 'f32'"},
      {"a missing type", around("%y: = neg(%x)"), "t.ir:3:7: error: expected a type such as f32[2,3], found '='"},
      {"a bad dtype", around("%y: f16[2] = input()"),
       "t.ir:3:7: error: unknown element type 'f16'; expected f32, f64, i32, i64 or bool"},
      {"a type without dimensions", around("%y: f32 = input()"),
       "t.ir:3:11: error: expected '[' and the dimensions after the element type, found '='"},
      {"dimensions without a comma", around("%y: f32[2 3] = input()"),
       "t.ir:3:13: error: expected ',' or ']' in the dimensions, found number 3"},
      {"a name as a dimension", around("%y: f32[n] = input()"), "t.ir:3:11: error: expected a dimension, found 'n'"},
      {"a trailing comma in dimensions", around("%y: f32[2,] = input()"), "t.ir:3:13: error: expected a dimension, found ']'"},
      {"rank 9", around("%y: f32[1,1,1,1,1,1,1,1,1] = input()"), "t.ir:3:27: error: types have at most 8 dimensions"},
      {"a zero dimension", around("%y: f32[2,0] = input()"),
       "t.ir:3:7: error: dimension 1 of f32[2,0] is 0: dimensions must be at least 1"},
      {"a negative dimension", around("%y: f32[-1] = input()"),
       "t.ir:3:7: error: dimension 0 of f32[-1] is -1: dimensions must be at least 1"},
      {"an overflowing element count", around("%y: f32[4294967296,4294967296] = input()"),
       "t.ir:3:7: error: f32[4294967296,4294967296] has more elements than fit in 64 bits"},
      {"an overflowing byte size", around("%y: f64[2305843009213693952] = input()"),
       "t.ir:3:7: error: f64[2305843009213693952] has 2305843009213693952 elements, too many bytes for a 64-bit size"},
      {"a result named twice", around("%a: f32[1,3], %a: f32[1,3] = split(%x, axis=0, sizes=[1, 1])"),
       "t.ir:3:17: error: '%a' is named twice"},
      {"a name already defined", around("%x: f32[2,3] = neg(%x)"), "t.ir:3:3: error: the name '%x' is already defined"},
      {"a node without '='", around("%y: f32[2,3] neg(%x)"), "t.ir:3:16: error: expected '=' after the result types, found 'neg'"},
      {"a number for an op", around("%y: f32[2,3] = 3"), "t.ir:3:18: error: expected an op name, found number 3"},
      {"an unknown op", around("%y: f32[2,3] = expp(%x)"), "t.ir:3:18: error: unknown op 'expp'; did you mean 'exp'?"},
      {"an unknown op with no near name", around("%y: f32[2,3] = frobnicate(%x)"), "t.ir:3:18: error: unknown op 'frobnicate'"},
      {"an op without '('", around("%y: f32[2,3] = neg %x"), "t.ir:3:22: error: expected '(' after the op name, found '%x'"},
      {"arguments without a comma", around("%y: f32[2,3] = add(%x %x)"),
       "t.ir:3:25: error: expected ',' or ')' in the argument list, found '%x'"},
      {"a trailing comma in arguments", around("%y: f32[2,3] = neg(%x,)"),
       "t.ir:3:25: error: expected an operand or an attribute, found ')'"},
      {"a number as an argument", around("%y: f32[2,3] = neg(3)"),
       "t.ir:3:22: error: expected an operand or an attribute, found number 3"},
      {"an operand after an attribute", around("%y: f32[2,3] = leaky_relu(alpha=0.1, %x)"),
       "t.ir:3:40: error: operands must come before attributes"},
      {"an attribute without '='", around("%y: f32[2,3] = leaky_relu(%x, alpha 0.1)"),
       "t.ir:3:39: error: expected '=' after the attribute name, found number 0.1"},
      {"a truncated argument list", "graph g {\n  %x: f32[2,3] = input()\n  %y: f32[2,3] = neg(%x",
       "t.ir:3:24: error: expected ',' or ')' in the argument list, found end of file"},
      {"too few operands", around("%y: f32[2,3] = add(%x)"), "t.ir:3:18: error: add: expects 2 operands, got 1"},
      {"too many operands", around("%y: f32[2,3] = neg(%x, %x)"), "t.ir:3:18: error: neg: expects 1 operand, got 2"},
      {"an unknown attribute, with a suggestion", around("%y: f32[2,3] = leaky_relu(%x, alpah=0.1)"),
       "t.ir:3:33: error: leaky_relu: unknown attribute 'alpah'; did you mean 'alpha'?"},
      {"an unknown attribute next to the one it resembles", around("%y: f32[2,3] = softmax(%x, axis=0, axs=1)"),
       "t.ir:3:38: error: softmax: unknown attribute 'axs'; did you mean 'axis'?"},
      {"an attribute given twice", around("%y: f32[2,3] = softmax(%x, axis=0, axis=1)"),
       "t.ir:3:38: error: softmax: attribute 'axis' given twice"},
      {"an attribute of the wrong kind", around("%y: f32[2,3] = softmax(%x, axis=\"last\")"),
       "t.ir:3:30: error: softmax: attribute 'axis' must be int, got \"last\""},
      {"a string outside its choices", around("%y: f32[2,3] = gelu(%x, approximate=\"fast\")"),
       "t.ir:3:27: error: gelu: attribute 'approximate' is \"fast\"; expected one of: none, tanh"},
      {"a missing required attribute", around("%y: f32[2] = argmax(%x)"), "t.ir:3:16: error: argmax: missing attribute 'axis' (int)"},
      {"attributes on an op without any", around("%y: f32[2,3] = relu(%x, alpha=1)"),
       "t.ir:3:27: error: relu: takes no attributes, got 'alpha'"},
      {"a loc without '('", around("%y: f32[2,3] = neg(%x) loc"), "t.ir:4:1: error: expected '(' after 'loc', found '}'"},
      {"a loc without a file", around("%y: f32[2,3] = neg(%x) loc(3:4)"),
       "t.ir:3:30: error: expected the file name in quotes, found number 3"},
      {"a loc without ':'", around("%y: f32[2,3] = neg(%x) loc(\"m\" 3)"),
       "t.ir:3:34: error: expected ':' in the location, found number 3"},
      {"a loc at line 0", around("%y: f32[2,3] = neg(%x) loc(\"m\":0:1)"), "t.ir:3:34: error: expected a positive line number"},
      {"a loc at a negative column", around("%y: f32[2,3] = neg(%x) loc(\"m\":1:-1)"),
       "t.ir:3:36: error: expected a column number (0 or more)"},
      {"a loc not closed", around("%y: f32[2,3] = neg(%x) loc(\"m\":1:1"), "t.ir:4:1: error: expected ')' to close the location, found '}'"},
      {"a lone '%'", around("output o = % x"), "t.ir:3:14: error: expected a value name after '%'"},
      {"an unexpected character", around("$"), "t.ir:3:3: error: unexpected character '$'"},
      {"a lone '/'", around("/ x"), "t.ir:3:3: error: unexpected character '/'"},
      {"a control byte", around("\x01"), "t.ir:3:3: error: unexpected byte 0x01"},
      {"a high byte", "\xef\xbb\xbfgraph g {}", "t.ir:1:1: error: unexpected byte 0xef"},
      {"a sign without digits", around("attr a = -x"), "t.ir:3:12: error: expected a number"},
      {"an exponent without digits", around("attr a = 1e"), "t.ir:3:12: error: expected digits in the exponent"},
      {"a letter after a number", around("attr a = 3x"), "t.ir:3:12: error: unexpected character 'x' after a number"},
      {"a float out of range", around("attr a = 1e999"), "t.ir:3:12: error: number 1e999 is out of range"},
      {"an integer out of range", around("attr a = 99999999999999999999"),
       "t.ir:3:12: error: integer 99999999999999999999 does not fit in 64 bits"},
      {"an integer dimension out of range", around("%y: f32[99999999999999999999] = input()"),
       "t.ir:3:11: error: integer 99999999999999999999 does not fit in 64 bits"},
      {"an unclosed string on its line", around("attr a = \"abc"), "t.ir:3:12: error: string is not closed on its line"},
      {"an unclosed string at the end", "graph g {\n  attr a = \"abc", "t.ir:2:12: error: string is not closed"},
      {"an unknown escape", around("attr a = \"a\\qb\""), "t.ir:3:12: error: unknown escape in string"},
      {"a list of strings", around("attr a = [\"s\"]"), "t.ir:3:13: error: lists hold numbers only; found a string"},
      {"a list without a comma", around("attr a = [1 2]"), "t.ir:3:15: error: expected ',' or ']' in the list, found number 2"},
      {"an unknown word as a value", around("attr a = maybe"), "t.ir:3:12: error: expected a value, found 'maybe'"},
  };
  for (const Row& r : rows) {
    INFO(r.what << "\n" << r.text);
    CHECK(first_error(r.text) == r.want);
  }
}

TEST_CASE("a syntax error renders the line with a caret under the column", "[parser][errors]") {
  Diagnostics diags;
  CHECK_FALSE(parse_ir(around("%y: f32[2,3] = expp(%x)"), "t.ir", diags));
  CHECK(diags.render() ==
        "t.ir:3:18: error: unknown op 'expp'; did you mean 'exp'?\n"
        "    3 |   %y: f32[2,3] = expp(%x)\n"
        "      |                  ^\n");
  CHECK(diags.error_count() == 1);
}

// ------------------------------------------------------------------ random round trip

namespace {

/// Builds random valid graphs: every op of the table with random valid shapes and attributes.
class RandomGraph {
 public:
  RandomGraph(Graph& g, uint64_t seed) : b_(g), g_(g), rng_(seed) {}

  void build(int nodes) {
    if (coin()) g_.set_attr("batch", int64_t(between(1, 512)));
    if (coin()) g_.set_attr("train.lr", awkward_double());
    if (coin()) g_.set_attr("note", random_string());
    if (coin()) g_.set_attr("dtype", pick<DType>({DType::f32, DType::f64, DType::i32, DType::i64, DType::b8}));
    if (coin()) g_.set_attr("list", Floats{awkward_double(), awkward_double()});
    for (int i = 0; i < nodes; ++i) {
      b_.set_loc(coin() ? Loc{} : Loc{random_string(), int(between(1, 1000)), int(between(0, 200))});
      const OpInfo& info = all_ops()[between(0, static_cast<int64_t>(all_ops().size()) - 1)];
      make(info.op);
      made.insert(info.op);
    }
    finish();
  }

  std::set<Op> made;

 private:
  // ---- random numbers
  int64_t between(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng_); }
  bool coin() { return between(0, 1) == 1; }
  template <class T>
  T pick(std::vector<T> v) { return v[between(0, static_cast<int64_t>(v.size()) - 1)]; }
  double awkward_double() {
    switch (between(0, 3)) {
      case 0: return pick<double>({0.1, 1.0 / 3, -0.0, 1e-300, 5e-324, 1e22, 2.5, -7.0, 1e-05});
      case 1: return static_cast<double>(between(-1000, 1000));
      case 2: {
        double d = std::bit_cast<double>(static_cast<uint64_t>(between(0, INT64_MAX)) * 2 + coin());
        return std::isfinite(d) ? d : 0.5;
      }
      default: return std::uniform_real_distribution<double>(-10, 10)(rng_);
    }
  }
  std::string random_string() {
    std::string s;
    for (int64_t n = between(0, 8); n > 0; --n) s += static_cast<char>(between(0, 255));
    return s;
  }
  std::string opt_name() { return coin() ? fmt::format("v{}.{}", counter_++, between(0, 9)) : std::string(); }
  DType float_type() { return coin() ? DType::f32 : DType::f64; }
  DType int_type() { return coin() ? DType::i32 : DType::i64; }
  Dims dims(int64_t min_rank, int64_t max_rank, int64_t max_dim = 5) {
    Dims d(between(min_rank, max_rank));
    for (auto& x : d) x = between(1, max_dim);
    return d;
  }
  int64_t axis_in(size_t rank) {  // a valid axis, positive or negative
    int64_t a = between(0, static_cast<int64_t>(rank) - 1);
    return coin() ? a : a - static_cast<int64_t>(rank);
  }

  // ---- values: reuse an earlier value of the wanted kind, or make a new input
  Value* input(Type t) { return b_.input(fmt::format("in{}", counter_++), t); }
  Value* value(std::function<bool(const Type&)> ok, std::function<Type()> make_type) {
    std::vector<Value*> fits;
    for (const auto& n : g_.nodes)
      for (const auto& r : n->results)
        if (ok(r->type)) fits.push_back(r.get());
    if (!fits.empty() && coin()) return pick(fits);
    return input(make_type());
  }
  Value* float_value(int64_t min_rank = 0, int64_t max_rank = 4) {
    return value([&](const Type& t) { return is_float(t.dtype) && t.rank() >= size_t(min_rank) && t.rank() <= size_t(max_rank); },
                 [&] { return Type{float_type(), dims(min_rank, max_rank)}; });
  }
  Value* numeric_value() {
    return value([](const Type& t) { return t.dtype != DType::b8; },
                 [&] { return Type{pick<DType>({DType::f32, DType::f64, DType::i32, DType::i64}), dims(0, 4)}; });
  }
  // A shape that broadcasts to `d`: leading axes dropped, some axes set to 1.
  Dims broadcastable(const Dims& d) {
    Dims out(d.begin() + between(0, static_cast<int64_t>(d.size())), d.end());
    for (auto& x : out)
      if (coin()) x = 1;
    return out;
  }

  Value* one(Op op, std::vector<Value*> operands, NamedAttrs attrs = {}) {
    return make_node(op, std::move(operands), std::move(attrs))[0];
  }
  std::vector<Value*> make_node(Op op, std::vector<Value*> operands, NamedAttrs attrs, std::vector<Type> declared = {}) {
    std::vector<std::string> names;
    if (std::string n = opt_name(); !n.empty() && declared.size() <= 1 && op != Op::split && op != Op::batch_norm &&
        op != Op::attention && op != Op::attention_grad)  // several results
      names.push_back(n);
    auto r = b_.try_create(op, operands, attrs, declared, names);
    INFO(op_info(op).name);
    REQUIRE(r.error == "");
    return r.values;
  }
  // A scan with a carry, a per-step input along a random axis and an invariant; its body's
  // first input has the carry's outer name (nested bodies: tests/golden/ir/ok_scan.ir).
  void scan() {
    Value* carry = float_value(0, 3);
    Type slice{carry->type.dtype, dims(0, 2)}, stacked = slice;
    int64_t length = between(1, 4), axis = between(0, static_cast<int64_t>(slice.rank()));
    stacked.dims.insert(stacked.dims.begin() + axis, length);
    Value* xs = value([&](const Type& t) { return t == stacked; }, [&] { return stacked; });
    Value* w = numeric_value();
    auto body = std::make_shared<Graph>("body");
    RandomGraph inner(*body, rng_());
    inner.counter_ = counter_;  // the body's names must not repeat the carry's, which it takes as an input's
    Value* h = inner.b_.input(carry->name, carry->type);
    Value* x = inner.b_.input(carry->name + "_x", slice);
    inner.b_.input(carry->name + "_w", w->type);
    Value* y = inner.one(coin() ? Op::neg : Op::exp, {x});
    inner.b_.output("h", inner.one(Op::tanh, {h}));
    inner.b_.output("y", y);
    NamedAttrs a{{"num_carries", int64_t{1}}, {"num_xs", int64_t{1}}, {"length", length}, {"axis", axis}};
    if (coin()) a.push_back({"reverse", true});
    auto r = b_.try_create(Op::scan, {carry, xs, w}, a, {}, {}, body);
    REQUIRE(r.error == "");
  }

  NamedAttrs reduction() { return {{"reduction", Attr(pick<std::string>({"mean", "sum", "none"}))}}; }
  Ints pair(int64_t lo, int64_t hi) { return {between(lo, hi), between(lo, hi)}; }

  void make(Op op) {
    const OpInfo& info = op_info(op);
    switch (op) {
      case Op::input: input({pick<DType>({DType::f32, DType::f64, DType::i32, DType::i64, DType::b8}), dims(0, 4)}); return;
      case Op::parameter: {
        Type t{float_type(), dims(0, 4)};
        NamedAttrs a;
        std::vector<std::string> inits{"zeros", "ones", "constant", "uniform", "normal"};
        if (t.rank() >= 2)
          inits.insert(inits.end(), {"xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal"});
        std::string init = pick(inits);
        a.push_back({"init", init});
        if (init == "uniform") {
          double lo = awkward_double();
          a.push_back({"low", lo});
          a.push_back({"high", lo < 0 ? 0.5 : lo * 2 + 1});
        }
        if (init == "normal") a.push_back({"std", std::abs(awkward_double())});
        if (init == "constant") a.push_back({"value", awkward_double()});
        if (init.starts_with("kaiming")) {
          a.push_back({"a", awkward_double()});
          a.push_back({"mode", Attr(pick<std::string>({"fan_in", "fan_out"}))});
          a.push_back({"nonlinearity", Attr(pick<std::string>({"linear", "relu", "leaky_relu", "tanh", "sigmoid"}))});
        }
        if (coin()) a.push_back({"trainable", coin()});
        params_.push_back(b_.parameter(fmt::format("p{}", counter_++), t, a));
        return;
      }
      case Op::constant: {
        Type t{pick<DType>({DType::f32, DType::f64, DType::i32, DType::i64, DType::b8}), dims(0, 3, 3)};
        Floats v(coin() ? 1 : *checked_numel(t.dims));
        for (auto& x : v)
          x = t.dtype == DType::b8 ? between(0, 1) : is_int(t.dtype) ? between(-1000000, 1000000) : awkward_double();
        make_node(op, {}, {{"value", v}}, {t});
        return;
      }
      case Op::iota: {
        Type t{pick<DType>({DType::f32, DType::i32, DType::i64}), dims(1, 3)};
        make_node(op, {}, {{"axis", axis_in(t.rank())}}, {t});
        return;
      }
      case Op::random_uniform:
      case Op::random_normal: {
        std::vector<Value*> key;
        if (coin()) key.push_back(input({DType::i64, {}}));
        NamedAttrs a{{"seed", between(0, 1 << 20)}};
        if (op == Op::random_normal) a.push_back({"std", std::abs(awkward_double())});
        else a.push_back({"low", -std::abs(awkward_double()) - 1});
        make_node(op, key, a, {{float_type(), dims(0, 3)}});
        return;
      }
      case Op::cast: one(op, {numeric_value()}, {{"to", pick<DType>({DType::f32, DType::f64, DType::i32, DType::i64, DType::b8})}}); return;
      case Op::leaky_relu: one(op, {float_value()}, {{"alpha", awkward_double()}}); return;
      case Op::gelu: one(op, {float_value()}, {{"approximate", Attr(pick<std::string>({"none", "tanh"}))}}); return;
      case Op::select: {
        Value* a = float_value();
        Value* c = input({DType::b8, broadcastable(a->type.dims)});
        Value* o = input({a->type.dtype, broadcastable(a->type.dims)});
        one(op, coin() ? std::vector<Value*>{c, a, o} : std::vector<Value*>{c, o, a});
        return;
      }
      case Op::argmax: {
        Value* x = numeric_value();
        if (x->type.rank() == 0) x = input({DType::f32, dims(1, 3)});
        one(op, {x}, {{"axis", axis_in(x->type.rank())}, {"keepdims", coin()}});
        return;
      }
      case Op::matmul: {
        int64_t m = between(1, 5), k = between(1, 5), n = between(1, 5);
        bool ta = coin(), tb = coin();
        Dims batch = dims(0, 2, 3);
        DType d = float_type();
        Dims a = broadcastable(batch), bb = broadcastable(batch);
        a.push_back(ta ? k : m);
        a.push_back(ta ? m : k);
        bb.push_back(tb ? n : k);
        bb.push_back(tb ? k : n);
        one(op, {input({d, a}), input({d, bb})}, {{"transpose_a", ta}, {"transpose_b", tb}});
        return;
      }
      case Op::conv2d:
      case Op::conv_transpose2d: {
        int64_t g = between(1, 3), cin = g * between(1, 2), cpg = between(1, 2);
        Ints k = pair(1, 3), s = pair(1, 3), d = pair(1, 2), p = pair(0, 2);
        DType dt = float_type();
        bool tr = op == Op::conv_transpose2d;
        Dims in{between(1, 2), cin, 0, 0};
        for (int i = 0; i < 2; ++i) in[2 + i] = d[i] * (k[i] - 1) + 1 + between(0, 4);
        NamedAttrs a{{"stride", s}, {"padding", p}, {"dilation", d}, {"groups", g}};
        Type w = tr ? Type{dt, {cin, cpg, k[0], k[1]}} : Type{dt, {g * cpg, cin / g, k[0], k[1]}};
        if (tr) {
          Ints op_pad{between(0, std::max(s[0], d[0]) - 1), between(0, std::max(s[1], d[1]) - 1)};
          a.push_back({"output_padding", op_pad});
          // Keep the output positive: (in-1)s - 2p + d(k-1) + op + 1 >= 1.
          for (int i = 0; i < 2; ++i) p[i] = std::min(p[i], ((in[2 + i] - 1) * s[i] + d[i] * (k[i] - 1)) / 2);
          a[1] = {"padding", p};
        }
        std::vector<Value*> ops{input({dt, in}), input(w)};
        if (coin()) ops.push_back(input({dt, {g * cpg}}));  // bias: one per output channel
        one(op, ops, a);
        return;
      }
      case Op::conv2d_weight_grad: {
        int64_t g = between(1, 3), cin = g * between(1, 2), cout = g * between(1, 2);
        Ints k = pair(1, 3), s = pair(1, 3), d = pair(1, 2), p = pair(0, 2);
        DType dt = float_type();
        Dims in{between(1, 2), cin, 0, 0}, dy{in[0], cout, 0, 0};
        for (int i = 0; i < 2; ++i) {
          in[2 + i] = d[i] * (k[i] - 1) + 1 + between(0, 4);
          dy[2 + i] = (in[2 + i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) / s[i] + 1;
        }
        one(op, {input({dt, in}), input({dt, dy})}, {{"kernel", k}, {"stride", s}, {"padding", p}, {"dilation", d}, {"groups", g}});
        return;
      }
      case Op::max_pool2d:
      case Op::max_pool2d_grad:
      case Op::avg_pool2d: {
        bool max = op != Op::avg_pool2d;
        Ints k = pair(1, 4), d = max ? pair(1, 2) : Ints{1, 1};
        Ints p{between(0, k[0] / 2), between(0, k[1] / 2)};
        Dims in{between(1, 2), between(1, 3), 0, 0};
        for (int i = 0; i < 2; ++i) in[2 + i] = d[i] * (k[i] - 1) + 1 + between(0, 5);
        NamedAttrs a{{"kernel", k}, {"padding", p}, {"ceil_mode", coin()}};
        if (coin()) a.push_back({"stride", pair(1, 3)});
        if (max) a.push_back({"dilation", d});
        else a.push_back({"count_include_pad", coin()});
        Value* x = input({float_type(), in});
        if (op != Op::max_pool2d_grad) {
          one(op, {x}, a);
          return;
        }
        // dy: the pool's result itself, or another value of its type
        Value* y = one(Op::max_pool2d, {x}, a);
        one(op, {x, coin() ? y : input(y->type)}, a);
        return;
      }
      case Op::global_avg_pool: one(op, {float_value(4, 4)}); return;
      case Op::scan: scan(); return;
      case Op::attention:
      case Op::attention_grad: {
        DType t = float_type();
        Dims batch = dims(0, 2);
        int64_t q = between(1, 5), k = between(1, 5), d = between(1, 4), dv = between(1, 4);
        bool causal = coin();
        if (causal) k = q;
        auto rows = [&](int64_t n, int64_t w) {
          Dims r = batch;
          r.push_back(n), r.push_back(w);
          return input({t, r});
        };
        NamedAttrs a{{"scale", std::abs(awkward_double()) + 0.1}, {"causal", causal}};
        std::vector<Value*> xs{rows(q, d), rows(k, d), rows(k, dv)};
        if (op == Op::attention_grad) {
          Dims lse = batch;
          lse.push_back(q);
          xs.push_back(input({t, lse}));
          xs.push_back(rows(q, dv));
        }
        make_node(op, xs, a);
        return;
      }
      case Op::batch_norm: {
        Value* x = float_value(2, 4);
        Type c{x->type.dtype, {x->type.dims[1]}};
        make_node(op, {x, input(c), input(c), input(c), input(c)}, {{"eps", 1e-3}, {"training", coin()}});
        return;
      }
      case Op::layer_norm: {
        Value* x = float_value(1, 4);
        int64_t k = between(1, static_cast<int64_t>(x->type.rank()));
        std::vector<Value*> ops{x};
        if (coin()) {
          Type n{x->type.dtype, Dims(x->type.dims.end() - k, x->type.dims.end())};
          ops.push_back(input(n));
          ops.push_back(input(n));
        }
        one(op, ops, {{"normalized_dims", k}, {"eps", std::abs(awkward_double()) + 1e-9}});
        return;
      }
      case Op::dropout: {
        std::vector<Value*> ops{float_value()};
        if (coin()) ops.push_back(input({DType::i64, {}}));
        one(op, ops, {{"p", std::uniform_real_distribution<double>(0, 0.99)(rng_)}, {"training", coin()}, {"seed", between(0, 99)}});
        return;
      }
      case Op::softmax:
      case Op::log_softmax: {
        Value* x = float_value(1, 4);
        one(op, {x}, {{"axis", axis_in(x->type.rank())}});
        return;
      }
      case Op::embedding:
        one(op, {input({float_type(), {between(1, 50), between(1, 8)}}), input({int_type(), dims(0, 3)})});
        return;
      case Op::embedding_grad: {
        Dims ids = dims(0, 3), dy = ids;
        dy.push_back(between(1, 8));
        one(op, {input({float_type(), dy}), input({int_type(), ids})}, {{"num_embeddings", between(1, 50)}});
        return;
      }
      case Op::one_hot:
        one(op, {input({int_type(), dims(0, 3)})}, {{"num_classes", between(1, 10)}, {"dtype", pick<DType>({DType::f32, DType::i64})}});
        return;
      case Op::reshape: {
        Value* x = numeric_value();
        Dims d = x->type.dims;
        std::shuffle(d.begin(), d.end(), rng_);
        if (d.size() >= 2 && coin()) {  // merge two axes
          d[0] *= d[1];
          d.erase(d.begin() + 1);
        }
        if (!d.empty() && coin()) d[between(0, static_cast<int64_t>(d.size()) - 1)] = -1;
        one(op, {x}, {{"shape", Ints(d)}});
        return;
      }
      case Op::transpose: {
        Value* x = numeric_value();
        Ints perm(x->type.rank());
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), rng_);
        for (auto& p : perm)
          if (coin()) p -= static_cast<int64_t>(perm.size());
        one(op, {x}, {{"perm", perm}});
        return;
      }
      case Op::broadcast_to: {
        Dims target = dims(0, 4);
        one(op, {input({float_type(), broadcastable(target)})}, {{"shape", Ints(target)}});
        return;
      }
      case Op::concat: {
        Type t{pick<DType>({DType::f32, DType::i64}), dims(1, 3)};
        int64_t axis = axis_in(t.rank());
        std::vector<Value*> ops;
        for (int64_t n = between(1, 3); n > 0; --n) {
          t.dims[axis < 0 ? axis + static_cast<int64_t>(t.rank()) : axis] = between(1, 4);
          ops.push_back(input(t));
        }
        one(op, ops, {{"axis", axis}});
        return;
      }
      case Op::slice: {
        Value* x = numeric_value();
        if (x->type.rank() == 0) x = input({DType::f32, dims(1, 3)});
        Ints axes, starts, ends, steps;
        for (size_t a = 0; a < x->type.rank(); ++a) {
          if (coin()) continue;
          int64_t dim = x->type.dims[a];
          int64_t s = between(0, dim - 1), e = between(s + 1, dim);
          axes.push_back(coin() ? int64_t(a) : int64_t(a) - int64_t(x->type.rank()));
          starts.push_back(coin() ? s : s - dim);
          ends.push_back(coin() || e == dim ? e : e - dim);
          steps.push_back(between(1, 3));
        }
        NamedAttrs a{{"axes", axes}, {"starts", starts}, {"ends", ends}};
        if (coin()) a.push_back({"steps", steps});
        one(op, {x}, a);
        return;
      }
      case Op::pad: {
        Value* x = numeric_value();
        Ints pads(2 * x->type.rank());
        for (auto& p : pads) p = between(0, 2);
        one(op, {x}, {{"pads", pads}, {"value", awkward_double()}});
        return;
      }
      case Op::flatten: {
        Value* x = float_value(1, 4);
        int64_t r = static_cast<int64_t>(x->type.rank());
        int64_t s = between(0, r - 1), e = between(s, r - 1);
        one(op, {x}, {{"start_dim", coin() ? s : s - r}, {"end_dim", coin() ? e : e - r}});
        return;
      }
      case Op::split: {
        Value* x = float_value(1, 3);
        int64_t axis = axis_in(x->type.rank());
        int64_t left = x->type.dims[axis < 0 ? axis + static_cast<int64_t>(x->type.rank()) : axis];
        Ints sizes;
        while (left > 0) {
          sizes.push_back(between(1, left));
          left -= sizes.back();
        }
        make_node(op, {x}, {{"axis", axis}, {"sizes", sizes}});
        return;
      }
      case Op::mse:
      case Op::huber:
      case Op::bce_with_logits: {
        Type t{float_type(), dims(0, 3)};
        NamedAttrs a = reduction();
        if (op == Op::huber) a.push_back({"delta", std::abs(awkward_double()) + 0.5});
        one(op, {input(t), input(t)}, a);
        return;
      }
      case Op::cross_entropy:
      case Op::nll: {
        int64_t n = between(1, 6);
        NamedAttrs a = reduction();
        a.push_back({"ignore_index", between(-100, 5)});
        if (op == Op::cross_entropy) a.push_back({"label_smoothing", std::uniform_real_distribution<double>(0, 1)(rng_)});
        one(op, {input({float_type(), {n, between(1, 10)}}), input({int_type(), {n}})}, a);
        return;
      }
      default: break;
    }
    // The rest are elementwise or reductions over one float or numeric operand, or binary.
    if (info.min_operands == 2 && info.has(Elementwise)) {
      Value* a = info.shape_rule == op_info(Op::pow).shape_rule || op == Op::div ? float_value() : numeric_value();
      Value* o = input({a->type.dtype, broadcastable(a->type.dims)});
      one(op, coin() ? std::vector<Value*>{a, o} : std::vector<Value*>{o, a});
      return;
    }
    bool float_only = info.shape_rule == op_info(Op::exp).shape_rule || op == Op::mean || info.has(Loss);
    Value* x = float_only ? float_value() : numeric_value();
    if (info.has(Reduction)) {
      Ints axes;
      for (size_t a = 0; a < x->type.rank(); ++a)
        if (coin()) axes.push_back(coin() ? int64_t(a) : int64_t(a) - int64_t(x->type.rank()));
      std::shuffle(axes.begin(), axes.end(), rng_);
      one(op, {x}, {{"axes", axes}, {"keepdims", coin()}});
      return;
    }
    one(op, {x});
  }

  void finish() {
    int n = 0;
    for (const auto& node : g_.nodes)
      if (coin() || &node == &g_.nodes.back()) b_.output(fmt::format("out{}", n++), node->result());
    for (Value* p : params_)
      if (coin()) b_.update(p, one(Op::neg, {p}));
  }

  Builder b_;
  Graph& g_;
  std::mt19937_64 rng_;
  std::vector<Value*> params_;
  int counter_ = 0;
};

bool same_attr(const Attr& a, const Attr& b) {  // floats compared by their bits
  if (a.index() != b.index()) return false;
  if (const double* x = std::get_if<double>(&a)) return bits(*x) == bits(std::get<double>(b));
  if (const Floats* x = std::get_if<Floats>(&a)) {
    const Floats& y = std::get<Floats>(b);
    return std::equal(x->begin(), x->end(), y.begin(), y.end(), [](double p, double q) { return bits(p) == bits(q); });
  }
  return a == b;
}

bool same_attrs(const NamedAttrs& a, const NamedAttrs& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const auto& x, const auto& y) { return x.first == y.first && same_attr(x.second, y.second); });
}

/// The first difference between two graphs, compared field by field (not through the printer,
/// so a printer that drops something consistently is still caught); "" when they are the same.
std::string difference(const Graph& a, const Graph& b) {
  if (a.name != b.name || !same_attrs(a.attrs, b.attrs)) return "graph name or attributes";
  if (a.nodes.size() != b.nodes.size()) return "node count";
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    const Node &x = *a.nodes[i], &y = *b.nodes[i];
    std::string at = fmt::format("node {} ({})", i, op_info(x.op).name);
    if (x.op != y.op || x.loc != y.loc) return at + ": op or loc";
    if (!std::equal(x.attrs.begin(), x.attrs.end(), y.attrs.begin(), y.attrs.end(), same_attr)) return at + ": attributes";
    if (x.operands.size() != y.operands.size() || x.results.size() != y.results.size()) return at + ": arity";
    for (size_t k = 0; k < x.operands.size(); ++k)
      if (x.operands[k]->name != y.operands[k]->name) return at + ": operands";
    for (size_t k = 0; k < x.results.size(); ++k)
      if (x.result(k)->name != y.result(k)->name || x.result(k)->type != y.result(k)->type) return at + ": results";
    if (!x.body != !y.body) return at + ": body";
    if (x.body)
      if (std::string d = difference(*x.body, *y.body); !d.empty()) return at + ": body: " + d;
  }
  auto same_output = [](const Output& x, const Output& y) { return x.name == y.name && x.value->name == y.value->name && x.loc == y.loc; };
  auto same_update = [](const Update& x, const Update& y) {
    return x.target->name == y.target->name && x.value->name == y.value->name && x.loc == y.loc;
  };
  if (!std::equal(a.outputs.begin(), a.outputs.end(), b.outputs.begin(), b.outputs.end(), same_output)) return "outputs";
  if (!std::equal(a.updates.begin(), a.updates.end(), b.updates.begin(), b.updates.end(), same_update)) return "updates";
  return {};
}

}  // namespace

TEST_CASE("random graphs over the whole op table print, parse and print identically", "[parser][roundtrip]") {
  std::set<Op> covered;
  for (uint64_t seed = 1; seed <= 500; ++seed) {
    Graph g(fmt::format("random{}", seed));
    RandomGraph gen(g, seed);
    gen.build(30);
    covered.insert(gen.made.begin(), gen.made.end());
    Diagnostics built;
    INFO("seed " << seed);
    INFO(built.render());
    REQUIRE(verify(g, built));
    std::string text = print(g);
    INFO(text);
    Diagnostics diags;
    SourceMap map;
    auto back = parse_ir(text, "random.ir", diags, &map);
    INFO(diags.render());
    REQUIRE(back);
    REQUIRE(verify(*back, diags, &map));
    REQUIRE(print(*back) == text);
    REQUIRE(difference(g, *back) == "");
    auto copy = g.clone();
    REQUIRE(print(*copy) == text);
  }
  for (const OpInfo& info : all_ops()) {
    INFO(info.name);
    CHECK(covered.count(info.op));
  }
}

TEST_CASE("attributes equal to their default are omitted, -0.0 is not 0.0", "[parser][roundtrip]") {
  Graph g("g");
  Builder b(g);
  Value* x = b.input("x", {DType::f32, {2}});
  b.create(Op::pad, {x}, {{"pads", Ints{0, 0}}, {"value", 0.0}}, {}, {"zero"});
  b.create(Op::pad, {x}, {{"pads", Ints{0, 0}}, {"value", -0.0}}, {}, {"negzero"});
  b.create(Op::leaky_relu, {x}, {{"alpha", 0.01}}, {}, {"dflt"});
  std::string text = print(g);
  CHECK(text ==
        "graph g {\n"
        "  %x: f32[2] = input()\n"
        "  %zero: f32[2] = pad(%x, pads=[0, 0])\n"
        "  %negzero: f32[2] = pad(%x, pads=[0, 0], value=-0.0)\n"
        "  %dflt: f32[2] = leaky_relu(%x)\n"
        "}\n");
  Diagnostics diags;
  auto back = parse_ir(text, "t.ir", diags);
  REQUIRE(back);
  CHECK(std::signbit(back->find("negzero")->def->f("value")));
}

TEST_CASE("a quoted line keeps UTF-8, shows other bytes as '?', and keeps the caret aligned", "[parser][errors]") {
  Diagnostics diags;
  diags.add_source("f", "\t\"\xc3\xa9\" \xff\x01 $\nnext line\n");
  diags.error({"f", 1, 10}, "here");
  CHECK(diags.render() ==
        "f:1:10: error: here\n"
        "    1 | \t\"\xc3\xa9\" ?? $\n"
        "      | \t       ^\n");
}

TEST_CASE("every truncation of a file gives one error, and mutated bytes never crash", "[parser][errors]") {
  for (uint64_t seed : {11, 12}) {
    Graph g("g");
    RandomGraph(g, seed).build(12);
    const std::string text = print(g);
    INFO(text);
    for (size_t n = 0; n + 2 < text.size(); ++n) {  // text ends in "}\n": shorter prefixes are truncated
      Diagnostics diags;
      CHECK_FALSE(parse_ir(text.substr(0, n), "t.ir", diags));
      CHECK(diags.error_count() == 1);
    }
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 2000; ++i) {
      std::string bad = text;
      for (int k = 0; k < 3; ++k) bad[rng() % bad.size()] = static_cast<char>(rng() % 256);
      Diagnostics diags;
      SourceMap map;
      auto parsed = parse_ir(bad, "t.ir", diags, &map);
      bool ok = parsed && verify(*parsed, diags, &map);
      CHECK(ok != diags.has_errors());
      if (ok) CHECK(parse_ir(print(*parsed), "again.ir", diags));
    }
  }
}
