// Autodiff through scan: RNN, LSTM and GRU cells as scan bodies, forward and reversed, along
// axis 0 and axis 1, with loop invariants. The gradient graph is checked against central
// finite differences (f64 reference) and against the gradient of the unrolled form; compiled
// (the body's kernels in one loop), forward and gradient are checked against the reference.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/scan.h"
#include "compiler/jit/jit_model.h"
#include "compiler/lower/lower.h"
#include "tests/autodiff/check.h"

using namespace stag;
using namespace stag::test;

namespace {

constexpr int64_t B = 2, I = 3, H = 4, kT = 5;

struct Cell {
  std::string name;
  int64_t gates;                    ///< columns of W and U: H times the number of gates
  std::vector<std::string> carries; ///< carry names; the first is h
  std::string body;                 ///< the body's nodes after its inputs; defines %h1 (and %c1)
};

const Cell kRnn{"rnn", H, {"h"}, R"(
    %xw: f64[2,4] = matmul(%x, %w)
    %hu: f64[2,4] = matmul(%h, %u)
    %s: f64[2,4] = add(%xw, %hu)
    %sb: f64[2,4] = add(%s, %bias)
    %h1: f64[2,4] = tanh(%sb)
)"};

// PyTorch's gate order: input, forget, cell, output.
const Cell kLstm{"lstm", 4 * H, {"h", "c"}, R"(
    %xw: f64[2,16] = matmul(%x, %w)
    %hu: f64[2,16] = matmul(%h, %u)
    %s: f64[2,16] = add(%xw, %hu)
    %z: f64[2,16] = add(%s, %bias)
    %zi: f64[2,4], %zf: f64[2,4], %zg: f64[2,4], %zo: f64[2,4] = split(%z, axis=1, sizes=[4, 4, 4, 4])
    %i: f64[2,4] = sigmoid(%zi)
    %f: f64[2,4] = sigmoid(%zf)
    %g: f64[2,4] = tanh(%zg)
    %o: f64[2,4] = sigmoid(%zo)
    %fc: f64[2,4] = mul(%f, %c)
    %ig: f64[2,4] = mul(%i, %g)
    %c1: f64[2,4] = add(%fc, %ig)
    %tc: f64[2,4] = tanh(%c1)
    %h1: f64[2,4] = mul(%o, %tc)
)"};

// PyTorch's GRU: r, z, n gates; n = tanh(x Wn + r * (h Un + b_n)); h' = (1 - z) n + z h.
const Cell kGru{"gru", 3 * H, {"h"}, R"(
    %xw: f64[2,12] = matmul(%x, %w)
    %hu: f64[2,12] = matmul(%h, %u)
    %hb: f64[2,12] = add(%hu, %bias)
    %xr: f64[2,4], %xz: f64[2,4], %xn: f64[2,4] = split(%xw, axis=1, sizes=[4, 4, 4])
    %hr: f64[2,4], %hz: f64[2,4], %hn: f64[2,4] = split(%hb, axis=1, sizes=[4, 4, 4])
    %ar: f64[2,4] = add(%xr, %hr)
    %r: f64[2,4] = sigmoid(%ar)
    %az: f64[2,4] = add(%xz, %hz)
    %z: f64[2,4] = sigmoid(%az)
    %rh: f64[2,4] = mul(%r, %hn)
    %an: f64[2,4] = add(%xn, %rh)
    %n: f64[2,4] = tanh(%an)
    %one: f64[] = constant(value=[1.0])
    %omz: f64[2,4] = sub(%one, %z)
    %a: f64[2,4] = mul(%omz, %n)
    %b2: f64[2,4] = mul(%z, %h)
    %h1: f64[2,4] = add(%a, %b2)
)"};

std::string dims(std::initializer_list<int64_t> d) { return fmt::format("f64[{}]", fmt::join(d, ",")); }

// The whole graph: parameters (initial carries, the sequence, W, U, b), the scan, and a loss
// reading the final carries and every step's h.
std::string graph_text(const Cell& cell, bool reverse, int64_t axis, int64_t T = kT) {
  std::string xs = axis == 0 ? dims({T, B, I}) : dims({B, T, I}), ys = axis == 0 ? dims({T, B, H}) : dims({B, T, H});
  std::string w = dims({I, cell.gates}), u = dims({H, cell.gates}), b = dims({cell.gates}), h = dims({B, H});
  std::string out = "graph g {\n", carry_ops, carry_results, carry_inputs, carry_outputs;
  for (const auto& c : cell.carries) {
    out += fmt::format("  %{}0: {} = parameter()\n", c, h);
    carry_ops += fmt::format("%{}0, ", c);
    carry_results += fmt::format("%{}T: {}, ", c, h);
    carry_inputs += fmt::format("    %{}: {} = input()\n", c, h);
    carry_outputs += fmt::format("    output {} = %{}1\n", c, c);
  }
  out += fmt::format("  %xs: {} = parameter()\n  %W: {} = parameter()\n  %U: {} = parameter()\n  %b: {} = parameter()\n", xs, w, u, b);
  out += fmt::format("  {}%hs: {} = scan({}%xs, %W, %U, %b, num_carries={}, num_xs=1, length={}, axis={}, reverse={}) {{\n",
                     carry_results, ys, carry_ops, cell.carries.size(), T, axis, reverse);
  out += carry_inputs + fmt::format("    %x: {} = input()\n    %w: {} = input()\n    %u: {} = input()\n    %bias: {} = input()",
                                    dims({B, I}), w, u, b);
  out += cell.body + carry_outputs + "    output y = %h1\n  }\n";
  out += fmt::format("  %sq: {} = square(%hs)\n  %l1: f64[] = sum(%sq)\n  %l2: f64[] = sum(%{}T)\n", ys, cell.carries.back());
  out += "  %loss: f64[] = add(%l1, %l2)\n  output loss = %loss\n  output hs = %hs\n}\n";
  return out;
}

std::unique_ptr<Graph> parse_ok(const std::string& text) {
  Diagnostics diags;
  SourceMap map;
  auto g = parse_ir(text, "scan.ir", diags, &map);
  bool ok = g && verify(*g, diags, &map);
  INFO(text << diags.render());
  REQUIRE(ok);
  return g;
}

std::map<std::string, RefTensor> random_feeds(const Graph& g, uint64_t seed) {
  Rng rng(seed);
  std::map<std::string, RefTensor> feeds;
  for (const auto& n : g.nodes) {
    if (n->op != Op::parameter) continue;
    RefTensor t = RefTensor::filled(n->result()->type, 0);
    for (double& v : t.data) v = 0.5 * rng.normal();
    feeds[n->result()->name] = t;
  }
  return feeds;
}

std::vector<std::string> params_of(const Graph& g) {
  std::vector<std::string> names;
  for (const auto& n : g.nodes)
    if (n->op == Op::parameter) names.push_back(n->result()->name);
  return names;
}

void check_equal(const RefResult& a, const RefResult& b, const std::string& label) {
  for (const auto& [name, want] : b.outputs) {
    const RefTensor& got = a.outputs.at(name);
    REQUIRE(got.data.size() == want.data.size());
    double worst = 0;
    for (size_t i = 0; i < got.data.size(); ++i) worst = std::max(worst, std::fabs(got.data[i] - want.data[i]));
    INFO(fmt::format("{}: output {}: largest difference {}", label, name, worst));
    CHECK(worst <= 1e-12);
  }
}

}  // namespace

