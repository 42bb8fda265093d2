// Partial unrolling of scans (--scan-unroll N, the graph attribute `scan_unroll`): a scan of L
// steps along axis 0 becomes a scan of L/N steps whose body is N copies of the old one, the
// per-step inputs read as [L/N, N, ...] and the outputs stacked back to [L, ...]. N is lowered to
// the largest divisor of L not above it, so every step stays in the loop.

#include <fmt/format.h>

#include <algorithm>

#include "compiler/passes/pass.h"
#include "compiler/passes/splice.h"
#include "ir/builder.h"
#include "ir/scan.h"

namespace stag {

namespace {

int64_t factor_for(int64_t length, int64_t wanted) {
  for (int64_t u = std::min(wanted, length); u > 1; --u)
    if (length % u == 0) return u;
  return 1;
}

Dims grouped(const Dims& d, int64_t u) {
  Dims g = d;
  g[0] /= u;
  g.insert(g.begin() + 1, u);
  return g;
}

// The body of u steps: copy k of the old body handles step k of the group (u-1-k reversed).
std::shared_ptr<Graph> group_body(const Node& n, const ScanShape& s, int64_t u) {
  auto body = std::make_shared<Graph>("body");
  Builder b(*body);
  auto params = n.body->inputs();
  std::vector<Value*> ins;
  for (size_t i = 0; i < params.size(); ++i) {
    bool step = static_cast<int64_t>(i) >= s.carries && static_cast<int64_t>(i) < s.carries + s.xs;
    Type t = params[i]->type;
    if (step) t.dims.insert(t.dims.begin(), u);
    ins.push_back(b.input(params[i]->name, t));
  }
  std::vector<Value*> carries(ins.begin(), ins.begin() + s.carries);
  std::vector<std::vector<Value*>> ys(s.ys(*n.body), std::vector<Value*>(static_cast<size_t>(u)));
  for (int64_t k = 0; k < u; ++k) {
    int64_t at = s.reverse ? u - 1 - k : k;
    std::vector<Value*> args = carries;
    for (int64_t j = s.carries; j < s.carries + s.xs; ++j) {
      Value* one = b.slice({ins[static_cast<size_t>(j)]}, {{"axes", Ints{0}}, {"starts", Ints{at}}, {"ends", Ints{at + 1}}});
      args.push_back(b.reshape({one}, {{"shape", Ints(params[static_cast<size_t>(j)]->type.dims)}}));
    }
    args.insert(args.end(), ins.begin() + s.carries + s.xs, ins.end());
    auto outs = inline_body(*body, *n.body, args);
    std::copy_n(outs.begin(), s.carries, carries.begin());
    for (size_t y = 0; y < ys.size(); ++y) {
      Dims d = outs[static_cast<size_t>(s.carries) + y]->type.dims;
      d.insert(d.begin(), 1);
      ys[y][static_cast<size_t>(at)] = b.reshape({outs[static_cast<size_t>(s.carries) + y]}, {{"shape", Ints(d)}});
    }
  }
  for (size_t i = 0; i < carries.size(); ++i) b.output(n.body->outputs[i].name, carries[i]);
  for (size_t y = 0; y < ys.size(); ++y)
    b.output(n.body->outputs[static_cast<size_t>(s.carries) + y].name, u == 1 ? ys[y][0] : b.concat(ys[y], {{"axis", int64_t{0}}}));
  return body;
}

bool unroll(Graph& g, Node& n, int64_t wanted, PassCounters& c) {
  ScanShape s(n);
  int64_t u = factor_for(s.length, wanted);
  if (s.axis != 0 || u == 1) return false;
  size_t from = g.nodes.size();
  Builder b(g);
  b.set_loc(n.loc);
  std::vector<Value*> operands(n.operands);
  for (int64_t j = s.carries; j < s.carries + s.xs; ++j) {
    Value*& x = operands[static_cast<size_t>(j)];
    x = b.reshape({x}, {{"shape", Ints(grouped(x->type.dims, u))}});
  }
  NamedAttrs attrs{{"num_carries", s.carries}, {"num_xs", s.xs}, {"length", s.length / u}, {"reverse", s.reverse}};
  auto results = b.create(Op::scan, operands, attrs, {}, {}, group_body(n, s, u));
  for (size_t k = static_cast<size_t>(s.carries); k < results.size(); ++k)
    results[k] = b.reshape({results[k]}, {{"shape", Ints(n.result(k)->type.dims)}});
  splice(g, n, from, results);
  c.add("scans unrolled");
  return true;
}

}  // namespace

bool unroll_scan(Graph& g, PassCounters& c) {
  const Attr* a = g.attr("scan_unroll");
  int64_t wanted = a ? std::get<int64_t>(*a) : 1;
  if (wanted <= 1) return false;
  std::vector<Node*> scans;
  for (auto& n : g.nodes)
    if (n->op == Op::scan) scans.push_back(n.get());
  bool changed = false;
  for (Node* n : scans) changed |= unroll(g, *n, wanted, c);
  return changed;
}

}  // namespace stag
