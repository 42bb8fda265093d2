// Lowers a parsed `.stag` model to graph IR: evaluates compile-time values, instantiates layers
// and blocks with hierarchical parameter names, and runs the forward section through the
// builder, so every shape is checked by the op's own rule. This file holds the statements and
// the model; see lower_impl.h for the rest.

#include "frontend/lower.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "frontend/gan.h"
#include "frontend/lower_impl.h"
#include "frontend/parser.h"

namespace stag::fe {

// Runs statements; returns the value of `return` (blocks), or nullopt.
std::optional<Val> Lowering::run(Scope& s, const std::vector<Stmt>& body, bool is_model) {
  std::optional<Val> result = exec(s, body, is_model);
  if (!is_model && !result) {
    fail(body.empty() ? s.inst->loc : body.back().loc, fmt::format("block '{}' ended without `return`", s.inst->kind));
    return Val{};
  }
  return result;
}

std::optional<Val> Lowering::exec(Scope& s, const std::vector<Stmt>& body, bool is_model) {
  for (size_t i = 0; i < body.size(); ++i) {
    const Stmt& st = body[i];
    if (st.kind == Stmt::If) {
      auto cond = condition(s, *st.value);
      if (!cond) continue;
      // A branch that returns ends the block for this instance; other instances may take the
      // other branch, so what follows is not dead code.
      auto r = exec(s, *cond ? st.body : st.orelse, is_model);
      if (r) return r;
      continue;
    }
    if (loop_ && st.kind != Stmt::Assign && st.kind != Stmt::Loop && st.kind != Stmt::Stack) {
      const char* what = st.kind == Stmt::Output ? "output" : st.kind == Stmt::Loss ? "loss" : st.kind == Stmt::Metric ? "metric" : "return";
      fail(st.loc, fmt::format("`{}` cannot be inside a loop: a loop's body binds names and stacks values (`stack NAME = "
                               "...`), and what comes after the loop uses them", what));
      continue;
    }
    if (st.kind == Stmt::Loop) {
      loop(s, st, is_model);
      continue;
    }
    if (st.kind == Stmt::Return) {
      if (is_model) {
        fail(st.loc, "`return` belongs in a block's forward; a model names its results with `output`, `loss` and `metric`");
        continue;
      }
      if (i + 1 < body.size()) fail(body[i + 1].loc, "statement after `return` is never reached");
      Val v = eval(s, *st.value);
      if (v.ok() && v.kind != Val::Tensor && v.kind != Val::Tuple) {
        fail(st.value->loc, fmt::format("a block returns tensors, got {}", describe(v)));
        return Val{};
      }
      return v;
    }
    if (!is_model && st.kind != Stmt::Assign && st.kind != Stmt::Stack) {
      fail(st.loc, "`output`, `loss` and `metric` belong in the model's forward, not in a block");
      continue;
    }
    statement(s, st);
  }
  return std::nullopt;
}

void Lowering::statement(Scope& s, const Stmt& st) {
  switch (st.kind) {
    case Stmt::Assign: {
      for (size_t i = 0; i < st.targets.size(); ++i)
        if (st.targets[i] != "_" && declared(s, st.targets[i]) && !inputs_.count(st.targets[i]))
          return (void)fail(st.target_locs[i], fmt::format("'{}' is already defined as a {}; choose another name",
                                                           st.targets[i], kind_of_name(s, st.targets[i])));
      Val v = eval(s, *st.value);
      auto assign = [&](size_t i, Val x) {
        if (st.targets[i] != "_") s.locals[st.targets[i]] = std::move(x);
      };
      if (!v.ok()) {
        for (size_t i = 0; i < st.targets.size(); ++i) assign(i, Val{});
        return;
      }
      size_t n = v.kind == Val::Tuple ? v.items.size() : 1;
      if (n != st.targets.size()) {
        for (size_t i = 0; i < st.targets.size(); ++i) assign(i, Val{});
        return (void)fail(st.loc, fmt::format("the right side gives {} result{} but {} name{} given", n,
                                              n == 1 ? "" : "s", st.targets.size(), st.targets.size() == 1 ? " is" : "s are"));
      }
      if (v.kind == Val::Layer) return (void)fail(st.value->loc, "a layer cannot be assigned to a name; call it instead");
      for (size_t i = 0; i < n; ++i) assign(i, v.kind == Val::Tuple ? v.items[i] : v);
      return;
    }
    case Stmt::Output:
    case Stmt::Loss:
    case Stmt::Metric: {
      if ((c_.opts.decode || c_.opts.prefill) && st.kind != Stmt::Output) return;  // no targets to score
      std::string name = st.kind == Stmt::Loss ? "loss" : st.kind == Stmt::Metric ? "metric." + st.targets[0] : st.targets[0];
      Loc nloc = st.kind == Stmt::Loss ? st.loc : st.target_locs[0];
      Val v = st.value ? eval(s, *st.value) : lookup(s, st.targets[0], nloc);
      for (const auto& o : c_.g.outputs)
        if (o.name == name) return (void)fail(nloc, fmt::format("output '{}' is defined twice", name));
      if (!v.ok()) return;
      if (v.kind != Val::Tensor)
        return (void)fail(st.value ? st.value->loc : nloc, fmt::format("an output must be a tensor, got {}", describe(v)));
      if (st.kind != Stmt::Output && (v.t->type.rank() != 0 || !is_float(v.t->type.dtype)))
        return (void)fail(st.value->loc, fmt::format("the {} must be a float scalar (f32[]), got {}",
                                                     st.kind == Stmt::Loss ? "loss" : "metric", to_string(v.t->type)));
      if (st.kind == Stmt::Output && name == "loss")
        return (void)fail(nloc, "the output name 'loss' is kept for `loss = ...`");
      c_.g.outputs.push_back({name, v.t, st.loc});
      if (st.kind == Stmt::Output && !st.value) return;
      if (st.kind == Stmt::Output) s.locals[name] = v;
      return;
    }
    case Stmt::Stack: return stack(s, st);
    case Stmt::Return:
    case Stmt::Loop:
    case Stmt::If: return;  // handled by exec
  }
}


void Lowering::model(const ModelDef& m) {
  Graph& g = c_.g;
  g.set_attr("batch", int64_t{0});  // keeps the settings first; removed below when unset
  g.set_attr("training", c_.training());
  Loc batch_loc;
  for (const Decl& d : m.decls)
    if (d.kind == Decl::Batch) {
      if (batch_) {
        fail(d.loc, "the batch size is set twice");
        continue;
      }
      Scope s{&root_, {}, false};
      Val v = eval(s, *d.value);
      if (!v.ok()) continue;
      if (v.kind != Val::Int || v.i < 1 || v.i > (int64_t{1} << 30)) {
        batch_failed_ = true;
        fail(d.value->loc, fmt::format("batch must be an integer from 1 to {}, got {}", int64_t{1} << 30, describe(v)));
        continue;
      }
      batch_ = v.i;
      batch_loc = d.loc;
    }
  lower_train(c_, m, batch_, batch_loc);
  if (c_.opts.batch) batch_ = *c_.opts.batch;
  if (c_.opts.decode) batch_ = 1;
  if (batch_) g.set_attr("batch", *batch_);
  else g.attrs.erase(g.attrs.begin());

  root_.kind = m.name;
  root_.loc = m.loc;
  Scope s{&root_, {}, false};
  decls(s, m.decls);
  if (!m.has_forward) {
    fail(m.loc, fmt::format("model '{}' has no forward section", m.name));
    return;
  }
  s.forward = true;
  for (const auto& [k, v] : inputs_) s.locals[k] = v;
  run(s, m.forward, true);
  if (c_.opts.decode) decode_outputs(m);
  if (g.outputs.empty() && !c_.diags.has_errors())
    fail(m.forward_loc, "the forward section names no result: add `output NAME = ...` or `loss = ...`");
  for (const auto& [name, init] : c_.inits)
    if (!init.used && !c_.diags.has_errors()) {
      std::vector<std::string> params;
      for (const auto& n : g.nodes)
        if (n->op == Op::parameter) params.push_back(n->result()->name);
      fail(init.loc, fmt::format("init: no parameter named '{}'{}", name, hint(name, params)));
    }
  check_monitor(m);
}

// Early stopping and plateau watch a validation measure the trainer computes, or one of the
// model's metrics (`metric accuracy` is watched as "val_accuracy"), whose direction only the
// model's author knows.
void Lowering::check_monitor(const ModelDef& m) {
  const Attr* mon = c_.g.attr("train.monitor");
  if (!mon) return;
  auto loc_of = [&](const char* key) {
    for (const auto& st : m.train)
      if (st.key == key) return st.value->loc;
    return m.loc;
  };
  const std::string& want = std::get<std::string>(*mon);
  std::vector<std::string> choices{"val_loss", "val_accuracy", "val_macro_f1", "val_auc", "val_ppl", "val_bpc"};
  size_t trainer_measures = choices.size();
  for (const auto& o : c_.g.outputs)
    if (o.name.starts_with("metric.") && o.name != "metric.accuracy") choices.push_back("val_" + o.name.substr(7));
  auto at = std::find(choices.begin(), choices.end(), want);
  if (at == choices.end())
    fail(loc_of("monitor"), fmt::format("train: monitor \"{}\" is not a validation measure of the model; expected one of: {}",
                                        want, fmt::join(choices, ", ")));
  else if (static_cast<size_t>(at - choices.begin()) >= trainer_measures && !c_.g.attr("train.monitor_mode"))
    fail(loc_of("monitor"), fmt::format("train: monitor \"{}\" is the model's own metric: say which way it improves with "
                                        "monitor_mode = \"max\" or \"min\"", want));
}

// A decode step reads tokens [1, 1] and gives logits; it says how long a context it was trained on.
void Lowering::decode_outputs(const ModelDef& m) {
  if (c_.context == 0) fail(m.loc, fmt::format("model '{}' has no token input [B, T] to decode", m.name));
  c_.g.set_attr("context", c_.context);
}

std::unique_ptr<Graph> lower_stag(std::string_view text, const std::string& file, const LoadOptions& options,
                                  Diagnostics& diags) {
  if (text.size() > kMaxStagBytes) {
    diags.error({file, 1, 1}, fmt::format("the file is {} bytes; model descriptions are limited to {} bytes",
                                          text.size(), kMaxStagBytes));
    return nullptr;
  }
  auto ast = parse_stag(text, file, diags);
  if (!ast) return nullptr;
  // Names must be unique across the file before anything is lowered.
  std::set<std::string> seen;
  for (const auto& b : ast->blocks) {
    if (!seen.insert(b.name).second) diags.error(b.loc, fmt::format("block '{}' is defined twice", b.name));
    if (find_layer_kind(b.name) || b.name == "Sequential")
      diags.error(b.loc, fmt::format("block '{}' has the name of a built-in layer", b.name));
    std::set<std::string> params;
    for (size_t i = 0; i < b.params.size(); ++i)
      if (!params.insert(b.params[i]).second)
        diags.error(b.param_locs[i], fmt::format("block '{}' has two parameters named '{}'", b.name, b.params[i]));
  }
  // A GAN names two models; the commands that train or sample it look it up themselves.
  auto gan = resolve_gan(*ast, options.model, diags);
  if (gan && gan->kind == GanLookup::Pair && !options.model.empty()) {
    diags.error(gan->spec.loc, fmt::format("'{}' is a GAN, not one model: choose --model {} or --model {} (`stag train` "
                                           "and `stag sample` take the pair)", gan->spec.name, gan->spec.generator,
                                           gan->spec.discriminator));
    return nullptr;
  }
  const ModelDef* chosen = nullptr;
  std::vector<std::string> names;
  for (const auto& m : ast->models) {
    if (std::find(names.begin(), names.end(), m.name) != names.end())
      diags.error(m.loc, fmt::format("model '{}' is defined twice", m.name));
    names.push_back(m.name);
    if (!chosen && (options.model.empty() || options.model == m.name)) chosen = &m;
  }
  if (!chosen) {
    auto h = closest_name(options.model, names);
    diags.error({file, 1, 1}, fmt::format("the file has no model '{}'{}; it has: {}", options.model,
                                          h ? fmt::format(" (did you mean '{}'?)", *h) : "", fmt::join(names, ", ")));
    return nullptr;
  }
  if (diags.has_errors()) return nullptr;
  auto g = std::make_unique<Graph>(chosen->name);
  Ctx c(*g, diags, options);
  Lowering(c, *ast).model(*chosen);
  if (diags.has_errors()) return nullptr;
  return g;
}

}  // namespace stag::fe
