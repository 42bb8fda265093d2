// The scan op: its reference against a loop written out by hand (in order and reversed,
// along axis 0 and 1), against the unrolled form, and its text round trip with nested bodies.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/reference.h"
#include "ir/scan.h"
#include "ir/verifier.h"

using namespace stag;

namespace {

// h' = h * a + x, y = h' * 2 over a [2,3] sequence whose steps are its axis-`axis` slices.
std::string running_text(int64_t axis, bool reverse) {
  std::string xs = axis == 0 ? "f64[3,2]" : "f64[2,3]";
  return fmt::format(R"(graph g {{
  %h0: f64[2] = input()
  %xs: {0} = input()
  %a: f64[] = input()
  %hT: f64[2], %ys: {0} = scan(%h0, %xs, %a, num_carries=1, num_xs=1, length=3, axis={1}, reverse={2}) {{
    %h: f64[2] = input()
    %x: f64[2] = input()
    %k: f64[] = input()
    %hk: f64[2] = mul(%h, %k)
    %h1: f64[2] = add(%hk, %x)
    %two: f64[] = constant(value=[2.0])
    %y: f64[2] = mul(%h1, %two)
    output h = %h1
    output y = %y
  }}
  output hT = %hT
  output ys = %ys
}}
)", xs, axis, reverse);
}

std::unique_ptr<Graph> parse_ok(const std::string& text) {
  Diagnostics diags;
  SourceMap map;
  auto g = parse_ir(text, "scan.ir", diags, &map);
  bool ok = g && verify(*g, diags, &map);
  INFO(diags.render());
  REQUIRE(ok);
  return g;
}

}  // namespace

TEST_CASE("scan's reference runs the body once a step, in order or reversed, along either axis", "[scan][reference]") {
  for (int64_t axis : {0, 1})
    for (bool reverse : {false, true}) {
      INFO(fmt::format("axis {} reverse {}", axis, reverse));
      auto g = parse_ok(running_text(axis, reverse));
      // xs as [step][batch]: element (t, i) sits at t*2+i along axis 0, at i*3+t along axis 1.
      double x[3][2] = {{1, 2}, {3, 4}, {5, 6}};
      std::vector<double> xs(6);
      for (int t = 0; t < 3; ++t)
        for (int i = 0; i < 2; ++i) xs[axis == 0 ? t * 2 + i : i * 3 + t] = x[t][i];
      Type xt{DType::f64, axis == 0 ? Dims{3, 2} : Dims{2, 3}};
      std::map<std::string, RefTensor> feeds{{"h0", RefTensor({DType::f64, {2}}, {0.5, -1})},
                                             {"xs", RefTensor(xt, xs)},
                                             {"a", RefTensor({DType::f64, {}}, {0.9})}};
      RefResult r = interpret(*g, feeds);
      double h[2] = {0.5, -1};
      std::vector<double> ys(6);
      for (int s = 0; s < 3; ++s) {
        int t = reverse ? 2 - s : s;
        for (int i = 0; i < 2; ++i) {
          h[i] = h[i] * 0.9 + x[t][i];
          ys[axis == 0 ? t * 2 + i : i * 3 + t] = 2 * h[i];
        }
      }
      CHECK(r.outputs.at("hT").data == std::vector<double>{h[0], h[1]});
      CHECK(r.outputs.at("ys").data == ys);
      RefResult u = interpret(*unroll_scans(*g), feeds);
      CHECK(u.outputs.at("hT").data == r.outputs.at("hT").data);
      CHECK(u.outputs.at("ys").data == r.outputs.at("ys").data);
    }
}

TEST_CASE("a scan prints its body nested and reads it back", "[scan][parser]") {
  auto g = parse_ok(running_text(1, true));
  std::string text = print(*g);
  CHECK(text.find("reverse=true) {\n    %h: f64[2] = input()\n") != std::string::npos);
  CHECK(text.find("    output y = %y\n  }\n  output hT") != std::string::npos);
  auto back = parse_ok(text);
  CHECK(print(*back) == text);
  CHECK(print(*g->clone()) == text);
}

TEST_CASE("scan's shape rule names the mismatch", "[scan][verifier]") {
  auto g = parse_ok(running_text(0, false));
  Node& scan = *g->nodes[3];
  REQUIRE(scan.op == Op::scan);
  std::vector<Type> ops, results;
  for (const Value* v : scan.operands) ops.push_back(v->type);
  CHECK(infer_types(scan.info(), ops, scan.attrs, {}, results, nullptr) == "scan: needs a body in braces");
  ops[1] = {DType::f64, {4, 2}};
  CHECK(infer_types(scan.info(), ops, scan.attrs, {}, results, scan.body.get()) ==
        "scan: per-step input 0 is f64[4,2]: its dimension 0 is 4, not the length 3");
}
