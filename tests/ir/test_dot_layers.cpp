// The layer pictures of ir/dot.h: which box each node falls in (by its loc's scope, its phase and,
// for the optimizer's nodes, the parameters they serve), and one layer drawn in full.

#include <catch2/catch.hpp>
#include <stdexcept>

#include "ir/dot.h"
#include "ir/parser.h"

using namespace stag;

namespace {

// Two layers' forward and "gradients", an update each, and a value both updates share.
const char* kStep = R"(graph t {
  %x: f32[2,4] = input() loc("t.stag":1:1)
  %a.w: f32[4,4] = parameter() loc("t.stag":2:1 in "a")
  %b.w: f32[4,4] = parameter() loc("t.stag":3:1 in "b")
  %0: f32[2,4] = matmul(%x, %a.w) loc("t.stag":5:1 in "a")
  %1: f32[2,4] = matmul(%0, %b.w) loc("t.stag":6:1 in "b")
  %loss: f32[] = sum(%1) loc("t.stag":7:1)
  %gb: f32[4,4] = mul(%b.w, %b.w) loc("t.stag":6:1 in "b")
  %ga: f32[4,4] = mul(%a.w, %a.w) loc("t.stag":5:1 in "a")
  %shared: f32[4,4] = add(%ga, %gb)
  %ua: f32[4,4] = sub(%a.w, %shared)
  %ub: f32[4,4] = sub(%b.w, %shared)
  output loss = %loss
  update %a.w = %ua
  update %b.w = %ub
}
)";

std::unique_ptr<Graph> step_graph() {
  Diagnostics diags;
  auto g = parse_ir(kStep, "t.ir", diags);
  INFO(diags.render());
  REQUIRE(g);
  return g;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("the layer picture has a box for each layer and phase, the shared update in the optimizer's", "[dot]") {
  auto g = step_graph();
  std::string dot = to_dot_layers(*g);
  for (const char* box : {R"("a\n2 nodes, 1 parameter")", R"("b\n2 nodes, 1 parameter")", R"("a backward\n1 node")",
                          R"("b backward\n1 node")", R"("a update\n1 node")", R"("b update\n1 node")",
                          R"("optimizer\n1 node")", R"("sum at 7:1\n1 node")", R"("input %x\n1 node")"})
    CHECK(has(dot, box));
  CHECK(dot_layers(*g) == std::vector<std::string>{"a", "b", "optimizer"});
}

TEST_CASE("the layer picture counts each kernel in the box holding most of its nodes, with its share", "[dot]") {
  auto g = step_graph();
  // k2 copies a's update into the parameter: it counts in a's update box, not in a's forward.
  std::vector<DotCluster> kernels{{"kernel k0", {"0"}, 0.25},
                                  {"kernel k1", {"ga", "shared", "ua"}, 0.5},
                                  {"kernel k2", {"a.w"}, 0},
                                  {"kernel k3", {"gb"}, 0}};
  std::string dot = to_dot_layers(*g, kernels);
  CHECK(has(dot, R"("a\n2 nodes, 1 parameter\n1 kernel, 25.0% of the time")"));
  CHECK(has(dot, R"("a backward\n1 node\n1 kernel, 50.0% of the time")"));
  CHECK(has(dot, R"("a update\n1 node\n1 kernel")"));
  CHECK(has(dot, R"("b backward\n1 node\n1 kernel")"));
  CHECK(has(dot, R"("optimizer\n1 node")"));
}

TEST_CASE("one layer is drawn in full, its border as notes", "[dot]") {
  auto g = step_graph();
  std::string a = to_dot_scope(*g, "a");
  CHECK(has(a, R"("matmul\n%0: f32[2,4]")"));
  CHECK(has(a, R"("mul\n%ga: f32[4,4]")"));
  CHECK_FALSE(has(a, "%1: f32"));
  CHECK_FALSE(has(a, "%ua: f32"));
  CHECK(has(a, R"("to b forward\n%0")"));
  CHECK(has(a, R"("to optimizer\n%ga")"));
  std::string update = to_dot_scope(*g, "a:update");
  CHECK(has(update, R"("sub\n%ua: f32[4,4]")"));
  CHECK(has(update, R"("from optimizer\n%shared")"));
  CHECK(has(to_dot_scope(*g, "optimizer"), R"("add\n%shared: f32[4,4]")"));
  CHECK_THROWS_WITH(to_dot_scope(*g, "c"), Catch::Contains("its layers: a, b, optimizer"));
  CHECK_THROWS_AS(to_dot_scope(*g, "a:sideways"), std::invalid_argument);
}
