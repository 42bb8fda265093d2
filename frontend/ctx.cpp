// The lowering context: checked node creation, parameters with inits, and the step key.

#include <fmt/format.h>

#include <cmath>

#include "frontend/lowering.h"

namespace stag::fe {

std::string describe(const Val& v) {
  switch (v.kind) {
    case Val::Poison: return "an invalid value";
    case Val::None: return "None";
    case Val::Tensor: return fmt::format("a tensor {}", to_string(v.t->type));
    case Val::Int: return fmt::format("an integer ({})", v.i);
    case Val::Float: return fmt::format("a number ({})", format_float(v.f));
    case Val::Bool: return fmt::format("a bool ({})", v.b ? "true" : "false");
    case Val::Str: return fmt::format("a string (\"{}\")", v.s.substr(0, 40));
    case Val::List: return "a list";
    case Val::Tuple: return fmt::format("{} results", v.items.size());
    case Val::TypeV: return fmt::format("a type ({})", to_string(v.type));
    case Val::DTypeV: return fmt::format("an element type ({})", dtype_name(v.dtype));
    case Val::Layer: return fmt::format("the layer {}", v.layer->label());
  }
  return "a value";
}

std::vector<Value*> Ctx::ops(Op op, const std::vector<Value*>& operands, const NamedAttrs& attrs,
                             const Loc& loc, const std::string& context, const std::vector<Type>& declared,
                             std::shared_ptr<Graph> body) {
  for (Value* v : operands)
    if (!v) return {};  // an earlier error; do not report again
  if (g.nodes.size() >= kMaxNodes) {
    if (!too_big) error(loc, fmt::format("the model is too large: more than {} graph nodes", kMaxNodes));
    too_big = true;
    return {};
  }
  b.set_loc(scoped(loc));
  auto r = b.try_create(op, operands, attrs, declared, {}, std::move(body));
  if (!r.error.empty()) {
    error(loc, context.empty() ? r.error : fmt::format("{}: {}", context, r.error));
    return {};
  }
  return r.values;
}

Value* Ctx::op(Op op, const std::vector<Value*>& operands, const NamedAttrs& attrs, const Loc& loc,
               const std::string& context) {
  auto r = ops(op, operands, attrs, loc, context);
  return r.empty() ? nullptr : r[0];
}

Value* Ctx::scalar(double v, DType dtype, const Loc& loc) { return fill(v, {dtype, {}}, loc); }

Value* Ctx::fill(double v, const Type& type, const Loc& loc) {
  auto r = ops(Op::constant, {}, {{"value", Floats{v}}}, loc, {}, {type});
  return r.empty() ? nullptr : r[0];
}

Value* Ctx::parameter(Instance& inst, const std::string& local, const Type& type, NamedAttrs init,
                      bool trainable) {
  std::string name = inst.full(local);
  Loc loc = inst.loc;
  if (auto it = inits.find(name); it != inits.end()) {
    init = it->second.attrs;
    loc = it->second.loc;
    it->second.used = true;
  }
  if (!trainable || inst.frozen) init.emplace_back("trainable", false);
  if (g.nodes.size() >= kMaxNodes) {
    if (!too_big) error(loc, fmt::format("the model is too large: more than {} graph nodes", kMaxNodes));
    too_big = true;
    return nullptr;
  }
  if (g.has_name(name)) {
    error(loc, fmt::format("the parameter name '{}' is already defined", name));
    return nullptr;
  }
  Loc where = inst.loc;
  where.scope = inst.path;
  b.set_loc(where);
  auto r = b.try_create(Op::parameter, {}, init, {type}, {name});
  if (!r.error.empty()) {
    error(loc, fmt::format("{}: {}", name, r.error));
    return nullptr;
  }
  inst.params[local] = r.values[0];
  return r.values[0];
}

namespace {

// The key of steps inside loops 0..depth-1: key_d = key_{d-1} * length_d + t_d, distinct for
// every training step and loop step (t_d < length_d). The index is a placeholder the loop's
// lowering binds to each step's position; the product stays outside the loop, computed once.
Value* loop_key(Ctx& c, size_t depth, const Loc& loc) {
  if (depth == 0) return c.step_key_outside(loc);
  Ctx::LoopKey& k = c.loop_keys[depth - 1];
  if (k.key) return k.key;
  Value* outer = loop_key(c, depth - 1, loc);
  if (!outer) return nullptr;
  k.index = c.g.append(Op::input, {}, {}, {{DType::i64, {}}}, {c.g.fresh_name()}, c.scoped(loc))->result();
  Value* scaled = c.op(Op::mul, {outer, c.scalar(static_cast<double>(k.length), DType::i64, loc)}, {}, loc, "loop step key");
  k.key = scaled ? c.op(Op::add, {scaled, k.index}, {}, loc, "loop step key") : nullptr;
  return k.key;
}

}  // namespace

Value* Ctx::step_key(const Loc& loc) { return loop_key(*this, loop_keys.size(), loc); }

Value* Ctx::step_key_outside(const Loc& loc) {
  if (step) return step;
  if (g.has_name("step")) {
    error(loc, "the name 'step' is reserved for the training step counter in training mode");
    return nullptr;
  }
  b.set_loc({});
  auto r = b.try_create(Op::input, {}, {}, {{DType::i64, {}}}, {"step"});
  step = r.values.empty() ? nullptr : r.values[0];
  return step;
}

Value* Ctx::position(const Loc& loc) {
  if (pos) return pos;
  pos = cache_input_named("pos", {DType::i64, {}}, loc);
  return pos;
}

Value* Ctx::cache_input(const std::string& name, const Type& type, const Loc& loc) {
  return cache_input_named("cache." + name, type, loc);
}

Value* Ctx::cache_input_named(const std::string& name, const Type& type, const Loc& loc) {
  if (g.has_name(name)) {
    error(loc, fmt::format("the name '{}' is reserved for the decode step's state", name));
    return nullptr;
  }
  b.set_loc({});
  auto r = b.try_create(Op::input, {}, {}, {type}, {name});
  return r.values.empty() ? nullptr : r.values[0];
}

void Ctx::cache_output(const std::string& name, Value* next, const Loc& loc) {
  if (next) g.outputs.push_back({"cache." + name + ".next", next, loc});
}

NamedAttrs kaiming_default() {
  return {{"init", std::string("kaiming_uniform")}, {"a", std::sqrt(5.0)}};
}

NamedAttrs bias_default(int64_t fan_in) {
  double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  return {{"init", std::string("uniform")}, {"low", -bound}, {"high", bound}};
}

Value* linear(Ctx& c, Value* x, Value* w, Value* b, const Loc& loc, const std::string& context) {
  Value* y = c.op(Op::matmul, {x, w}, {{"transpose_b", true}}, loc, context);
  return b ? c.op(Op::add, {y, b}, {}, loc, context) : y;
}

}  // namespace stag::fe