TEST_CASE("scan gradients of RNN, LSTM and GRU cells match finite differences and the unrolled form", "[autodiff][scan]") {
  for (const Cell* cell : {&kRnn, &kLstm, &kGru})
    for (bool reverse : {false, true})
      for (int64_t axis : {0, 1}) {
        std::string label = fmt::format("{} reverse={} axis={}", cell->name, reverse, axis);
        INFO(label);
        auto g = parse_ok(graph_text(*cell, reverse, axis));
        auto unrolled = unroll_scans(*g);
        auto feeds = random_feeds(*g, 19 + static_cast<uint64_t>(axis) + 2 * reverse);
        check_equal(interpret(*g, feeds), interpret(*unrolled, feeds), label + " forward");
        auto ad = differentiate_ok(*g);
        auto ad_unrolled = differentiate_ok(*unrolled);
        check_equal(interpret(*ad, feeds), interpret(*ad_unrolled, feeds), label + " gradients");
        check_fd(*g, *ad, feeds, params_of(*g), label);
      }
}

TEST_CASE("the gradient of a scan is a reverse scan that reads back as text", "[autodiff][scan]") {
  auto g = parse_ok(graph_text(kRnn, false, 0));
  auto ad = differentiate_ok(*g);
  int scans = 0;
  for (const auto& n : ad->nodes)
    if (n->op == Op::scan) {
      ++scans;
      if (scans == 3) CHECK(n->b("reverse"));
    }
  CHECK(scans == 3);  // the forward, the forward again stacking the carries, the backward
  std::string text = print(*ad);
  auto back = parse_ok(text);
  CHECK(print(*back) == text);
}

