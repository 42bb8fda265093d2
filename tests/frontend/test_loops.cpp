// `for` loops in the model language: one scan op each, carries inferred from the outer locals
// the body rebinds, per-step slices along an axis, `stack` along an axis, reversed loops and
// range indices; the numbers checked with the reference interpreter against sums written out by
// hand; errors with file, line and column.

#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include "helpers.h"
#include "ir/random.h"
#include "ir/reference.h"
#include "ir/scan.h"

using namespace stag;
using namespace stag::test;

namespace {

// x: [B=2, T=5, F=3]
const std::string kHead = "model m {\n  batch 2\n  input x: f32[B, 5, 3]\n";

std::string model(const std::string& decls, const std::string& forward) {
  return kHead + decls + "  forward {\n" + forward + "  }\n}\n";
}

Compiled ok(const std::string& text, LoadOptions opts = {}) {
  auto c = compile(text, opts);
  INFO(c.errors);
  REQUIRE(c.graph);
  return c;
}

void fails_with(const std::string& text, const std::string& message) {
  auto c = compile(text);
  INFO(c.errors);
  CHECK_FALSE(c.graph);
  CHECK(c.errors.find(message) != std::string::npos);
}

// x[b, t, f] = 1 + b + 10 t + 100 f: every element tells where it is.
RefTensor x_feed() {
  RefTensor x = RefTensor::filled({DType::f32, {2, 5, 3}}, 0);
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 5; ++t)
      for (int f = 0; f < 3; ++f) x.data[static_cast<size_t>((b * 5 + t) * 3 + f)] = 1 + b + 10 * t + 100 * f;
  return x;
}

std::map<std::string, RefTensor> run(const Graph& g) {
  RefResult r = interpret(g, {{"x", x_feed()}});
  return r.outputs;
}


}  // namespace

TEST_CASE("a for loop is one scan: carries, per-step slices, stacked outputs", "[language][loops]") {
  auto c = ok(model("", R"(
    s = constant(f32[B, 3], value=[0])
    for xt in x along 1 {
      s = s + xt
      stack sums = s
    }
    output total = s
    output sums
)"));
  REQUIRE(count_op(*c.graph, Op::scan) == 1);
  const Node* scan = find_op(*c.graph, Op::scan);
  CHECK(scan->i("num_carries") == 1);
  CHECK(scan->i("num_xs") == 1);
  CHECK(scan->i("length") == 5);
  CHECK(scan->body->inputs()[0]->name == "s");
  CHECK(scan->body->inputs()[1]->name == "xt");
  // The per-step input is sliced along axis 1; `stack` defaults to the loop's axis.
  CHECK(c.graph->outputs[1].value->type == Type{DType::f32, {2, 5, 3}});
  auto out = run(*c.graph);
  const RefTensor& sums = out.at("sums");
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 5; ++t)
      for (int f = 0; f < 3; ++f) {
        double want = 0;
        for (int u = 0; u <= t; ++u) want += 1 + b + 10 * u + 100 * f;
        CHECK(sums.at({b, t, f}) == want);
      }
  CHECK(out.at("total").at({1, 2}) == sums.at({1, 4, 2}));
}

TEST_CASE("a for loop under the unroll option is copies of its body with the same numbers", "[language][loops]") {
  std::string text = model("", R"(
    s = constant(f32[B, 3], value=[0])
    for xt in x along 1 {
      s = tanh(s + xt / 100)
      stack states = s
    }
    output total = s
    output states
)");
  LoadOptions unroll;
  unroll.unroll = true;
  auto looped = ok(text), unrolled = ok(text, unroll);
  CHECK(count_op(*looped.graph, Op::scan) == 1);
  CHECK(count_op(*unrolled.graph, Op::scan) == 0);
  CHECK(count_op(*unrolled.graph, Op::tanh) == 5);
  auto a = run(*looped.graph), b = run(*unrolled.graph);
  for (const char* name : {"total", "states"}) {
    INFO(name);
    CHECK(a.at(name).type == b.at(name).type);
    CHECK(a.at(name).data == b.at(name).data);
  }
}

