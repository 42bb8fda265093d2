// Lowering of expressions: compile-time arithmetic, operators on tensors, op calls with keyword
// attributes, layer calls and the built-in functions.

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "frontend/lower_impl.h"

namespace stag::fe {

namespace {

/// Functions that are not ops: each expands into a few ops.
const char* const kBuiltins[] = {"accuracy", "positions"};

}  // namespace

// ---- expressions
Val Lowering::eval(Scope& s, const Expr& e) {
  switch (e.kind) {
    case Expr::Int: return Val::integer(e.i);
    case Expr::Float: return Val::real(e.f);
    case Expr::Str: return Val::str(e.text);
    case Expr::Name: return lookup(s, e.text, e.loc);
    case Expr::List: {
      Val l;
      l.kind = Val::List;
      for (const auto& item : e.args) {
        Val v = eval(s, *item);
        if (!v.ok()) return {};
        if (v.kind != Val::Int && v.kind != Val::Float && v.kind != Val::Bool && v.kind != Val::Str)
          return fail(item->loc, fmt::format("list items must be numbers or strings, got {}", describe(v)));
        l.items.push_back(std::move(v));
      }
      return l;
    }
    case Expr::TypeLit: return type_literal(s, e);
    case Expr::Call: return call(s, e);
    case Expr::Repeat: return fail(e.loc, "'repeat' makes layers: write `layer NAME = repeat N Block(...)`");
    case Expr::Binary: return binary(s, e);
    case Expr::Unary: {
      Val v = eval(s, *e.args[0]);
      if (e.text == "not") {
        if (v.kind == Val::Bool) return Val::boolean(!v.b);
        if (!v.ok()) return {};
        return fail(e.loc, fmt::format("'not' takes true or false, got {}", describe(v)));
      }
      if (v.kind == Val::Int) {
        if (v.i == INT64_MIN) return fail(e.loc, "integer overflow in '-'");
        return Val::integer(-v.i);
      }
      if (v.kind == Val::Float) return Val::real(-v.f);
      if (v.kind == Val::Tensor) return Val::tensor(c_.op(Op::neg, {v.t}, {}, e.loc));
      if (!v.ok()) return {};
      return fail(e.loc, fmt::format("cannot negate {}", describe(v)));
    }
  }
  return {};
}

Val Lowering::type_literal(Scope& s, const Expr& e) {
  Val v;
  v.kind = Val::TypeV;
  v.type.dtype = *dtype_from_name(e.text);
  if (e.args.size() > kMaxRank) return fail(e.loc, fmt::format("type has rank {}, more than {}", e.args.size(), kMaxRank));
  for (const auto& d : e.args) {
    Val x = eval(s, *d);
    if (!x.ok()) return {};
    if (x.kind != Val::Int) return fail(d->loc, fmt::format("a dimension must be an integer, got {}", describe(x)));
    if (x.i < 1) return fail(d->loc, fmt::format("a dimension must be at least 1, got {}", x.i));
    v.type.dims.push_back(x.i);
  }
  if (auto err = type_error(v.type); !err.empty()) return fail(e.loc, err);
  return v;
}

Val Lowering::number_op(const std::string& op, const Val& a, const Val& b, const Loc& loc) {
  if (a.kind == Val::Int && b.kind == Val::Int && op != "/") {
    std::optional<int64_t> r;
    if (op == "+") r = checked_add(a.i, b.i);
    else if (op == "-") r = b.i == INT64_MIN ? std::nullopt : checked_add(a.i, -b.i);
    else if (op == "*") r = checked_mul(a.i, b.i);
    else if (op == "//" || op == "%") {
      if (b.i == 0) return fail(loc, fmt::format("integer division by zero in '{}'", op));
      if (a.i == INT64_MIN && b.i == -1) return fail(loc, "integer overflow");
      int64_t q = a.i / b.i, m = a.i % b.i;
      if (m != 0 && ((m < 0) != (b.i < 0))) --q, m += b.i;  // Python floors
      r = op == "//" ? q : m;
    } else {
      return Val::boolean(op == "==" ? a.i == b.i : op == "!=" ? a.i != b.i : op == "<" ? a.i < b.i
                          : op == "<=" ? a.i <= b.i : op == ">" ? a.i > b.i : a.i >= b.i);
    }
    if (!r) return fail(loc, fmt::format("integer overflow in '{}'", op));
    return Val::integer(*r);
  }
  double x = a.number(), y = b.number();
  if (op == "+") return Val::real(x + y);
  if (op == "-") return Val::real(x - y);
  if (op == "*") return Val::real(x * y);
  if (op == "/" || op == "//" || op == "%") {
    if (y == 0) return fail(loc, fmt::format("division by zero in '{}'", op));
    if (op == "/") return Val::real(x / y);
    double q = std::floor(x / y);
    return Val::real(op == "//" ? q : x - q * y);
  }
  if (op == "@") return fail(loc, "'@' multiplies tensors, not numbers");
  return Val::boolean(op == "==" ? x == y : op == "!=" ? x != y : op == "<" ? x < y : op == "<=" ? x <= y
                      : op == ">" ? x > y : x >= y);
}

Val Lowering::binary(Scope& s, const Expr& e) {
  Val a = eval(s, *e.args[0]);
  Val b = eval(s, *e.args[1]);
  if (!a.ok() || !b.ok()) return {};
  const std::string& op = e.text;
  if (op == "and" || op == "or") {
    // Compile-time conditions only: the op set has no logical and/or on tensors.
    for (const Val* v : {&a, &b})
      if (v->kind != Val::Bool) return fail(e.loc, fmt::format("'{}' takes true or false, got {}", op, describe(*v)));
    return Val::boolean(op == "and" ? a.b && b.b : a.b || b.b);
  }
  if (a.is_number() && b.is_number()) {
    Val r = number_op(op, a, b, e.loc);
    if (r.kind == Val::Float && !std::isfinite(r.f)) return fail(e.loc, fmt::format("'{}' gives a number out of range", op));
    return r;
  }
  if (a.kind == Val::Str && b.kind == Val::Str && (op == "==" || op == "!=")) return Val::boolean((a.s == b.s) == (op == "=="));
  if (a.kind == Val::Bool && b.kind == Val::Bool && (op == "==" || op == "!=")) return Val::boolean((a.b == b.b) == (op == "=="));
  bool ta = a.kind == Val::Tensor, tb = b.kind == Val::Tensor;
  if ((ta || a.is_number()) && (tb || b.is_number()) && (ta || tb)) {
    static const std::pair<const char*, Op> table[] = {{"+", Op::add}, {"-", Op::sub}, {"*", Op::mul}, {"/", Op::div},
                                                       {"@", Op::matmul}, {"==", Op::eq}, {"<", Op::lt}, {"<=", Op::le},
                                                       {">", Op::gt}, {">=", Op::ge}};
    const Op* o = nullptr;
    for (const auto& [sp, id] : table)
      if (op == sp) o = &id;
    if (!o) return fail(e.loc, fmt::format("operator '{}' is not defined for tensors", op));
    DType dt = ta ? a.t->type.dtype : b.t->type.dtype;
    Value* x = ta ? a.t : c_.scalar(a.number(), dt, e.loc);
    Value* y = tb ? b.t : c_.scalar(b.number(), dt, e.loc);
    return Val::tensor(c_.op(*o, {x, y}, {}, e.loc));
  }
  return fail(e.loc, fmt::format("operator '{}' cannot combine {} and {}", op, describe(a), describe(b)));
}

// Converts a keyword argument's value to an op attribute.
std::optional<Attr> Lowering::to_attr(const Val& v, const Loc& loc) {
  switch (v.kind) {
    case Val::Int: return Attr(v.i);
    case Val::Float: return Attr(v.f);
    case Val::Bool: return Attr(v.b);
    case Val::Str: return Attr(v.s);
    case Val::DTypeV: return Attr(v.dtype);
    case Val::List: {
      bool any_float = false;
      for (const Val& x : v.items) {
        if (!x.is_number()) return fail(loc, fmt::format("attribute lists hold numbers, got {}", describe(x))), std::nullopt;
        any_float |= x.kind == Val::Float;
      }
      if (!any_float) {
        Ints is;
        for (const Val& x : v.items) is.push_back(x.i);
        return Attr(is);
      }
      Floats fs;
      for (const Val& x : v.items) fs.push_back(x.number());
      return Attr(fs);
    }
    case Val::Poison: return std::nullopt;
    default: break;
  }
  fail(loc, fmt::format("an attribute must be a number, bool, string, list or element type, got {}", describe(v)));
  return std::nullopt;
}

std::vector<std::string> Lowering::callables(const Scope& s) const {
  std::vector<std::string> out;
  for (const auto& info : all_ops()) out.emplace_back(info.name);
  for (const char* b : kBuiltins) out.emplace_back(b);
  for (const auto& [k, v] : s.inst->child_names) out.push_back(k);
  return out;
}

Val Lowering::call(Scope& s, const Expr& e) {
  if (!s.forward) return fail(e.loc, fmt::format("'{}(...)' is not a constant; calls belong in a forward section", e.text));
  // A layer of this scope (or a path to one).
  bool is_layer = s.inst->child_names.count(e.text.substr(0, e.text.find('.'))) > 0;
  if (is_layer && !s.locals.count(e.text)) {
    Val l = lookup(s, e.text, e.loc);
    if (!l.ok()) return {};
    if (l.kind != Val::Layer) return fail(e.loc, fmt::format("'{}' is {}, not a layer", e.text, describe(l)));
    if (!e.kwargs.empty()) return fail(e.kwargs[0].loc, fmt::format("layer {} takes no keyword arguments when called", l.layer->label()));
    std::vector<Val> ins;
    for (const auto& a : e.args) {
      Val v = eval(s, *a);
      if (!v.ok()) return {};
      if (v.kind != Val::Tensor) return fail(a->loc, fmt::format("{} takes tensors, got {}", l.layer->label(), describe(v)));
      ins.push_back(v);
    }
    auto out = call_layer(*l.layer, ins, e.loc);
    if (out.empty()) return {};
    if (out.size() == 1) return out[0];
    Val t;
    t.kind = Val::Tuple;
    t.items = std::move(out);
    return t;
  }
  if (auto op = op_from_name(e.text)) return call_op(s, *op, e);
  if (e.text == "accuracy") return accuracy(s, e);
  if (e.text == "positions") return positions(s, e);
  if (find_layer_kind(e.text) || find_block(e.text) || e.text == "Sequential")
    return fail(e.loc, fmt::format("'{}' is a layer constructor: declare `layer NAME = {}(...)` and call NAME(x)",
                                   e.text, e.text));
  if (s.locals.count(e.text) || s.inst->args.count(e.text))
    return fail(e.loc, fmt::format("'{}' is a value, not a function or layer", e.text));
  return fail(e.loc, fmt::format("unknown function or layer '{}'{}", e.text, hint(e.text, callables(s))));
}

Val Lowering::call_op(Scope& s, Op op, const Expr& e) {
  const OpInfo& info = op_info(op);
  if (op == Op::input || op == Op::parameter)
    return fail(e.loc, fmt::format("'{}' is not called in a forward section: declare `{} NAME: TYPE`", info.name,
                                   op == Op::input ? "input" : "param"));
  std::vector<Val> pos;
  std::vector<Type> declared;
  for (const auto& a : e.args) {
    Val v = eval(s, *a);
    if (!v.ok()) return {};
    if (v.kind == Val::TypeV && info.has(Source) && declared.empty()) {
      declared.push_back(v.type);
      continue;
    }
    if (v.kind != Val::Tensor && !v.is_number())
      return fail(a->loc, fmt::format("{}: operands are tensors or numbers, got {}{}", info.name, describe(v),
                                      v.kind == Val::List ? "; pass lists as keyword attributes" : ""));
    pos.push_back(std::move(v));
  }
  if (info.has(Source) && op != Op::random_uniform && op != Op::random_normal && !pos.empty())
    return fail(e.loc, fmt::format("{} takes no operands", info.name));
  if (info.has(Source) && declared.empty())
    return fail(e.loc, fmt::format("{} needs its result type as the first argument, e.g. {}(f32[4, 4])", info.name, info.name));
  NamedAttrs attrs;
  for (const auto& kw : e.kwargs) {
    for (const auto& [k, v] : attrs)
      if (k == kw.name) return fail(kw.loc, fmt::format("{}: attribute '{}' given twice", info.name, kw.name));
    Val v = eval(s, *kw.value);
    if (!v.ok()) return {};
    auto a = to_attr(v, kw.value->loc);
    if (!a) return {};
    attrs.emplace_back(kw.name, std::move(*a));
  }
  // A number takes the element type of the tensors beside it; a select's bool condition
  // does not count, so `select(m, x, 0.0)` fills with x's type.
  DType dt = DType::f32;
  bool found = false;
  for (const Val& v : pos)
    if (v.kind == Val::Tensor && !found && (v.t->type.dtype != DType::b8 || op != Op::select)) {
      dt = v.t->type.dtype;
      found = true;
    }
  std::vector<Value*> operands;
  for (const Val& v : pos) operands.push_back(v.kind == Val::Tensor ? v.t : c_.scalar(v.number(), dt, e.loc));
  auto given = [&](const char* n) {
    return std::any_of(attrs.begin(), attrs.end(), [&](auto& kv) { return kv.first == n; });
  };
  // train { label_smoothing = e } is the default of every loss that smooths its targets.
  if (c_.default_label_smoothing && info.attr_index("label_smoothing") >= 0 && !given("label_smoothing"))
    attrs.emplace_back("label_smoothing", *c_.default_label_smoothing);
  if (info.has(Stochastic)) {
    if (op == Op::dropout) {
      if (given("training") || given("seed"))
        return fail(e.loc, "dropout: 'training' and 'seed' are set by the mode (inference, or training with --train)");
      if (operands.size() > 1) return fail(e.loc, "dropout: the generator key is added in training mode; pass the input alone");
      if (!given("p") && c_.default_dropout) attrs.emplace_back("p", *c_.default_dropout);
      attrs.emplace_back("training", c_.training());
    }
    if (c_.training() && operands.size() == (op == Op::dropout ? 1u : 0u)) {
      operands.push_back(c_.step_key(e.loc));
      if (!given("seed")) attrs.emplace_back("seed", c_.next_seed++);
    }
  }
  auto r = c_.ops(op, operands, attrs, e.loc, {}, declared);
  if (r.empty()) return {};
  if (r.size() == 1) return Val::tensor(r[0]);
  Val t;
  t.kind = Val::Tuple;
  for (Value* v : r) t.items.push_back(Val::tensor(v));
  return t;
}

// accuracy(logits, labels): the fraction of rows whose argmax equals the label.
Val Lowering::accuracy(Scope& s, const Expr& e) {
  if (e.args.size() != 2 || !e.kwargs.empty()) return fail(e.loc, "accuracy takes (logits, labels)");
  Val x = eval(s, *e.args[0]), y = eval(s, *e.args[1]);
  if (!x.ok() || !y.ok()) return {};
  if (x.kind != Val::Tensor || y.kind != Val::Tensor) return fail(e.loc, "accuracy takes two tensors: logits and labels");
  Value* pred = c_.op(Op::argmax, {x.t}, {{"axis", int64_t{-1}}}, e.loc, "accuracy");
  Value* labels = y.t->type.dtype == DType::i64 ? y.t : c_.op(Op::cast, {y.t}, {{"to", DType::i64}}, e.loc, "accuracy");
  Value* hit = c_.op(Op::eq, {pred, labels}, {}, e.loc, "accuracy");
  Value* f = c_.op(Op::cast, {hit}, {{"to", DType::f32}}, e.loc, "accuracy");
  return Val::tensor(c_.op(Op::mean, {f}, {}, e.loc, "accuracy"));
}

Val Lowering::positions(Scope& s, const Expr& e) {
  if (e.args.size() != 1 || !e.kwargs.empty()) return fail(e.loc, "positions takes (tokens)");
  Val x = eval(s, *e.args[0]);
  if (!x.ok()) return {};
  if (x.kind != Val::Tensor || x.t->type.rank() != 2)
    return fail(e.loc, fmt::format("positions takes tokens [batch, seq], got {}", describe(x)));
  if (c_.opts.decode) {
    Value* pos = c_.position(e.loc);
    return Val::tensor(pos ? c_.op(Op::reshape, {pos}, {{"shape", Ints{1}}}, e.loc, "positions") : nullptr);
  }
  auto r = c_.ops(Op::iota, {}, {{"axis", int64_t{0}}}, e.loc, "positions", {{DType::i64, {x.t->type.dims[1]}}});
  return Val::tensor(r.empty() ? nullptr : r[0]);
}

}  // namespace stag::fe