TEST_CASE("a scan whose body reads no invariant and no per-step input still differentiates", "[autodiff][scan]") {
  // h' = tanh(h) * 0.5 five times: only the initial carry has a gradient.
  auto g = parse_ok(R"(graph g {
  %h0: f64[3] = parameter()
  %hT: f64[3] = scan(%h0, num_carries=1, num_xs=0, length=5) {
    %h: f64[3] = input()
    %t: f64[3] = tanh(%h)
    %k: f64[] = constant(value=[0.5])
    %h1: f64[3] = mul(%t, %k)
    output h = %h1
  }
  %loss: f64[] = sum(%hT)
  output loss = %loss
}
)");
  auto ad = differentiate_ok(*g);
  auto feeds = random_feeds(*g, 7);
  check_fd(*g, *ad, feeds, {"h0"}, "carry only");
  check_equal(interpret(*ad, feeds), interpret(*differentiate_ok(*unroll_scans(*g)), feeds), "carry only");
}

TEST_CASE("compiled scans and their gradients match the reference, forward and reversed, along both axes", "[autodiff][scan][codegen]") {
  for (const Cell* cell : {&kRnn, &kLstm, &kGru})
    for (bool reverse : {false, true})
      for (int64_t axis : {0, 1}) {
        std::string label = fmt::format("{} reverse={} axis={} compiled", cell->name, reverse, axis);
        INFO(label);
        auto g = parse_ok(graph_text(*cell, reverse, axis));
        auto feeds = random_feeds(*g, 29 + static_cast<uint64_t>(axis) + 2 * reverse);
        check_compiled(*g, feeds, label + " forward");
        check_compiled(*differentiate_ok(*g), feeds, label + " gradients");
      }
}

TEST_CASE("a compiled scan is one loop: its kernel count does not grow with the length", "[autodiff][scan][codegen]") {
  for (const Cell* cell : {&kRnn, &kLstm, &kGru}) {
    INFO(cell->name);
    auto count = [&](int64_t T) {
      auto ad = differentiate_ok(*parse_ok(graph_text(*cell, false, 0, T)));
      CompiledModel c = compile_jit(*ad, {.opt_level = 1, .profile = false, .passes = {}});
      const auto& f = c.program.functions.back();
      CHECK(f.loops.size() == 2);  // the forward stacking its carries (merge-scans), the backward
      for (const auto& l : f.loops) CHECK(l.trips == T);
      return f.kernels.size();
    };
    CHECK(count(3) == count(40));
  }
}

TEST_CASE("compiled scan: carries that swap, a carry as a per-step output, an input passed through", "[autodiff][scan][codegen]") {
  auto g = parse_ok(R"(graph g {
  %a0: f64[3] = parameter()
  %b0: f64[3] = parameter()
  %xs: f64[4,3] = parameter()
  %aT: f64[3], %bT: f64[3], %ya: f64[4,3], %yx: f64[4,3], %ys: f64[4,3] = scan(%a0, %b0, %xs, num_carries=2, num_xs=1, length=4) {
    %a: f64[3] = input()
    %b: f64[3] = input()
    %x: f64[3] = input()
    %s: f64[3] = add(%a, %x)
    output a = %b
    output b = %s
    output ya = %a
    output yx = %x
    output ys = %s
  }
  %l1: f64[] = sum(%ya)
  %l2: f64[] = sum(%yx)
  %l3: f64[] = sum(%ys)
  %l4: f64[] = sum(%aT)
  %l12: f64[] = add(%l1, %l2)
  %l34: f64[] = add(%l3, %l4)
  %loss: f64[] = add(%l12, %l34)
  output loss = %loss
  output aT = %aT
  output bT = %bT
  output ya = %ya
  output yx = %yx
  output ys = %ys
}
)");
  auto feeds = random_feeds(*g, 41);
  check_compiled(*g, feeds, "swap forward");
  check_compiled(*differentiate_ok(*g), feeds, "swap gradients");
}

