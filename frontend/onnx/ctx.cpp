// The converters' context: reading a node's inputs and attributes, building folded nodes.
#include "frontend/onnx/ctx.h"

#include <fmt/format.h>

#include <cmath>
#include <unordered_set>

namespace stag::onnx_import {

void fail(const std::string& message) { throw ConvertError(message); }

int64_t as_int(double d, std::string_view what) {
  // Folded values are doubles: a Cast of NaN or 1e30 to int64 reaches here, and converting
  // such a double to int64_t is undefined behaviour.
  if (!(std::abs(d) < 0x1p63)) fail(fmt::format("{} {} is not an integer stag can use", what, d));
  return static_cast<int64_t>(d);
}

int64_t norm_axis(int64_t a, size_t rank) {
  auto r = static_cast<int64_t>(rank);
  if (a < -r || a >= r) fail(fmt::format("axis {} is out of range for rank {}", a, rank));
  return a < 0 ? a + r : a;
}

Value* Ctx::empty_result() {
  static Value marker{.name = "(empty)", .type = {}, .def = nullptr, .result_index = 0};
  return &marker;
}

Value* Ctx::in(size_t i) const {
  if (!has(i)) fail(fmt::format("input {} is required", i));
  const std::string& name = node->input(static_cast<int>(i));
  if (empty.count(name)) fail(fmt::format("input '{}' is an empty tensor; stag's tensors are never empty (only Concat takes one, leaving it out)", name));
  auto it = values.find(name);
  if (it == values.end()) fail(fmt::format("input '{}' is not defined before this node", name));
  return it->second;
}

const onnx::AttributeProto* Ctx::attr(std::string_view name) const {
  for (const auto& a : node->attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

int64_t Ctx::ai(std::string_view name, int64_t def) const {
  const auto* a = attr(name);
  return a ? a->i() : def;
}

double Ctx::af(std::string_view name, double def) const {
  const auto* a = attr(name);
  return a ? static_cast<double>(a->f()) : def;
}

std::string Ctx::as(std::string_view name, const std::string& def) const {
  const auto* a = attr(name);
  return a ? a->s() : def;
}

Ints Ctx::aints(std::string_view name, const Ints& def) const {
  const auto* a = attr(name);
  return a ? Ints(a->ints().begin(), a->ints().end()) : def;
}

Floats Ctx::afloats(std::string_view name) const {
  const auto* a = attr(name);
  Floats out;
  if (a)
    for (float f : a->floats()) out.push_back(f);
  return out;
}

std::vector<Value*> Ctx::ops(Op op, const std::vector<Value*>& operands, const NamedAttrs& attrs) {
  Builder::Result r = b.try_create(op, operands, attrs);
  if (!r.error.empty()) fail(r.error);
  fold(r.values[0]->def);
  return r.values;
}

Value* Ctx::op(Op op, const std::vector<Value*>& operands, const NamedAttrs& attrs) {
  auto r = ops(op, operands, attrs);
  if (r.size() != 1) fail(fmt::format("{} gives {} results", op_info(op).name, r.size()));
  return r[0];
}

Value* Ctx::constant(const Type& type, std::vector<double> data) {
  auto n = checked_numel(type.dims);
  if (!n || static_cast<size_t>(*n) != data.size()) fail(fmt::format("a constant {} needs {} values", to_string(type), data.size()));
  Builder::Result r = b.try_create(Op::constant, {}, {{"value", data}}, {type});
  if (!r.error.empty()) fail(r.error);
  known[r.values[0]] = RefTensor(type, std::move(data));
  return r.values[0];
}

Value* Ctx::reshape(Value* x, const Dims& dims) {
  return x->type.dims == dims ? x : op(Op::reshape, {x}, {{"shape", Ints(dims)}});
}

// Nodes whose operands are all known are evaluated now, so that shape arithmetic
// (Shape -> Gather -> Concat -> Reshape) gives the compile-time values later nodes need.
void Ctx::fold(Node* n) {
  const OpInfo& info = n->info();
  if (info.has(Source) || info.has(Stochastic) || info.has(HasBody)) return;
  std::vector<const RefTensor*> operands;
  for (Value* v : n->operands) {
    auto it = known.find(v);
    if (it == known.end()) return;
    operands.push_back(&it->second);
  }
  for (const auto& r : n->results)
    if (checked_numel(r->type.dims).value_or(INT64_MAX) > (int64_t{1} << 20)) return;
  try {
    auto results = evaluate(*n, operands);
    for (size_t i = 0; i < results.size(); ++i) known[n->result(i)] = std::move(results[i]);
  } catch (const std::exception&) {
    // Data the op rejects (an index out of range) is left for the run to report.
  }
}

Value* transpose_if(Ctx& c, Value* x, const Ints& perm) {
  for (size_t i = 0; i < perm.size(); ++i)
    if (perm[i] != static_cast<int64_t>(i)) return c.op(Op::transpose, {x}, {{"perm", perm}});
  return x;
}

const RefTensor& Ctx::need_known(const Value* v, std::string_view what) {
  auto it = known.find(v);
  if (it != known.end()) return it->second;
  // The inputs it is computed from (a Loop's trip count from a Range's start, limit and delta).
  std::vector<const Value*> todo{v};
  std::unordered_set<const Value*> seen{v};
  while (!todo.empty()) {
    const Value* u = todo.back();
    todo.pop_back();
    if (!u->def || known.count(u)) continue;
    if (u->def->op == Op::input) wanted_constants.push_back(u->name);
    for (const Value* w : u->def->operands)
      if (seen.insert(w).second) todo.push_back(w);
  }
  fail(fmt::format("{} must be known at compile time (stag's shapes are static), but '%{}' is computed at run time", what, v->name));
}

Ints Ctx::known_ints(const Value* v, std::string_view what) {
  const RefTensor& t = need_known(v, what);
  Ints out;
  for (double d : t.data) out.push_back(as_int(d, what));
  return out;
}

Ints Ctx::ints_input(size_t i, std::string_view what, const Ints& def) {
  return has(i) ? known_ints(in(i), what) : def;
}

}  // namespace stag::onnx_import
