// The gradient of scan: a reverse scan over the body's vector-Jacobian product. The backward
// needs each step's carries, so a scan that re-runs the forward stacks them first (merge-scans
// runs it in the forward's loop), with each step's products (residuals below); the backward
// recomputes the rest of the step from them. The backward carries the carries' cotangents and
// accumulates the invariants' gradients; the per-step inputs' gradients are its per-step
// outputs. Everything runs along axis 0: per-step inputs and output gradients of a scan along
// another axis are transposed there and back.

#include <fmt/format.h>

#include <algorithm>
#include <unordered_set>

#include "compiler/autodiff/autodiff.h"
#include "ir/scan.h"

namespace stag::autodiff {

namespace {

using Grads = std::vector<Value*>;

bool floating(const Value* v) { return is_float(v->type.dtype); }

// The permutation bringing `axis` to the front of a rank-`rank` tensor.
Ints to_front(int64_t axis, size_t rank) {
  Ints perm{axis};
  for (int64_t d = 0; d < static_cast<int64_t>(rank); ++d)
    if (d != axis) perm.push_back(d);
  return perm;
}
Value* front(Builder& b, Value* v, int64_t axis) {
  return axis == 0 ? v : b.transpose({v}, {{"perm", to_front(axis, v->type.rank())}});
}
Value* back(Builder& b, Value* v, int64_t axis) {
  if (axis == 0) return v;
  Ints perm(v->type.rank());
  Ints fwd = to_front(axis, v->type.rank());
  for (size_t i = 0; i < fwd.size(); ++i) perm[static_cast<size_t>(fwd[i])] = static_cast<int64_t>(i);
  return b.transpose({v}, {{"perm", perm}});
}

// Body values the forward stacks for the backward instead of the backward recomputing them:
// each step's products that depend on the step (a recurrent layer's h W^T). Recomputed they
// cost a product over every step's rows (one GEMM of T*B rows, hoist-scan); stacked, the
// forward writes them where it computes them, at their memory's cost (T times their size;
// a GRU's [B, 3H] a step). Elementwise values (gates, activations) are cheaper recomputed from
// those than stored and read back. Measured on the GRU language model: README, "Loops".
std::vector<const Value*> residuals(const Graph& body, size_t step_params) {
  auto params = body.inputs();
  std::unordered_set<const Value*> varies(params.begin(), params.begin() + static_cast<long>(step_params));
  std::vector<const Value*> out;
  for (const auto& n : body.nodes) {
    if (std::none_of(n->operands.begin(), n->operands.end(), [&](const Value* v) { return varies.count(v); })) continue;
    for (const auto& r : n->results) varies.insert(r.get());
    if (n->op == Op::matmul && floating(n->result())) out.push_back(n->result());
  }
  return out;
}

std::string residual_name(const Value* v) { return "residual." + v->name; }

// The body's vector-Jacobian product: the body with its float inputs made trainable
// parameters, one cotangent input per float output, differentiated through
// loss = sum_i sum(output_i * cotangent_i). Its sources, in order, are the body's inputs then
// the cotangents; output `grad.<input name>` is the gradient of a float input, and output
// `residual.<name>` the recomputed value of each residual.
std::unique_ptr<Graph> vjp(const Graph& body, const std::vector<const Value*>& residuals) {
  auto g = body.clone();
  g->name = "vjp";
  std::vector<Attr> trainable;
  resolve_attrs(op_info(Op::parameter), {}, trainable);
  for (auto& n : g->nodes)
    if (n->op == Op::input && floating(n->result())) n->op = Op::parameter, n->attrs = trainable;
  Builder b(*g);
  Value* loss = nullptr;
  for (const Output& o : std::vector<Output>(g->outputs)) {
    if (!floating(o.value)) continue;
    Value* ct = b.input(g->fresh_name(), o.value->type);
    Value* term = b.sum({b.mul({o.value, ct})});
    if (loss && term->type.dtype != loss->type.dtype) term = b.cast({term}, {{"to", loss->type.dtype}});
    loss = loss ? b.add({loss, term}) : term;
  }
  b.output("vjp_loss", loss);
  Diagnostics diags;
  auto ad = differentiate(*g, "vjp_loss", diags);
  if (!ad) throw BuildError(fmt::format("scan body: {}", diags.render()));
  for (const Value* r : residuals) ad->outputs.push_back({residual_name(r), ad->find(r->name), {}});
  return ad;
}

// The output of `g` named `name`, as inlined: `outs` are g's outputs in order.
Value* named(const Graph& g, const std::vector<Value*>& outs, const std::string& name) {
  for (size_t i = 0; i < g.outputs.size(); ++i)
    if (g.outputs[i].name == name) return outs[i];
  throw BuildError(fmt::format("scan gradient: the body's VJP has no output '{}'", name));
}

struct Scan {
  const Node& n;
  ScanShape s;
  std::vector<Value*> params;  ///< the body's inputs
  size_t nc, nx, nw, ny;
  std::vector<const Value*> residuals;  ///< body values the forward stacks for the backward

