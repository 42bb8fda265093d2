// Layers and blocks: binding constructor arguments, instantiating built-in layers, Sequential,
// repeat and user blocks with scoped names, initialiser overrides, and declarations.

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "frontend/lower_impl.h"

namespace stag::fe {

namespace {

/// Initialisers and the parameter attributes their positional arguments fill.
struct InitKind {
  const char* name;
  std::vector<const char*> fields;
};
const InitKind kInits[] = {
    {"zeros", {}},
    {"ones", {}},
    {"constant", {"value"}},
    {"uniform", {"low", "high"}},
    {"normal", {"mean", "std"}},
    {"xavier_uniform", {"gain"}},
    {"xavier_normal", {"gain"}},
    {"kaiming_uniform", {"a", "mode", "nonlinearity"}},
    {"kaiming_normal", {"a", "mode", "nonlinearity"}},
    {"orthogonal", {"gain"}},
};

}  // namespace

// ---- layers
const BlockDef* Lowering::find_block(const std::string& name) const {
  for (const auto& b : file_.blocks)
    if (b.name == name) return &b;
  return nullptr;
}

std::vector<Val> Lowering::call_layer(Instance& in, const std::vector<Val>& ins, const Loc& loc) {
  if (in.broken) return {};
  ++in.calls;
  std::string caller = std::exchange(c_.scope, in.path);
  auto out = layer_outputs(in, ins, loc);
  c_.scope = caller;
  return out;
}

std::vector<Val> Lowering::layer_outputs(Instance& in, const std::vector<Val>& ins, const Loc& loc) {
  int lo = 1, hi = 1;
  if (in.builtin) lo = in.builtin->min_inputs, hi = in.builtin->max_inputs;
  if (in.block) lo = hi = static_cast<int>(in.block->inputs.size());
  int n = static_cast<int>(ins.size());
  if (n < lo || n > hi) {
    fail(loc, fmt::format("{} takes {} input{}, got {}", in.label(), lo, lo == 1 ? "" : "s", n));
    return {};
  }
  for (const Val& v : ins)
    if (v.kind != Val::Tensor || !v.t) return {};
  // A layer whose op failed gives an invalid value; it is reported, so it ends the chain.
  auto valid = [](std::vector<Val> out) {
    for (const Val& v : out)
      if (!v.ok() || (v.kind == Val::Tensor && !v.t)) return std::vector<Val>{};
    return out;
  };
  if (in.builtin) return valid(in.builtin->forward(c_, in, ins, loc));
  if (in.block) return valid(call_block(in, ins, loc));
  // Sequential: each child's single output feeds the next.
  std::vector<Val> x = ins;
  for (auto& child : in.children) {
    x = call_layer(*child, x, loc);
    if (x.empty()) return {};
    if (x.size() != 1) {
      fail(loc, fmt::format("{} gives {} results; a Sequential passes one tensor along", child->label(), x.size()));
      return {};
    }
  }
  return x;
}

std::vector<Val> Lowering::call_block(Instance& in, const std::vector<Val>& ins, const Loc& loc) {
  const BlockDef& b = *in.block;
  if (!b.has_forward) {
    fail(loc, fmt::format("block '{}' has no forward section", b.name));
    return {};
  }
  Scope s{&in, {}, true};
  for (size_t i = 0; i < ins.size(); ++i) s.locals[b.inputs[i]] = ins[i];
  size_t before = c_.diags.error_count();
  LoopFrame* caller_loop = std::exchange(loop_, nullptr);  // the block's own statements are not the loop's
  std::optional<Val> result = run(s, b.body, false);
  loop_ = caller_loop;
  // Errors point into the block's text; say which instance was running and who called it.
  if (c_.diags.error_count() != before) c_.diags.note(loc, fmt::format("in {}, called here", in.label()));
  if (!result) {
    if (!c_.diags.has_errors()) fail(loc, fmt::format("block '{}' ended without `return`", b.name));
    return {};
  }
  if (!result->ok()) return {};
  if (result->kind == Val::Tuple) return result->items;
  return {*result};
}

// Binds `Ctor(args)` against a signature; every value is checked for its kind and range.
bool Lowering::bind_builtin(Scope& s, const LayerKind& k, const Expr& e, Instance& in) {
  std::vector<std::optional<Val>> got(k.args.size());
  if (e.args.size() > k.args.size()) {
    fail(e.args[k.args.size()]->loc, fmt::format("{} takes at most {} positional argument{}", k.name, k.args.size(),
                                                 k.args.size() == 1 ? "" : "s"));
    return false;
  }
  std::vector<Loc> locs(k.args.size(), e.loc);
  for (size_t i = 0; i < e.args.size(); ++i) {
    got[i] = eval(s, *e.args[i]);
    locs[i] = e.args[i]->loc;
  }
  for (const auto& kw : e.kwargs) {
    size_t i = 0;
    while (i < k.args.size() && kw.name != k.args[i].name) ++i;
    if (i == k.args.size()) {
      std::vector<std::string> names;
      for (const auto& a : k.args) names.emplace_back(a.name);
      fail(kw.loc, fmt::format("{} has no argument '{}'{}", k.name, kw.name, hint(kw.name, names)));
      return false;
    }
    if (got[i]) {
      fail(kw.loc, fmt::format("{}: argument '{}' given twice", k.name, kw.name));
      return false;
    }
    got[i] = eval(s, *kw.value);
    locs[i] = kw.loc;
  }
  for (size_t i = 0; i < k.args.size(); ++i) {
    const ArgSpec& spec = k.args[i];
    if (!got[i]) {
      if (!spec.def) {
        fail(e.loc, fmt::format("{} needs argument '{}'", k.name, spec.name));
        return false;
      }
      in.args[spec.name] = *spec.def;
      continue;
    }
    if (!got[i]->ok()) return false;
    auto v = check_arg(k, spec, *got[i], locs[i]);
    if (!v) return false;
    in.args[spec.name] = *v;
  }
  return true;
}

std::optional<Val> Lowering::check_arg(const LayerKind& k, const ArgSpec& spec, Val v, const Loc& loc) {
  auto bad = [&](const char* want) {
    fail(loc, fmt::format("{}: argument '{}' must be {}, got {}", k.name, spec.name, want, describe(v)));
    return std::nullopt;
  };
  auto in_range = [&](int64_t x, int64_t lo) { return x >= lo && x <= kMaxFeatures; };
  switch (spec.kind) {
    case ArgKind::Size:
      if (v.kind != Val::Int || !in_range(v.i, 1)) return bad("an integer from 1 to 16777216");
      return v;
    case ArgKind::Int:
      if (v.kind != Val::Int || v.i < -kMaxFeatures || v.i > kMaxFeatures) return bad("an integer");
      return v;
    case ArgKind::Float:
      if (!v.is_number() || !std::isfinite(v.number())) return bad("a number");
      return Val::real(v.number());
    case ArgKind::Prob:
      if (!v.is_number() || !(v.number() >= 0 && v.number() < 1)) return bad("a probability in [0, 1)");
      return Val::real(v.number());
    case ArgKind::Bool:
      if (v.kind != Val::Bool) return bad("true or false");
      return v;
    case ArgKind::Str:
      if (v.kind != Val::Str) return bad("a string");
      return v;
    case ArgKind::OptPair:
      if (v.kind == Val::None) return v;
      [[fallthrough]];
    case ArgKind::Pair: {
      if (v.kind == Val::Int && in_range(v.i, 0)) {
        Val l;
        l.kind = Val::List;
        l.items = {v, v};
        return l;
      }
      if (v.kind == Val::List && v.items.size() == 2 &&
          std::all_of(v.items.begin(), v.items.end(), [&](const Val& x) { return x.kind == Val::Int && in_range(x.i, 0); }))
        return v;
      return bad("an integer from 0 to 16777216 or a pair of them");
    }
    case ArgKind::Shape: {
      if (v.kind == Val::Int && in_range(v.i, 1)) {
        Val l;
        l.kind = Val::List;
        l.items = {v};
        return l;
      }
      if (v.kind == Val::List && !v.items.empty() && v.items.size() <= kMaxRank &&
          std::all_of(v.items.begin(), v.items.end(), [&](const Val& x) { return x.kind == Val::Int && in_range(x.i, 1); }))
        return v;
      return bad("a positive integer or a list of them");
    }
  }
  return std::nullopt;
}

std::vector<std::string> Lowering::constructors() const {
  std::vector<std::string> out{"Sequential"};
  for (const auto& k : layer_kinds()) out.emplace_back(k.name);
  for (const auto& b : file_.blocks) out.push_back(b.name);
  return out;
}

// Makes the layer `parent.local` from a constructor expression; nullptr after an error.
Instance* Lowering::instantiate(Scope& s, const Expr& e, Instance& parent, const std::string& local, bool frozen) {
  if (++instances_ > kMaxNodes) {
    if (instances_ == kMaxNodes + 1) fail(e.loc, fmt::format("the model is too large: more than {} layers", kMaxNodes));
    return nullptr;
  }
  auto in = std::make_unique<Instance>();
  in->path = parent.full(local);
  in->loc = e.loc;
  in->frozen = frozen || parent.frozen;
  Instance* raw = in.get();
  parent.children.push_back(std::move(in));
  parent.child_names[local] = raw;
  if (construct(s, e, raw)) return raw;
  raw->broken = true;
  return nullptr;
}

Instance* Lowering::construct(Scope& s, const Expr& e, Instance* raw) {
  if (e.kind == Expr::Repeat) {
    raw->kind = "Sequential";
    Val n = eval(s, *e.args[0]);
    if (!n.ok()) return nullptr;
    if (n.kind != Val::Int || n.i < 1 || n.i > kMaxRepeat) {
      fail(e.args[0]->loc, fmt::format("repeat count must be an integer from 1 to {}, got {}", kMaxRepeat, describe(n)));
      return nullptr;
    }
    for (int64_t i = 0; i < n.i; ++i)
      if (!instantiate(s, *e.args[1], *raw, std::to_string(i), false)) return nullptr;
    return raw;
  }
  if (e.kind != Expr::Call) {
    fail(e.loc, "expected a layer constructor such as Linear(784, 10), Sequential(...) or repeat N Block(...)");
    return nullptr;
  }
  raw->kind = e.text;
  if (e.text == "Sequential") {
    if (!e.kwargs.empty()) {
      fail(e.kwargs[0].loc, "Sequential takes layers, not keyword arguments");
      return nullptr;
    }
    for (size_t i = 0; i < e.args.size(); ++i)
      if (!instantiate(s, *e.args[i], *raw, std::to_string(i), false)) return nullptr;
    return raw;
  }
  if (const LayerKind* k = find_layer_kind(e.text)) {
    raw->builtin = k;
    if (!bind_builtin(s, *k, e, *raw)) return nullptr;
    return k->make(c_, *raw) ? raw : nullptr;
  }
  if (const BlockDef* b = find_block(e.text)) return instantiate_block(s, *b, e, *raw) ? raw : nullptr;
  fail(e.loc, fmt::format("unknown layer '{}'{}", e.text, hint(e.text, constructors())));
  return nullptr;
}

bool Lowering::instantiate_block(Scope& outer, const BlockDef& b, const Expr& e, Instance& in) {
  in.block = &b;
  if (std::find(stack_.begin(), stack_.end(), b.name) != stack_.end()) {
    fail(e.loc, fmt::format("block '{}' contains itself: {} -> {}", b.name, fmt::join(stack_, " -> "), b.name));
    return false;
  }
  if (stack_.size() >= kMaxBlockDepth) {
    fail(e.loc, fmt::format("blocks are nested more than {} deep", kMaxBlockDepth));
    return false;
  }
  // Arguments are evaluated where the block is used; defaults inside the block.
  if (e.args.size() > b.params.size()) {
    fail(e.args[b.params.size()]->loc, fmt::format("block '{}' takes at most {} argument{}", b.name, b.params.size(),
                                                   b.params.size() == 1 ? "" : "s"));
    return false;
  }
  std::vector<std::optional<Val>> got(b.params.size());
  for (size_t i = 0; i < e.args.size(); ++i) got[i] = eval(outer, *e.args[i]);
  for (const auto& kw : e.kwargs) {
    auto it = std::find(b.params.begin(), b.params.end(), kw.name);
    if (it == b.params.end()) {
      fail(kw.loc, fmt::format("block '{}' has no parameter '{}'{}", b.name, kw.name, hint(kw.name, b.params)));
      return false;
    }
    size_t i = static_cast<size_t>(it - b.params.begin());
    if (got[i]) {
      fail(kw.loc, fmt::format("block '{}': argument '{}' given twice", b.name, kw.name));
      return false;
    }
    got[i] = eval(outer, *kw.value);
  }
  Scope s{&in, {}, false};
  for (size_t i = 0; i < b.params.size(); ++i) {
    if (!got[i]) {
      if (!b.defaults[i]) {
        fail(e.loc, fmt::format("block '{}' needs argument '{}'", b.name, b.params[i]));
        return false;
      }
      got[i] = eval(s, *b.defaults[i]);
    }
    if (!got[i]->ok()) return false;
    if (got[i]->kind == Val::Tensor || got[i]->kind == Val::Layer) {
      fail(e.loc, fmt::format("block '{}': argument '{}' must be a compile-time value, got {}", b.name, b.params[i],
                              describe(*got[i])));
      return false;
    }
    in.args[b.params[i]] = *got[i];
  }
  stack_.push_back(b.name);
  bool ok = decls(s, b.decls);
  stack_.pop_back();
  return ok;
}

NamedAttrs Lowering::init_spec(Scope& s, const Expr& e) {
  if (e.kind != Expr::Name && e.kind != Expr::Call) {
    fail(e.loc, "expected an initialiser such as zeros, normal(std=0.02) or xavier_uniform()");
    return {};
  }
  const InitKind* k = nullptr;
  std::vector<std::string> names;
  for (const auto& ik : kInits) {
    names.emplace_back(ik.name);
    if (e.text == ik.name) k = &ik;
  }
  if (!k) {
    fail(e.loc, fmt::format("unknown initialiser '{}'{}", e.text, hint(e.text, names)));
    return {};
  }
  NamedAttrs out{{"init", std::string(k->name)}};
  if (e.args.size() > k->fields.size()) {
    fail(e.loc, fmt::format("{} takes at most {} positional argument{}", k->name, k->fields.size(), k->fields.size() == 1 ? "" : "s"));
    return {};
  }
  auto add = [&](const std::string& name, const Expr& x) {
    Val v = eval(s, x);
    if (!v.ok()) return false;
    auto a = to_attr(v, x.loc);
    if (!a) return false;
    out.emplace_back(name, std::move(*a));
    return true;
  };
  for (size_t i = 0; i < e.args.size(); ++i)
    if (!add(k->fields[i], *e.args[i])) return {};
  for (const auto& kw : e.kwargs) {
    if (std::find_if(k->fields.begin(), k->fields.end(), [&](const char* f) { return kw.name == f; }) == k->fields.end()) {
      std::vector<std::string> fs(k->fields.begin(), k->fields.end());
      fail(kw.loc, fmt::format("{} has no argument '{}'{}", k->name, kw.name,
                               fs.empty() ? std::string("; it takes none") : hint(kw.name, fs)));
      return {};
    }
    if (!add(kw.name, *kw.value)) return {};
  }
  return out;
}

// Declarations of a model or block body, in order. Returns false when any failed.
bool Lowering::decls(Scope& s, const std::vector<Decl>& ds) {
  size_t before = c_.diags.error_count();
  for (const Decl& d : ds)
    if (d.kind == Decl::Init) {
      NamedAttrs spec = init_spec(s, *d.init);
      if (spec.empty()) continue;
      std::string key = s.inst->full(d.name);
      if (c_.inits.count(key)) {
        fail(d.name_loc, fmt::format("'{}' is initialised twice", key));
        continue;
      }
      c_.inits[key] = {spec, d.init->loc, false};
    }
  for (const Decl& d : ds) {
    // Inside a block one failure ends the block: its siblings would repeat it, and in nested
    // blocks that repetition is exponential.
    if (c_.too_big || (!stack_.empty() && c_.diags.error_count() != before)) break;
    switch (d.kind) {
      case Decl::Batch:
      case Decl::Init: break;
      case Decl::If: {
        auto cond = condition(s, *d.value);
        if (cond) decls(s, *cond ? d.body : d.orelse);
        break;
      }
      case Decl::Const: {
        if (!check_new_name(s, d.name, d.name_loc)) break;
        Val v = eval(s, *d.value);
        if (v.ok() && v.kind != Val::Int && v.kind != Val::Float && v.kind != Val::Bool && v.kind != Val::Str && v.kind != Val::List)
          fail(d.value->loc, fmt::format("a constant must be a number, bool, string or list, got {}", describe(v)));
        s.inst->args[d.name] = v;
        break;
      }
      case Decl::Input: {
        if (!check_new_name(s, d.name, d.name_loc)) break;
        Val t = eval(s, *d.value);
        inputs_[d.name] = Val{};
        if (!t.ok()) break;
        if (d.name == "step") {
          fail(d.name_loc, "the input name 'step' is reserved for the training step counter");
          break;
        }
        if (c_.opts.decode && t.type.rank() == 2 && !is_float(t.type.dtype)) {
          // A decode step takes one token of each sequence [B, T].
          c_.context = std::max(c_.context, t.type.dims[1]);
          t.type.dims[1] = 1;
        }
        c_.b.set_loc(d.loc);
        auto r = c_.b.try_create(Op::input, {}, {}, {t.type}, {d.name});
        if (!r.error.empty()) fail(d.loc, r.error);
        else inputs_[d.name] = Val::tensor(r.values[0]);
        break;
      }
      case Decl::Layer:
        if (!check_new_name(s, d.name, d.name_loc)) break;
        instantiate(s, *d.value, *s.inst, d.name, d.frozen);
        break;
      case Decl::Param: {
        if (!check_new_name(s, d.name, d.name_loc)) break;
        Val t = eval(s, *d.value);
        if (!t.ok()) break;
        NamedAttrs init = d.init ? init_spec(s, *d.init) : NamedAttrs{{"init", std::string("zeros")}};
        if (init.empty()) break;
        bool was = s.inst->frozen;
        s.inst->frozen = was || d.frozen;
        Loc saved = s.inst->loc;
        s.inst->loc = d.loc;
        c_.parameter(*s.inst, d.name, t.type, init);
        s.inst->loc = saved;
        s.inst->frozen = was;
        break;
      }
    }
  }
  return c_.diags.error_count() == before;
}

std::optional<bool> Lowering::condition(Scope& s, const Expr& e) {
  bool forward = s.forward;
  s.forward = false;  // a condition is decided while compiling: no tensors
  Val v = eval(s, e);
  s.forward = forward;
  if (!v.ok()) return std::nullopt;
  if (v.kind != Val::Bool) {
    fail(e.loc, fmt::format("an 'if' condition must be true or false at compile time, got {}", describe(v)));
    return std::nullopt;
  }
  return v.b;
}

}  // namespace stag::fe