TEST_CASE("reversed loops run from the last step and stacked values line up with their steps", "[language][loops]") {
  auto c = ok(model("", R"(
    s = constant(f32[B, 3], value=[0])
    for xt in reversed(x) along 1, t in reversed(range(5)) {
      s = s + xt * cast(t, to=f32)
      stack suffix = s along 0
    }
    output suffix
)"));
  const Node* scan = find_op(*c.graph, Op::scan);
  CHECK(scan->b("reverse"));
  CHECK(scan->i("num_xs") == 2);
  const RefTensor suffix = run(*c.graph).at("suffix");
  REQUIRE(suffix.type == Type{DType::f32, {5, 2, 3}});
  for (int t = 0; t < 5; ++t) {
    double want = 0;
    for (int u = t; u < 5; ++u) want += (1 + 1 + 10 * u + 100 * 2) * u;
    CHECK(suffix.at({t, 1, 2}) == want);
  }
}

TEST_CASE("a loop reads outer values whole and leaves loop-invariant work outside", "[language][loops]") {
  auto c = ok(model("  layer fc = Linear(3, 4)\n", R"(
    h = constant(f32[B, 4], value=[0])
    w2 = fc.weight @ transpose(fc.weight, perm=[1, 0])
    for xt in x along 1 {
      h = tanh(fc(xt) + h @ w2 / 10)
    }
    output h
)"));
  const Node* scan = find_op(*c.graph, Op::scan);
  REQUIRE(scan);
  // w2's product and transpose do not depend on a step: computed once, read as an invariant.
  CHECK(count_op(*scan->body, Op::transpose) == 0);
  CHECK(count_op(*c.graph, Op::transpose) >= 2);  // x to time-major, and w2's
  for (const auto& n : scan->body->nodes) CHECK(n->op != Op::parameter);
  CHECK(scan->operands.size() > 2);  // h, x's steps, then the weights it reads
}

TEST_CASE("an index loop over range, without sequences", "[language][loops]") {
  auto c = ok(model("", R"(
    p = constant(f32[B, 3], value=[1])
    for _ in range(4) {
      p = p * 2
    }
    n = constant(f32[B, 3], value=[0])
    for t in range(2, 6) {
      n = n + cast(t, to=f32)
    }
    output p
    output n
)"));
  CHECK(count_op(*c.graph, Op::scan) == 2);
  auto out = run(*c.graph);
  CHECK(out.at("p").at({1, 2}) == 16);
  CHECK(out.at("n").at({0, 0}) == 2 + 3 + 4 + 5);
}

TEST_CASE("loops nest: a scan in a scan's body, run by the reference", "[language][loops]") {
  auto c = ok(model("", R"(
    s = constant(f32[B], value=[0])
    for xt in x along 1 {
      for v in xt along 1 {
        s = s + v
      }
    }
    output s
)"));
  const Node* scan = find_op(*c.graph, Op::scan);
  REQUIRE(scan);
  CHECK(count_op(*scan->body, Op::scan) == 1);
  double want = 0;
  for (int t = 0; t < 5; ++t)
    for (int f = 0; f < 3; ++f) want += 1 + 1 + 10 * t + 100 * f;
  CHECK(run(*c.graph).at("s").at({1}) == want);
}

TEST_CASE("a loop in a block, and a block called in a loop", "[language][loops]") {
  auto c = ok(R"(
block Acc(n) {
  forward(x) {
    s = constant(f32[B, n], value=[0])
    for xt in x along 1 {
      s = s + xt
    }
    return s
  }
}
block Twice() {
  forward(v) {
    return v * 2
  }
}
model m {
  batch 2
  input x: f32[B, 5, 3]
  layer acc = Acc(3)
  layer twice = Twice()
  forward {
    a = acc(x)
    for xt in x along 1 {
      a = a + twice(xt)
    }
    output a
  }
}
)");
  CHECK(count_op(*c.graph, Op::scan) == 2);
  CHECK(run(*c.graph).at("a").at({0, 0}) == 3 * (1 + 11 + 21 + 31 + 41));
}

TEST_CASE("the same loop unrolled computes the same", "[language][loops]") {
  auto c = ok(model("  layer fc = Linear(3, 3)\n", R"(
    h = constant(f32[B, 3], value=[0])
    for xt in reversed(x) along 1 {
      h = tanh(fc(xt) / 100 + h)
      stack hs = h
    }
    output hs
)"));
  auto unrolled = unroll_scans(*c.graph);
  CHECK(count_op(*unrolled, Op::scan) == 0);
  RefTensor w = RefTensor::filled({DType::f32, {3, 3}}, 0.25), b = RefTensor::filled({DType::f32, {3}}, -0.5);
  std::map<std::string, RefTensor> feeds{{"x", x_feed()}, {"fc.weight", w}, {"fc.bias", b}};
  auto a = interpret(*c.graph, feeds).outputs.at("hs"), u = interpret(*unrolled, feeds).outputs.at("hs");
  REQUIRE(a.data.size() == u.data.size());
  for (size_t i = 0; i < a.data.size(); ++i) CHECK(a.data[i] == Approx(u.data[i]).margin(1e-12));
}

// Dropout in a loop's body, in training mode: its stacked output is 0 or 2 x.
const std::string kDropoutLoop = R"(
    s = constant(f32[B, 3], value=[0])
    for xt in x along 1 {
      d = dropout(xt, p=0.5)
      s = s + d
      stack kept = d
    }
    output kept
    output s
)";

const Node* body_dropout(const Graph& g) {
  const Node* scan = find_op(g, Op::scan);
  return scan ? find_op(*scan->body, Op::dropout) : nullptr;
}

std::map<std::string, RefTensor> run_at_step(const Graph& g, int64_t step) {
  return interpret(g, {{"x", x_feed()}, {"step", RefTensor::filled({DType::i64, {}}, static_cast<double>(step))}}).outputs;
}

TEST_CASE("dropout in a loop draws a mask per step keyed by the training step and the loop step", "[language][loops]") {
  LoadOptions train;
  train.training = true;
  auto c = ok(model("", kDropoutLoop), train);
  const Node* drop = body_dropout(*c.graph);
  REQUIRE(drop);
  CHECK(find_op(*c.graph, Op::scan)->i("num_xs") == 2);  // x's steps and the step index
  // Step t of training step 3 draws the stream (seed, 3 * 5 + t): element i dropped where u < p.
  const RefTensor kept = run_at_step(*c.graph, 3).at("kept");
  const RefTensor x = x_feed();
  std::set<std::vector<bool>> masks;
  for (int t = 0; t < 5; ++t) {
    std::vector<bool> mask;
    for (int b = 0; b < 2; ++b)
      for (int f = 0; f < 3; ++f) {
        bool dropped = random_uniform01(drop->i("seed"), 3 * 5 + t, b * 3 + f) < 0.5;
        CHECK(kept.at({b, t, f}) == (dropped ? 0 : 2 * x.at({b, t, f})));
        mask.push_back(dropped);
      }
    masks.insert(mask);
  }
  CHECK(masks.size() > 1);  // not one mask repeated over the steps
  // Reproducible for a step, different for another.
  CHECK(run_at_step(*c.graph, 3).at("kept").data == kept.data);
  CHECK(run_at_step(*c.graph, 4).at("kept").data != kept.data);
}

TEST_CASE("dropout in a loop draws the same masks unrolled and nested", "[language][loops]") {
  LoadOptions train, unroll;
  train.training = true;
  unroll.training = true;
  unroll.unroll = true;
  auto looped = ok(model("", kDropoutLoop), train), unrolled = ok(model("", kDropoutLoop), unroll);
  CHECK(count_op(*unrolled.graph, Op::scan) == 0);
  CHECK(count_op(*unrolled.graph, Op::dropout) == 5);
  for (const char* name : {"kept", "s"}) {
    INFO(name);
    CHECK(run_at_step(*looped.graph, 7).at(name).data == run_at_step(*unrolled.graph, 7).at(name).data);
  }
  // A loop in a loop: step (t, u) of training step k draws the stream (seed, (k * 5 + t) * 3 + u).
  auto nested = ok(model("", R"(
    s = constant(f32[B], value=[0])
    for xt in x along 1 {
      for v in xt along 1 {
        d = dropout(v, p=0.5)
        s = s + d
        stack row = d
      }
      stack rows = row along 1
    }
    output rows
)"), train);
  const Node* inner = find_op(*find_op(*nested.graph, Op::scan)->body, Op::scan);
  REQUIRE(inner);
  const Node* drop = find_op(*inner->body, Op::dropout);
  REQUIRE(drop);
  const RefTensor rows = run_at_step(*nested.graph, 2).at("rows"), x = x_feed();
  REQUIRE(rows.type == Type{DType::f32, {2, 5, 3}});
  for (int t = 0; t < 5; ++t)
    for (int u = 0; u < 3; ++u)
      for (int b = 0; b < 2; ++b) {
        bool dropped = random_uniform01(drop->i("seed"), (2 * 5 + t) * 3 + u, b) < 0.5;
        CHECK(rows.at({b, t, u}) == (dropped ? 0 : 2 * x.at({b, t, u})));
      }
}

TEST_CASE("a loop without random draws has no step index", "[language][loops]") {
  LoadOptions train;
  train.training = true;
  auto c = ok(model("", "    s = constant(f32[B, 3], value=[0])\n    for xt in x along 1 {\n      s = s + xt\n    }\n    output s\n"), train);
  CHECK(find_op(*c.graph, Op::scan)->i("num_xs") == 1);
}

TEST_CASE("loop syntax errors name file, line and column", "[language][loops][errors]") {
  fails_with(model("", "    for xt x along 1 {\n    }\n"), "test.stag:5:12: error: expected 'in' after the loop variable 'xt'");
  fails_with(model("", "    for xt in x along 1\n    output o = x\n"),
             "test.stag:6:5: error: expected ',' and another 'NAME in SEQUENCE', or '{' to open the loop's body, found 'output'");
  fails_with(model("", "    for 3 in x {\n    }\n"), "test.stag:5:9: error: expected the loop variable's name, found number 3");
  fails_with(model("", "    stack = x\n    stack s x\n"), "test.stag:6:11: error: expected '=' after the name, found 's'");
}

TEST_CASE("loop errors: lengths, directions, carries, statements", "[language][loops][errors]") {
  const std::string h = "    h = constant(f32[B, 3], value=[0])\n";
  fails_with(model("", h + "    for xt in x along 1, t in range(4) {\n      h = h + xt\n    }\n    output h\n"),
             "6:26: error: 't' has 4 steps but 'xt' has 5: a loop's sequences are of one length");
  fails_with(model("", h + "    for xt in x along 1, t in reversed(range(5)) {\n      h = h + xt\n    }\n    output h\n"),
             "6:26: error: a loop's sequences run the same way");
  fails_with(model("", h + "    for xt in x along 1 {\n      h = sum(xt, axes=[1])\n    }\n    output h\n"),
             "error: 'h' is f32[2,3] before the loop but a tensor f32[2] after a step: a value the loop rebinds keeps its type");
  fails_with(model("", h + "    for xt in x along 1 {\n      output o = xt\n    }\n    output h\n"),
             "7:7: error: `output` cannot be inside a loop");
  fails_with(model("", h + "    stack s = h\n    output h\n"), "error: `stack` collects a loop's values, one a step: it belongs in a `for` loop's body");
  fails_with(model("", h + "    for xt in x along 1 {\n      y = xt * 2\n    }\n    output h\n"), "error: the loop changes nothing");
  fails_with(model("", "    n = 3\n    for xt in x along 1 {\n      n = 4\n    }\n    output o = x\n"),
             "7:7: error: 'n' is an integer (3) before the loop: a loop carries tensors only");
  fails_with(model("", h + "    for xt in x along 3 {\n      h = h + xt\n    }\n    output h\n"),
             "6:23: error: along: expected an axis of f32[2,5,3] from -3 to 2, got an integer (3)");
  fails_with(model("", h + "    for t in range(0) {\n      h = h + 1\n    }\n    output h\n"), "error: range(0, 0): a loop runs from 1 to");
  fails_with(model("", h + "    for t in 3 {\n      h = h + 1\n    }\n    output h\n"),
             "6:14: error: a loop runs over the slices of a tensor of rank 1 or more, or over range(N); got an integer (3)");
  fails_with(model("", h + "    for xt in x along 1 {\n      h = h + xt\n      stack h = xt\n    }\n    output h\n"),
             "error: 'h' is a value the loop carries");
  fails_with(model("", h + "    for xt in x along 1 {\n      stack s = xt along 3\n    }\n    output s\n"),
             "error: stack: the stacked value has rank 3");
}

TEST_CASE("a loop cannot update running statistics", "[language][loops][errors]") {
  LoadOptions train;
  train.training = true;
  auto c = compile(model("  layer bn = BatchNorm1d(3)\n", "    h = constant(f32[B, 3], value=[0])\n"
                                                           "    for xt in x along 1 {\n      h = h + bn(xt)\n    }\n    output h\n"), train);
  CHECK_FALSE(c.graph);
  CHECK(c.errors.find("the loop's body updates state") != std::string::npos);
}