  explicit Scan(const Node& node)
      : n(node), s(node), params(node.body->inputs()), nc(static_cast<size_t>(s.carries)),
        nx(static_cast<size_t>(s.xs)), nw(s.invariants), ny(s.ys(*node.body)),
        residuals(stag::autodiff::residuals(*node.body, nc + nx)) {}
  Value* x(size_t j) const { return n.operands[nc + j]; }
  Value* w(size_t j) const { return n.operands[nc + nx + j]; }
};

// A scan along axis 0 built from `body`: carries, per-step inputs (already at the front), invariants.
std::vector<Value*> scan_node(Builder& b, std::shared_ptr<Graph> body, const std::vector<Value*>& operands,
                              size_t carries, size_t xs, int64_t length, bool reverse) {
  NamedAttrs attrs{{"num_carries", static_cast<int64_t>(carries)}, {"num_xs", static_cast<int64_t>(xs)},
                   {"length", length}, {"reverse", reverse}};
  return b.create(Op::scan, operands, attrs, {}, {}, std::move(body));
}

// Each step's incoming carries, then its residuals, stacked along axis 0: the forward run
// again, returning them.
std::vector<Value*> stacked_carries(GradCtx& c, const Scan& f, const std::vector<Value*>& xs) {
  auto body = std::make_shared<Graph>("body");
  Builder bb(*body);
  std::vector<Value*> ins;
  for (const Value* p : f.params) ins.push_back(bb.input(p->name, p->type));
  auto source = f.n.body->clone();
  for (const Value* r : f.residuals) source->outputs.push_back({residual_name(r), source->find(r->name), {}});
  auto outs = inline_body(*body, *source, ins);
  for (size_t i = 0; i < f.nc; ++i) bb.output(fmt::format("c{}", i), outs[i]);
  for (size_t i = 0; i < f.nc; ++i) bb.output(fmt::format("carry_in{}", i), ins[i]);
  for (size_t k = 0; k < f.residuals.size(); ++k) bb.output(residual_name(f.residuals[k]), outs[f.nc + f.ny + k]);
  std::vector<Value*> operands(f.n.operands.begin(), f.n.operands.begin() + static_cast<long>(f.nc));
  operands.insert(operands.end(), xs.begin(), xs.end());
  for (size_t j = 0; j < f.nw; ++j) operands.push_back(f.w(j));
  auto r = scan_node(c.b, body, operands, f.nc, f.nx, f.s.length, f.s.reverse);
  return {r.begin() + static_cast<long>(f.nc), r.end()};
}

// Which of the scan's values take part in the backward.
struct Active {
  std::vector<size_t> carries, ys;  ///< float carries and per-step outputs
  std::vector<size_t> xs, invariants;  ///< float per-step inputs and invariants whose gradient is wanted
};

Active active(const GradCtx& c, const Scan& f) {
  Active a;
  for (size_t i = 0; i < f.nc; ++i)
    if (floating(f.n.operands[i])) a.carries.push_back(i);
  for (size_t k = 0; k < f.ny; ++k)
    if (floating(f.n.result(f.nc + k))) a.ys.push_back(k);
  for (size_t j = 0; j < f.nx; ++j)
    if (floating(f.x(j)) && c.wants[f.nc + j]) a.xs.push_back(j);
  for (size_t j = 0; j < f.nw; ++j)
    if (floating(f.w(j)) && c.wants[f.nc + f.nx + j]) a.invariants.push_back(j);
  return a;
}

// The backward body: carries (carry cotangents, invariant gradient sums), per-step inputs (the
// step's carries, the forward's per-step inputs, the outputs' cotangents, the residuals),
// invariants. The residuals replace their recomputation.
std::shared_ptr<Graph> backward_body(const Scan& f, const Active& a) {
  auto body = std::make_shared<Graph>("body");
  Builder bb(*body);
  auto slice_type = [&](size_t i) { return f.params[i]->type; };
  std::vector<Value*> dc, acc, carry, xs, dy, ws;
  for (size_t i : a.carries) dc.push_back(bb.input(fmt::format("d_carry{}", i), slice_type(i)));
  for (size_t j : a.invariants) acc.push_back(bb.input(fmt::format("d_invariant{}", j), slice_type(f.nc + f.nx + j)));
  for (size_t i = 0; i < f.nc; ++i) carry.push_back(bb.input(fmt::format("carry{}", i), slice_type(i)));
  for (size_t j = 0; j < f.nx; ++j) xs.push_back(bb.input(fmt::format("x{}", j), slice_type(f.nc + j)));
  const auto& outs = f.n.body->outputs;
  for (size_t k : a.ys) dy.push_back(bb.input(fmt::format("d_y{}", k), outs[f.nc + k].value->type));
  std::vector<Value*> stacked;
  for (const Value* r : f.residuals) stacked.push_back(bb.input(residual_name(r), r->type));
  for (size_t j = 0; j < f.nw; ++j) ws.push_back(bb.input(fmt::format("w{}", j), slice_type(f.nc + f.nx + j)));
  auto grads = vjp(*f.n.body, f.residuals);
  std::vector<Value*> args = carry;
  args.insert(args.end(), xs.begin(), xs.end());
  args.insert(args.end(), ws.begin(), ws.end());
  args.insert(args.end(), dc.begin(), dc.end());
  args.insert(args.end(), dy.begin(), dy.end());
  auto got = inline_body(*body, *grads, args);
  std::unordered_set<const Node*> recomputed;
  for (size_t k = 0; k < stacked.size(); ++k) {
    Value* again = named(*grads, got, residual_name(f.residuals[k]));
    body->replace_uses(again, stacked[k]);
    recomputed.insert(again->def);
  }
  body->erase_nodes([&](const Node& n) { return recomputed.count(&n) > 0; });
  auto grad_of = [&](size_t i) { return named(*grads, got, grad_output_name(f.params[i]->name)); };
  for (size_t i : a.carries) bb.output(fmt::format("d_carry{}", i), grad_of(i));
  for (size_t q = 0; q < a.invariants.size(); ++q)
    bb.output(fmt::format("d_invariant{}", a.invariants[q]), bb.add({acc[q], grad_of(f.nc + f.nx + a.invariants[q])}));
  for (size_t j : a.xs) bb.output(fmt::format("d_x{}", j), grad_of(f.nc + j));
  return body;
}

}  // namespace

Grads scan_gradient(GradCtx& c) {
  Scan f(c.n);
  Active a = active(c, f);
  int64_t axis = f.s.axis;
  std::vector<Value*> xs;
  for (size_t j = 0; j < f.nx; ++j) xs.push_back(front(c.b, f.x(j), axis));
  std::vector<Value*> carries = f.nc + f.residuals.size() ? stacked_carries(c, f, xs) : std::vector<Value*>{};
  auto body = backward_body(f, a);
  auto zeros = [&](const Value* like) { return c.b.constant(like->type, {0.0}); };
  std::vector<Value*> operands;
  for (size_t i : a.carries) operands.push_back(c.dy[i] ? c.dy[i] : zeros(c.n.result(i)));
  for (size_t j : a.invariants) operands.push_back(zeros(f.w(j)));
  operands.insert(operands.end(), carries.begin(), carries.begin() + static_cast<long>(f.nc));
  operands.insert(operands.end(), xs.begin(), xs.end());
  for (size_t k : a.ys) {
    Value* y = c.n.result(f.nc + k);
    operands.push_back(front(c.b, c.dy[f.nc + k] ? c.dy[f.nc + k] : zeros(y), axis));
  }
  operands.insert(operands.end(), carries.begin() + static_cast<long>(f.nc), carries.end());  // the residuals
  for (size_t j = 0; j < f.nw; ++j) operands.push_back(f.w(j));
  auto r = scan_node(c.b, body, operands, a.carries.size() + a.invariants.size(),
                     f.nc + f.nx + a.ys.size() + f.residuals.size(), f.s.length, !f.s.reverse);
  Grads dx(c.n.operands.size(), nullptr);
  size_t at = 0;
  for (size_t i : a.carries) dx[i] = r[at++];
  for (size_t j : a.invariants) dx[f.nc + f.nx + j] = r[at++];
  for (size_t j : a.xs) dx[f.nc + j] = back(c.b, r[at++], axis);
  return dx;
}

}  // namespace stag::autodiff