// A reshape of the invariant fuses away; the body still sees the invariant's own shape (this
// slice once read the [1, 8, 4] buffer with [8, 4]'s axes and crashed the lowering).
TEST_CASE("compiled scan: an invariant that is a reshape, sliced in the body", "[autodiff][scan][codegen]") {
  auto g = parse_ok(R"(graph g {
  %h0: f64[2,4] = parameter()
  %xs: f64[5,2,4] = parameter()
  %u3: f64[1,8,4] = parameter()
  %u: f64[8,4] = reshape(%u3, shape=[8,4])
  %hT: f64[2,4], %hs: f64[5,2,4] = scan(%h0, %xs, %u, num_carries=1, num_xs=1, length=5) {
    %h: f64[2,4] = input()
    %x: f64[2,4] = input()
    %w: f64[8,4] = input()
    %top: f64[4,4] = slice(%w, axes=[0], starts=[4], ends=[8])
    %hw: f64[2,4] = matmul(%h, %top, transpose_b=true)
    %s: f64[2,4] = add(%x, %hw)
    %h1: f64[2,4] = tanh(%s)
    output h = %h1
    output y = %h1
  }
  %loss: f64[] = sum(%hs)
  output loss = %loss
  output hT = %hT
}
)");
  auto feeds = random_feeds(*g, 43);
  check_compiled(*g, feeds, "sliced reshape forward");
  check_compiled(*differentiate_ok(*g), feeds, "sliced reshape gradients");
}

// A scan in a scan's body is a loop inside a loop: the inner one reads its per-step input through
// a view that moves with the inner step, of a slice that moves with the outer one, restarts its
// carry from the outer carry at every outer step, and stacks into a per-step output of the outer
// loop; reversed inside a forward loop. Its gradient nests the same way, reversed.
TEST_CASE("a scan nested in a scan's body compiles: forward and gradients equal the reference", "[autodiff][scan][codegen]") {
  auto g = parse_ok(R"(graph g {
  %h0: f64[2] = parameter()
  %xs: f64[4,3,2] = parameter()
  %w: f64[2,2] = parameter()
  %hT: f64[2], %rows: f64[4,3,2] = scan(%h0, %xs, %w, num_carries=1, num_xs=1, length=4) {
    %h: f64[2] = input()
    %x: f64[3,2] = input()
    %u: f64[2,2] = input()
    %i: f64[2], %steps: f64[3,2] = scan(%h, %x, %u, num_carries=1, num_xs=1, length=3, reverse=true) {
      %k: f64[2] = input()
      %v: f64[2] = input()
      %m: f64[2,2] = input()
      %k2: f64[1,2] = reshape(%k, shape=[1, 2])
      %km: f64[1,2] = matmul(%k2, %m)
      %k1: f64[2] = reshape(%km, shape=[2])
      %a: f64[2] = add(%k1, %v)
      %t: f64[2] = tanh(%a)
      output k = %t
      output y = %t
    }
    output h = %i
    output r = %steps
  }
  %sq: f64[4,3,2] = square(%rows)
  %l1: f64[] = sum(%sq)
  %l2: f64[] = sum(%hT)
  %loss: f64[] = add(%l1, %l2)
  output loss = %loss
  output hT = %hT
  output rows = %rows
}
)");
  auto feeds = random_feeds(*g, 47);
  check_compiled(*g, feeds, "nested forward");
  check_compiled(*differentiate_ok(*g), feeds, "nested gradients");
}
