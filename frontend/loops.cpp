// `for` loops in a forward section, lowered to one scan op. The body's statements are lowered
// in the enclosing graph, reading placeholders for the values the loop carries and for each
// step's slices; then the nodes that depend on a placeholder move into the scan's body
// (ir/outline.h) and the rest stay outside, computed once. A loop carries the outer locals
// its body rebinds, as Python's `for` does; `stack NAME = e` collects e of every step.

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "frontend/lower_impl.h"
#include "ir/outline.h"

namespace stag::fe {

namespace {

// The names a loop body assigns, where it first does (through `if` branches and inner loops).
void assigned(const std::vector<Stmt>& body, std::vector<std::pair<std::string, Loc>>& out) {
  for (const Stmt& st : body) {
    if (st.kind == Stmt::Assign)
      for (size_t i = 0; i < st.targets.size(); ++i) out.push_back({st.targets[i], st.target_locs[i]});
    assigned(st.body, out);
    assigned(st.orelse, out);
  }
}

// The names a loop's `stack` statements bind after it (not those of inner loops).
void stacked(const std::vector<Stmt>& body, std::vector<std::string>& out) {
  for (const Stmt& st : body) {
    if (st.kind == Stmt::Stack) out.push_back(st.targets[0]);
    if (st.kind == Stmt::If) stacked(st.body, out), stacked(st.orelse, out);
  }
}

}  // namespace

// One clause's sequence: a tensor with the loop's axis moved to the front, or range(...).
std::optional<Lowering::Sequence> Lowering::sequence(Scope& s, const Stmt::Clause& c) {
  const Expr* e = c.sequence.get();
  Sequence q{c.name, c.loc};
  if (e->kind == Expr::Call && e->text == "reversed") {
    if (e->args.size() != 1 || !e->kwargs.empty())
      return fail(e->loc, "reversed(...) takes one sequence: a tensor or range(...)"), std::nullopt;
    q.reversed = true;
    e = e->args[0].get();
  }
  if (e->kind == Expr::Call && e->text == "range") return range_sequence(s, c, *e, q);
  Val v = eval(s, *e);
  if (!v.ok()) return std::nullopt;
  if (v.kind != Val::Tensor || v.t->type.rank() == 0)
    return fail(e->loc, fmt::format("a loop runs over the slices of a tensor of rank 1 or more, or over range(N); got {}",
                                    describe(v))), std::nullopt;
  auto rank = static_cast<int64_t>(v.t->type.rank());
  if (c.along) {
    Val a = eval(s, *c.along);
    if (!a.ok()) return std::nullopt;
    if (a.kind != Val::Int || a.i < -rank || a.i >= rank)
      return fail(c.along->loc, fmt::format("along: expected an axis of {} from {} to {}, got {}", to_string(v.t->type),
                                            -rank, rank - 1, describe(a))), std::nullopt;
    q.axis = a.i < 0 ? a.i + rank : a.i;
  }
  q.length = v.t->type.dims[static_cast<size_t>(q.axis)];
  q.steps = q.axis == 0 ? v.t : c_.op(Op::transpose, {v.t}, {{"perm", move_axis(v.t->type.rank(), static_cast<size_t>(q.axis), 0)}}, c.loc, "for");
  if (!q.steps) return std::nullopt;
  return q;
}

// range(stop) or range(start, stop): the step index as i64[] (none for `_`).
std::optional<Lowering::Sequence> Lowering::range_sequence(Scope& s, const Stmt::Clause& c, const Expr& e, Sequence q) {
  q.is_range = true;
  if (c.along) return fail(c.along->loc, "along: range(...) has one axis; `along` belongs to a tensor"), std::nullopt;
  std::vector<int64_t> bounds;
  for (const auto& a : e.args) {
    Val v = eval(s, *a);
    if (!v.ok()) return std::nullopt;
    if (v.kind != Val::Int) return fail(a->loc, fmt::format("range: expected an integer, got {}", describe(v))), std::nullopt;
    bounds.push_back(v.i);
  }
  if (bounds.empty() || bounds.size() > 2 || !e.kwargs.empty())
    return fail(e.loc, "range takes range(stop) or range(start, stop)"), std::nullopt;
  int64_t start = bounds.size() == 2 ? bounds[0] : 0, stop = bounds.back();
  if (stop <= start || stop - start > kMaxLoopSteps)
    return fail(e.loc, fmt::format("range({}, {}): a loop runs from 1 to {} steps", start, stop, kMaxLoopSteps)), std::nullopt;
  q.length = stop - start;
  if (c.name == "_") return q;
  auto t = c_.ops(Op::iota, {}, {{"axis", int64_t{0}}}, e.loc, "range", {{DType::i64, {q.length}}});
  q.steps = t.empty() ? nullptr : t[0];
  if (q.steps && start != 0) q.steps = c_.op(Op::add, {q.steps, c_.scalar(static_cast<double>(start), DType::i64, e.loc)}, {}, e.loc, "range");
  if (!q.steps) return std::nullopt;
  return q;
}

// The outer locals the body rebinds: the loop's carries (the loop's own variables are not).
std::vector<Lowering::Carry> Lowering::carries(Scope& s, const Stmt& st, bool& ok) {
  std::vector<std::pair<std::string, Loc>> names;
  assigned(st.body, names);
  std::set<std::string> seen;
  for (const auto& c : st.clauses) seen.insert(c.name);
  std::vector<Carry> out;
  for (const auto& [name, loc] : names) {
    auto it = s.locals.find(name);
    if (name == "_" || it == s.locals.end() || !seen.insert(name).second) continue;
    if (!it->second.ok()) {
      ok = false;
      continue;
    }
    if (it->second.kind != Val::Tensor) {
      fail(loc, fmt::format("'{}' is {} before the loop: a loop carries tensors only; name the value inside the loop "
                            "differently", name, describe(it->second)));
      ok = false;
      continue;
    }
    out.push_back({name, loc, it->second.t, nullptr});
  }
  return out;
}

// The sequences of a loop's header: of one length, all forward or all reversed.
bool Lowering::sequences(Scope& s, const Stmt& st, std::vector<Sequence>& out) {
  std::set<std::string> names;
  bool ok = true;
  for (const auto& c : st.clauses) {
    if (c.name != "_" && !names.insert(c.name).second) {
      fail(c.loc, fmt::format("the loop names '{}' twice", c.name));
      ok = false;
    }
    auto q = sequence(s, c);
    if (!q) {
      ok = false;
      continue;
    }
    if (!out.empty() && q->length != out[0].length) {
      fail(c.loc, fmt::format("'{}' has {} steps but '{}' has {}: a loop's sequences are of one length", c.name, q->length,
                              out[0].name, out[0].length));
      ok = false;
    } else if (!out.empty() && q->reversed != out[0].reversed) {
      fail(c.loc, "a loop's sequences run the same way: write reversed(...) around all of them or none");
      ok = false;
    }
    out.push_back(*q);
  }
  return ok;
}

void Lowering::poison_loop_results(Scope& s, const Stmt& st) {
  std::vector<std::pair<std::string, Loc>> names;
  assigned(st.body, names);
  for (const auto& n : names)
    if (s.locals.count(n.first)) s.locals[n.first] = Val{};
  std::vector<std::string> stacks;
  stacked(st.body, stacks);
  for (const auto& n : stacks) s.locals[n] = Val{};
}

void Lowering::loop(Scope& s, const Stmt& st, bool is_model) {
  std::vector<Sequence> seqs;
  bool ok = sequences(s, st, seqs);
  auto carried = carries(s, st, ok);
  if (!ok) return poison_loop_results(s, st);
  // Placeholders for the carries and the slices; the body's nodes follow them.
  Scope inner{s.inst, s.locals, s.forward};
  std::vector<Value*> params;
  std::vector<std::string> names;
  auto placeholder = [&](const std::string& name, const Type& type, const Loc& loc) {
    Value* v = c_.g.append(Op::input, {}, {}, {type}, {c_.g.fresh_name()}, c_.scoped(loc))->result();
    params.push_back(v);
    names.push_back(name == "_" ? "t" : name);
    inner.locals[name] = Val::tensor(v);
    return v;
  };
  for (auto& c : carried) c.param = placeholder(c.name, c.init->type, c.loc);
  for (const auto& q : seqs)
    if (q.steps) placeholder(q.name, {q.steps->type.dtype, Dims(q.steps->type.dims.begin() + 1, q.steps->type.dims.end())}, q.loc);
  LoopFrame frame;
  auto tensor = std::find_if(seqs.begin(), seqs.end(), [](const Sequence& q) { return !q.is_range; });
  frame.axis = tensor == seqs.end() ? 0 : tensor->axis;
  for (const auto& c : carried) frame.carries.insert(c.name);
  size_t first = c_.g.nodes.size(), errors = c_.diags.error_count();
  size_t outputs = c_.g.outputs.size(), updates = c_.g.updates.size();
  LoopFrame* outer = loop_;
  loop_ = &frame;
  c_.loop_keys.push_back({seqs.empty() ? 0 : seqs[0].length});
  exec(inner, st.body, is_model);
  Ctx::LoopKey key = c_.loop_keys.back();
  c_.loop_keys.pop_back();
  loop_ = outer;
  if (c_.g.outputs.size() != outputs || c_.g.updates.size() != updates)
    fail(st.loc, "the loop's body updates state (a BatchNorm's running statistics in training mode, or a decode step's "
                 "cache): only computations without effects can run inside a loop");
  if (c_.diags.error_count() != errors) return poison_loop_results(s, st);
  if (key.index) {  // the body draws random numbers: each step's index is one more per-step input
    auto index = c_.ops(Op::iota, {}, {{"axis", int64_t{0}}}, st.loc, "for", {{DType::i64, {key.length}}});
    if (index.empty()) return poison_loop_results(s, st);
    seqs.push_back({"step_index", st.loc, index[0], seqs[0].reversed, true, key.length, 0});
    params.push_back(key.index);
    names.push_back("step_index");
  }
  finish_loop(s, st, {std::move(seqs), std::move(carried), std::move(params), std::move(names), first}, inner, frame);
}

// The carries' new values and the stacked values become the body's outputs, the scan is made,
// and its results are bound to the carries' and stacks' names.
void Lowering::finish_loop(Scope& s, const Stmt& st, LoopParts p, Scope& inner, LoopFrame& frame) {
  OutlineSpec spec{p.first, {}, {}, {}, {}};
  std::vector<Value*> inits, xs;
  std::vector<std::string> kept;
  for (size_t i = 0; i < p.carries.size(); ++i) {
    const Carry& c = p.carries[i];
    const Val& end = inner.locals[c.name];
    if (end.kind == Val::Tensor && end.t == c.param) {  // read but never changed: an invariant
      c_.g.replace_uses(c.param, c.init);
      c_.g.erase_nodes([&](const Node& n) { return c.param->def == &n; });
      spec.first--;
      continue;
    }
    if (end.kind != Val::Tensor || end.t->type != c.init->type)
      return (void)fail(c.loc, fmt::format("'{}' is {} before the loop but {} after a step: a value the loop rebinds keeps its "
                                           "type", c.name, to_string(c.init->type), describe(end)));
    spec.params.push_back(c.param), spec.param_names.push_back(p.names[i]);
    spec.outs.push_back(end.t), spec.out_names.push_back(c.name);
    inits.push_back(c.init), kept.push_back(c.name);
  }
  for (size_t i = p.carries.size(); i < p.params.size(); ++i)
    spec.params.push_back(p.params[i]), spec.param_names.push_back(p.names[i]);
  for (const auto& q : p.seqs)
    if (q.steps) xs.push_back(q.steps);
  for (size_t k = 0; k < frame.stacks.size(); ++k) spec.outs.push_back(frame.stacks[k].value), spec.out_names.push_back(frame.stacks[k].name);
  if (spec.outs.empty())
    return (void)fail(st.loc, "the loop changes nothing: it rebinds no value from before it and stacks none (`stack NAME = "
                              "...`); names first bound inside a loop are its own");
  Outlined body = outline_body(c_.g, spec);
  std::vector<Value*> operands = inits;
  operands.insert(operands.end(), xs.begin(), xs.end());
  operands.insert(operands.end(), body.invariants.begin(), body.invariants.end());
  NamedAttrs attrs{{"num_carries", static_cast<int64_t>(inits.size())}, {"num_xs", static_cast<int64_t>(xs.size())},
                   {"length", p.seqs.empty() ? int64_t{0} : p.seqs[0].length}};
  if (!p.seqs.empty() && p.seqs[0].reversed) attrs.emplace_back("reverse", true);
  auto r = c_.ops(Op::scan, operands, attrs, st.loc, "for", {}, body.body);
  if (r.empty()) return poison_loop_results(s, st);
  for (size_t i = 0; i < kept.size(); ++i) s.locals[kept[i]] = Val::tensor(r[i]);
  for (size_t k = 0; k < frame.stacks.size(); ++k) {
    const auto& y = frame.stacks[k];
    Value* v = r[kept.size() + k];
    if (y.axis != 0) v = c_.op(Op::transpose, {v}, {{"perm", move_axis(v->type.rank(), 0, static_cast<size_t>(y.axis))}}, y.loc, "stack");
    s.locals[y.name] = Val::tensor(v);
  }
}

// `stack NAME = e [along AXIS]`: e of every step, stacked into NAME after the loop.
void Lowering::stack(Scope& s, const Stmt& st) {
  const std::string& name = st.targets[0];
  const Loc& loc = st.target_locs[0];
  if (!loop_) return (void)fail(st.loc, "`stack` collects a loop's values, one a step: it belongs in a `for` loop's body");
  if (declared(s, name) && !inputs_.count(name))
    return (void)fail(loc, fmt::format("'{}' is already defined as a {}; choose another name", name, kind_of_name(s, name)));
  if (loop_->carries.count(name))
    return (void)fail(loc, fmt::format("'{}' is a value the loop carries (the body rebinds it); stack it under another name", name));
  for (const auto& y : loop_->stacks)
    if (y.name == name) return (void)fail(loc, fmt::format("the loop stacks '{}' twice", name));
  Val v = eval(s, *st.value);
  if (!v.ok()) return;
  if (v.kind != Val::Tensor) return (void)fail(st.value->loc, fmt::format("`stack` takes a tensor, got {}", describe(v)));
  auto rank = static_cast<int64_t>(v.t->type.rank()) + 1;
  int64_t axis = loop_->axis;
  if (st.along) {
    Val a = eval(s, *st.along);
    if (!a.ok()) return;
    if (a.kind != Val::Int) return (void)fail(st.along->loc, fmt::format("along: expected an integer axis, got {}", describe(a)));
    axis = a.i < 0 ? a.i + rank : a.i;
  }
  if (axis < 0 || axis >= rank)
    return (void)fail(st.along ? st.along->loc : loc, fmt::format("stack: the stacked value has rank {} (the step's {} and the "
                                                                  "steps), so `along` takes an axis from {} to {}{}", rank,
                                                                  to_string(v.t->type), -rank, rank - 1,
                                                                  st.along ? "" : "; the loop's axis does not fit: give `along`"));
  loop_->stacks.push_back({name, loc, v.t, axis});
}

}  // namespace stag::fe
