// The pass's contract: which values get gradients, summing over uses, dead branches, frozen
// parameters, tie-breaking of max-like ops, diagnostics, and golden text of small graphs.

#include <filesystem>
#include <fstream>
#include <sstream>

#include "ir/parser.h"
#include "ir/printer.h"
#include "tests/autodiff/check.h"
#include "tests/util.h"

using namespace stag;
using namespace stag::test;

namespace {

std::unique_ptr<Graph> parse(const std::string& text) {
  Diagnostics diags;
  auto g = parse_ir(text, "test.ir", diags);
  INFO(diags.render());
  REQUIRE(g);
  REQUIRE(verify(*g, diags));
  return g;
}

RefTensor tensor(Dims d, std::vector<double> v) { return RefTensor({DType::f32, std::move(d)}, std::move(v)); }

std::vector<double> grad_of(const Graph& ad, const std::map<std::string, RefTensor>& feeds, const std::string& p) {
  return interpret(ad, feeds).outputs.at(grad_output_name(p)).data;
}

bool has_output(const Graph& g, const std::string& name) {
  for (const auto& o : g.outputs)
    if (o.name == name) return true;
  return false;
}

}  // namespace

TEST_CASE("a value used several times sums its gradients", "[autodiff]") {
  auto g = parse(R"(graph g {
  %x: f32[3] = parameter()
  %a: f32[3] = mul(%x, %x)
  %b: f32[3] = exp(%x)
  %c: f32[3] = add(%a, %b)
  %d: f32[3] = mul(%c, %x)
  %l: f32[] = sum(%d)
  output loss = %l
})");
  auto ad = differentiate_ok(*g);
  std::map<std::string, RefTensor> feeds{{"x", tensor({3}, {0.5, -1.25, 2})}};
  check_fd(*g, *ad, feeds, {"x"}, "multi-use");
  auto d = grad_of(*ad, feeds, "x");
  double x = 0.5;  // d/dx (x^3 + x e^x) = 3x^2 + e^x (1 + x)
  CHECK(d[0] == Approx(3 * x * x + std::exp(x) * (1 + x)));
}

TEST_CASE("frozen parameters, integers and dead branches get no backward work", "[autodiff]") {
  auto g = parse(R"(graph g {
  %w: f32[4,3] = parameter()
  %frozen: f32[3] = parameter(trainable=false)
  %unused: f32[2] = parameter()
  %ids: i64[5] = input()
  %e: f32[5,3] = embedding(%w, %ids)
  %side: f32[5,3] = exp(%e)
  %s: f32[5,3] = mul(%e, %frozen)
  %l: f32[] = sum(%s)
  %u: f32[] = sum(%unused)
  output loss = %l
  output side = %side
  output u = %u
})");
  auto ad = differentiate_ok(*g);
  CHECK(has_output(*ad, "grad.w"));
  CHECK(has_output(*ad, "grad.unused"));
  CHECK_FALSE(has_output(*ad, "grad.frozen"));
  // No backward node reads the side branch, the unused parameter or the frozen one's gradient.
  size_t forward = g->nodes.size();
  for (size_t i = forward; i < ad->nodes.size(); ++i)
    for (const Value* v : ad->nodes[i]->operands) {
      INFO(print(*ad));
      CHECK(v->name != "side");
      CHECK(v->name != "u");
      CHECK(v->name != "unused");
    }
  std::map<std::string, RefTensor> feeds{
      {"w", tensor({4, 3}, std::vector<double>(12, 0.5))},
      {"frozen", tensor({3}, {1, 2, 3})},
      {"unused", tensor({2}, {1, 1})},
      {"ids", RefTensor({DType::i64, {5}}, {0, 2, 2, 3, 0})}};
  auto dw = grad_of(*ad, feeds, "w");
  // Row r of w gets frozen's values once per occurrence of r in ids (scatter-add).
  CHECK(dw == std::vector<double>{2, 4, 6, 0, 0, 0, 2, 4, 6, 1, 2, 3});
  CHECK(grad_of(*ad, feeds, "unused") == std::vector<double>{0, 0});
}

