// The scan op: its shape rule and its reference, side by side. A step reads slice t of each
// per-step input along `axis` (t counting down when `reverse`) and writes slice t of each
// per-step output, so a reversed scan's outputs line up with its inputs.

#include "ir/scan.h"

#include "ir/builder.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <unordered_map>

namespace stag {

ScanShape::ScanShape(const Node& n)
    : carries(n.i("num_carries")), xs(n.i("num_xs")), length(n.i("length")), axis(n.i("axis")),
      reverse(n.b("reverse")), invariants(n.operands.size() - static_cast<size_t>(carries + xs)) {}

namespace rules {

namespace {

std::string t(const Type& x) { return to_string(x); }

std::string role(int64_t i, int64_t carries, int64_t xs) {
  if (i < carries) return fmt::format("carry {}", i);
  if (i < carries + xs) return fmt::format("per-step input {}", i - carries);
  return fmt::format("invariant {}", i - carries - xs);
}

// What the body's parameter i must be: the operand, or one slice of it for a per-step input.
std::string parameter_type(const ShapeCtx& c, size_t i, Type& want) {
  int64_t nc = c.i("num_carries"), nx = c.i("num_xs"), axis = c.i("axis"), len = c.i("length");
  want = c.operands[i];
  int64_t k = static_cast<int64_t>(i);
  if (k < nc || k >= nc + nx) return {};
  if (axis >= static_cast<int64_t>(want.rank()))
    return fmt::format("axis {} is out of range for {} ({}, rank {})", axis, role(k, nc, nx), t(want), want.rank());
  if (want.dims[axis] != len)
    return fmt::format("{} is {}: its dimension {} is {}, not the length {}", role(k, nc, nx), t(want), axis,
                       want.dims[axis], len);
  want.dims.erase(want.dims.begin() + axis);
  return {};
}

std::string check_parameters(const ShapeCtx& c) {
  auto params = c.body->inputs();
  if (params.size() != c.operands.size())
    return fmt::format("the body takes {} inputs but the scan has {} operands", params.size(), c.operands.size());
  int64_t nc = c.i("num_carries"), nx = c.i("num_xs");
  for (size_t i = 0; i < params.size(); ++i) {
    Type want;
    if (auto e = parameter_type(c, i, want); !e.empty()) return e;
    if (params[i]->type != want)
      return fmt::format("body input %{} is {}, but {} gives {}", params[i]->name, t(params[i]->type),
                         role(static_cast<int64_t>(i), nc, nx), t(want));
  }
  return {};
}

std::string stack_outputs(ShapeCtx& c) {
  const auto& outs = c.body->outputs;
  int64_t nc = c.i("num_carries"), axis = c.i("axis"), len = c.i("length");
  auto params = c.body->inputs();
  if (outs.size() < static_cast<size_t>(nc))
    return fmt::format("the body returns {} outputs, fewer than its {} carries", outs.size(), nc);
  for (size_t i = 0; i < outs.size(); ++i) {
    Type y = outs[i].value->type;
    if (static_cast<int64_t>(i) < nc) {
      if (y != params[i]->type)
        return fmt::format("carry {}: the body returns {} (output {}) but takes {} (%{}); a carry keeps its type "
                           "across an iteration", i, t(y), outs[i].name, t(params[i]->type), params[i]->name);
      c.results.push_back(y);
      continue;
    }
    if (axis > static_cast<int64_t>(y.rank()))
      return fmt::format("per-step output {} ({}) cannot be stacked along axis {}", outs[i].name, t(y), axis);
    y.dims.insert(y.dims.begin() + axis, len);
    c.results.push_back(y);
  }
  return {};
}

}  // namespace

std::string scan(ShapeCtx& c) {
  int64_t nc = c.i("num_carries"), nx = c.i("num_xs"), n = static_cast<int64_t>(c.operands.size());
  if (nc < 0 || nx < 0 || nc > n || nx > n - nc)
    return fmt::format("num_carries={} and num_xs={} do not fit its {} operands", nc, nx, n);
  if (c.i("length") < 1) return fmt::format("length must be at least 1, got {}", c.i("length"));
  if (c.i("axis") < 0) return fmt::format("axis must be 0 or more, got {}", c.i("axis"));
  if (!c.body) return "needs a body in braces";
  if (auto e = check_parameters(c); !e.empty()) return e;
  return stack_outputs(c);
}

}  // namespace rules

namespace {

// A tensor's elements as [outer, dims[axis], inner] around `axis`.
struct AroundAxis {
  int64_t outer = 1, n, inner = 1;
  AroundAxis(const Dims& d, int64_t axis) : n(d[axis]) {
    for (int64_t i = 0; i < axis; ++i) outer *= d[i];
    for (size_t i = static_cast<size_t>(axis) + 1; i < d.size(); ++i) inner *= d[i];
  }
};

RefTensor take(const RefTensor& x, int64_t axis, int64_t t, const Type& slice) {
  AroundAxis a(x.type.dims, axis);
  RefTensor r = RefTensor::filled(slice, 0);
  for (int64_t o = 0; o < a.outer; ++o)
    std::copy_n(x.data.begin() + (o * a.n + t) * a.inner, a.inner, r.data.begin() + o * a.inner);
  return r;
}

void put(RefTensor& stacked, int64_t axis, int64_t t, const RefTensor& y) {
  AroundAxis a(stacked.type.dims, axis);
  for (int64_t o = 0; o < a.outer; ++o)
    std::copy_n(y.data.begin() + o * a.inner, a.inner, stacked.data.begin() + (o * a.n + t) * a.inner);
}

}  // namespace

std::vector<RefTensor> evaluate_scan(const Node& n, const std::vector<const RefTensor*>& operands) {
  ScanShape s(n);
  const Graph& body = *n.body;
  auto params = body.inputs();
  std::map<std::string, RefTensor> feeds;
  for (size_t i = 0; i < operands.size(); ++i) feeds[params[i]->name] = *operands[i];
  std::vector<RefTensor> stacked;
  for (size_t k = static_cast<size_t>(s.carries); k < n.results.size(); ++k) stacked.push_back(RefTensor::filled(n.result(k)->type, 0));
  for (int64_t step = 0; step < s.length; ++step) {
    int64_t t = s.reverse ? s.length - 1 - step : step;
    for (int64_t j = s.carries; j < s.carries + s.xs; ++j)
      feeds[params[j]->name] = take(*operands[j], s.axis, t, params[j]->type);
    RefResult r = interpret(body, feeds);
    for (int64_t i = 0; i < s.carries; ++i) feeds[params[i]->name] = r.outputs.at(body.outputs[i].name);
    for (size_t k = 0; k < stacked.size(); ++k)
      put(stacked[k], s.axis, t, r.outputs.at(body.outputs[s.carries + k].name));
  }
  std::vector<RefTensor> results;
  for (int64_t i = 0; i < s.carries; ++i) results.push_back(feeds.at(params[i]->name));
  for (auto& y : stacked) results.push_back(std::move(y));
  return results;
}

std::vector<Value*> inline_body(Graph& dst, const Graph& body, const std::vector<Value*>& args) {
  std::unordered_map<const Value*, Value*> map;
  size_t arg = 0;
  for (const auto& n : body.nodes) {
    if (n->op == Op::input || n->op == Op::parameter) {
      map[n->result()] = args.at(arg++);
      continue;
    }
    std::vector<Value*> ops;
    for (Value* v : n->operands) ops.push_back(map.at(v));
    std::vector<Type> types;
    std::vector<std::string> names;
    for (const auto& r : n->results) {
      types.push_back(r->type);
      names.push_back(dst.fresh_name());
    }
    Node* copy = dst.append(n->op, std::move(ops), n->attrs, types, names, n->loc);
    copy->body = n->body;
    for (size_t i = 0; i < n->results.size(); ++i) map[n->result(i)] = copy->result(i);
  }
  std::vector<Value*> outs;
  for (const auto& o : body.outputs) outs.push_back(map.at(o.value));
  return outs;
}

namespace {

// One step's per-step input j: slice t of it along the axis, without that axis.
Value* step_slice(Builder& b, Value* x, const ScanShape& s, int64_t t, const Type& slice) {
  Value* one = b.slice({x}, {{"axes", Ints{s.axis}}, {"starts", Ints{t}}, {"ends", Ints{t + 1}}});
  return b.reshape({one}, {{"shape", Ints(slice.dims)}});
}

std::vector<Value*> unroll(Builder& b, const Node& n, const std::vector<Value*>& ops) {
  ScanShape s(n);
  auto params = n.body->inputs();
  std::vector<Value*> carries(ops.begin(), ops.begin() + s.carries);
  std::vector<std::vector<Value*>> ys(s.ys(*n.body), std::vector<Value*>(static_cast<size_t>(s.length)));
  for (int64_t step = 0; step < s.length; ++step) {
    int64_t t = s.reverse ? s.length - 1 - step : step;
    std::vector<Value*> args = carries;
    for (int64_t j = s.carries; j < s.carries + s.xs; ++j) args.push_back(step_slice(b, ops[j], s, t, params[j]->type));
    args.insert(args.end(), ops.begin() + s.carries + s.xs, ops.end());
    auto outs = inline_body(b.graph(), *n.body, args);
    std::copy_n(outs.begin(), s.carries, carries.begin());
    for (size_t k = 0; k < ys.size(); ++k) {
      Dims d = outs[s.carries + k]->type.dims;
      d.insert(d.begin() + s.axis, 1);
      ys[k][t] = b.reshape({outs[s.carries + k]}, {{"shape", Ints(d)}});
    }
  }
  for (auto& y : ys) carries.push_back(b.concat(y, {{"axis", s.axis}}));
  return carries;
}

}  // namespace

std::unique_ptr<Graph> unroll_scans(const Graph& g) {
  auto out = std::make_unique<Graph>(g.name);
  out->attrs = g.attrs;
  std::unordered_map<const Value*, Value*> map;
  // Inputs and parameters keep their names (they are fed by name); the rest get fresh ones.
  for (const auto& n : g.nodes)
    if (n->op == Op::input || n->op == Op::parameter)
      map[n->result()] = out->append(n->op, {}, n->attrs, {n->result()->type}, {n->result()->name}, n->loc)->result();
  Builder b(*out);
  for (const auto& n : g.nodes) {
    if (n->op == Op::input || n->op == Op::parameter) continue;
    std::vector<Value*> ops;
    for (Value* v : n->operands) ops.push_back(map.at(v));
    b.set_loc(n->loc);
    std::vector<Value*> results = n->op == Op::scan ? unroll(b, *n, ops) : std::vector<Value*>{};
    if (n->op != Op::scan) {
      std::vector<Type> types;
      std::vector<std::string> names;
      for (const auto& r : n->results) types.push_back(r->type), names.push_back(out->fresh_name());
      Node* copy = out->append(n->op, ops, n->attrs, types, names, n->loc);
      copy->body = n->body;
      for (const auto& r : copy->results) results.push_back(r.get());
    }
    for (size_t i = 0; i < results.size(); ++i) map[n->result(i)] = results[i];
  }
  for (const auto& o : g.outputs) out->outputs.push_back({o.name, map.at(o.value), o.loc});
  for (const auto& u : g.updates) out->updates.push_back({map.at(u.target), map.at(u.value), u.loc});
  return out;
}

}  // namespace stag