TEST_CASE("ties: maximum splits in halves, max shares equally, max_pool2d picks the first", "[autodiff]") {
  auto g = parse(R"(graph g {
  %a: f32[3] = parameter()
  %b: f32[3] = parameter()
  %x: f32[1,1,2,2] = parameter()
  %m: f32[3] = maximum(%a, %b)
  %r: f32[] = max(%a)
  %p: f32[1,1,1,1] = max_pool2d(%x, kernel=[2, 2])
  %s: f32[] = sum(%m)
  %q: f32[] = sum(%p)
  %t: f32[] = add(%s, %r)
  %l: f32[] = add(%t, %q)
  output loss = %l
})");
  auto ad = differentiate_ok(*g);
  std::map<std::string, RefTensor> feeds{{"a", tensor({3}, {1, 2, 2})},
                                         {"b", tensor({3}, {1, 3, 0})},
                                         {"x", tensor({1, 1, 2, 2}, {0.5, 1, 1, 0.25})}};
  // maximum: a tie gives each side half; max over a: the two 2s share its gradient.
  CHECK(grad_of(*ad, feeds, "a") == std::vector<double>{0.5, 0.5, 1.5});
  CHECK(grad_of(*ad, feeds, "b") == std::vector<double>{0.5, 1, 0});
  CHECK(grad_of(*ad, feeds, "x") == std::vector<double>{0, 1, 0, 0});
}

TEST_CASE("max_pool2d_grad's gradient in dy takes each window's tap: ties, NaN, -inf, padding, overlap", "[autodiff]") {
  // Windows over the padding hold only -inf (the first tap inside takes), NaNs (the last
  // NaN takes), or ties (the first takes); stride 1 makes them overlap. The loss is linear in
  // dy and finite, so finite differences are exact even with NaN in x.
  auto g = parse(R"(graph g {
  %x: f32[1,1,3,3] = constant(value=[-inf, -inf, 5, -inf, nan, 2, 1, nan, 2])
  %dy: f32[1,1,4,4] = parameter()
  %u: f32[1,1,3,3] = constant(value=[1, 2, 3, 4, 5, 6, 7, 8, 9])
  %gx: f32[1,1,3,3] = max_pool2d_grad(%x, %dy, kernel=[2, 2], stride=[1, 1], padding=[1, 1])
  %w: f32[1,1,3,3] = mul(%gx, %u)
  %l: f32[] = sum(%w)
  output loss = %l
})");
  auto ad = differentiate_ok(*g);
  std::vector<double> dy(16);
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = 0.25 * static_cast<double>(i) - 1;
  std::map<std::string, RefTensor> feeds{{"dy", tensor({1, 1, 4, 4}, dy)}};
  check_fd(*g, *ad, feeds, {"dy"}, "max_pool2d_grad");
  // u at each window's tap, row by row: windows (oh, ow) cover rows oh-1..oh, columns ow-1..ow.
  CHECK(grad_of(*ad, feeds, "dy") == std::vector<double>{1, 1, 3, 3, 1, 5, 5, 3, 7, 8, 8, 6, 7, 8, 8, 9});
  check_compiled(*ad, feeds, "max_pool2d_grad");
}

TEST_CASE("autodiff reports user errors as diagnostics", "[autodiff]") {
  auto g = parse(R"(graph g {
  %x: f32[3] = parameter()
  %y: f32[3] = exp(%x)
  output out = %y
})");
  Diagnostics d1;
  CHECK_FALSE(differentiate(*g, "loss", d1));
  CHECK(d1.render().find("no output named 'loss'") != std::string::npos);
  Diagnostics d2;
  CHECK_FALSE(differentiate(*g, "out", d2));
  CHECK(d2.render().find("must be a float scalar") != std::string::npos);
}

// tests/autodiff/golden/NAME.ir differentiated must print NAME.expected (STAG_UPDATE_GOLDEN=1
// rewrites the expected files).
TEST_CASE("golden text of differentiated graphs", "[autodiff][golden]") {
  auto dir = std::filesystem::path(STAG_SOURCE_DIR) / "tests/autodiff/golden";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".ir") continue;
    ++n;
    auto g = parse(slurp(e.path()));
    auto ad = differentiate_ok(*g);
    auto expected = e.path();
    expected.replace_extension(".expected");
    std::string got = print(*ad);
    if (std::getenv("STAG_UPDATE_GOLDEN")) std::ofstream(expected) << got;
    INFO(e.path().filename().string());
    CHECK(got == slurp(expected));
  }
  CHECK(n > 0);
}

namespace {
autodiff::GradRule rules_without_exp(Op op) { return op == Op::exp ? nullptr : autodiff::gradient_rule(op); }
}  // namespace

TEST_CASE("a missing gradient rule is a diagnostic naming the op and the node", "[autodiff]") {
  auto g = parse(R"(graph g {
  %x: f32[3] = parameter()
  %y: f32[3] = exp(%x)
  %l: f32[] = sum(%y)
  output loss = %l
})");
  Diagnostics diags;
  CHECK_FALSE(autodiff::differentiate_with(*g, "loss", diags, rules_without_exp));
  CHECK(diags.error_count() == 1);
  CHECK(diags.render().find("no gradient rule for op 'exp' (node %y)") != std::string::npos);
}
