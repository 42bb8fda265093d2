// The `train { ... }` section: every key, its value type and range checked against a table, and
// kept as flat `train.*` graph attributes for the training runtime.

#include <fmt/format.h>

#include <cmath>
#include <algorithm>
#include <limits>

#include "frontend/lowering.h"

namespace stag::fe {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

enum class FK { Float, Int, Bool, Str, Floats2, Ints };

/// One value a setting (or an optimizer/schedule argument) takes, with its range.
struct Field {
  Field(const char* n, FK k, double l = -kInf, double h = kInf, bool lo_o = false, bool hi_o = false,
        std::optional<Attr> d = {})
      : name(n), kind(k), lo(l), hi(h), lo_open(lo_o), hi_open(hi_o), def(std::move(d)) {}
  const char* name;
  FK kind;
  double lo = -kInf, hi = kInf;
  bool lo_open = false, hi_open = false;
  std::optional<Attr> def;
};

Field pos(const char* n, std::optional<Attr> d = {}) { return {n, FK::Float, 0, kInf, true, false, std::move(d)}; }
Field nonneg(const char* n, std::optional<Attr> d = {}) { return {n, FK::Float, 0, kInf, false, false, std::move(d)}; }
Field unit(const char* n, std::optional<Attr> d) { return {n, FK::Float, 0, 1, false, true, std::move(d)}; }
Field count(const char* n, std::optional<Attr> d = {}) { return {n, FK::Int, 1, 1e9, false, false, std::move(d)}; }

/// A named choice with arguments: `adam(lr=1e-3)`, `cosine(t_max=50)`.
struct Choice {
  const char* name;
  std::vector<Field> fields;
};

const std::vector<Choice>& optimizers() {
  static const std::vector<Choice> t = {
      {"sgd", {pos("lr", 1e-3), unit("momentum", 0.0), unit("dampening", 0.0), {"nesterov", FK::Bool, 0, 0, false, false, false},
               nonneg("weight_decay", 0.0)}},
      {"adam", {pos("lr", 1e-3), {"betas", FK::Floats2, 0, 1, false, true, Floats{0.9, 0.999}}, pos("eps", 1e-8),
                nonneg("weight_decay", 0.0)}},
      {"adamw", {pos("lr", 1e-3), {"betas", FK::Floats2, 0, 1, false, true, Floats{0.9, 0.999}}, pos("eps", 1e-8),
                 nonneg("weight_decay", 1e-2)}},
      {"adamax", {pos("lr", 2e-3), {"betas", FK::Floats2, 0, 1, false, true, Floats{0.9, 0.999}}, pos("eps", 1e-8),
                  nonneg("weight_decay", 0.0)}},
      {"adagrad", {pos("lr", 1e-2), nonneg("lr_decay", 0.0), nonneg("initial_accumulator_value", 0.0),
                   pos("eps", 1e-10), nonneg("weight_decay", 0.0)}},
      {"rmsprop", {pos("lr", 1e-2), unit("alpha", 0.99), pos("eps", 1e-8), unit("momentum", 0.0),
                   {"centered", FK::Bool, 0, 0, false, false, false}, nonneg("weight_decay", 0.0)}},
  };
  return t;
}

const std::vector<Choice>& schedules() {
  static const std::vector<Choice> t = {
      {"constant", {}},
      {"step", {count("step_size"), {"gamma", FK::Float, 0, 1, true, false, 0.1}}},
      {"multistep", {{"milestones", FK::Ints, 1, 1e9}, {"gamma", FK::Float, 0, 1, true, false, 0.1}}},
      {"exponential", {{"gamma", FK::Float, 0, 1, true, false}}},
      {"cosine", {count("t_max"), nonneg("eta_min", 0.0)}},
      {"warmup_cosine", {count("warmup"), count("t_max"), nonneg("eta_min", 0.0)}},
      {"restarts", {count("t_0"), count("t_mult", int64_t{1}), nonneg("eta_min", 0.0)}},
      {"plateau", {{"patience", FK::Int, 0, 1e9, false, false, int64_t{10}}, {"factor", FK::Float, 0, 1, false, true, 0.1}}},
  };
  return t;
}

// The plain settings; optimizer, schedule, batch and lr are handled apart.
const std::vector<Field>& plain() {
  static const std::vector<Field> t = {
      {"epochs", FK::Int, 1, 1e6},
      nonneg("weight_decay"),
      nonneg("l1"),
      pos("grad_clip"),
      pos("grad_clip_value"),
      unit("dropout", {}),
      count("early_stopping"),
      nonneg("min_delta"),
      {"monitor", FK::Str},
      {"monitor_mode", FK::Str},
      {"on_nonfinite", FK::Str},
      {"precision", FK::Str},
      {"data", FK::Str},
      {"tokenizer", FK::Str},
      {"seed", FK::Int, 0, 9.2e18},
      {"shuffle", FK::Bool},
      {"balance_classes", FK::Bool},
      {"label_smoothing", FK::Float, 0, 1},
  };
  return t;
}

constexpr const char* kDataSources[] = {"fashion-mnist", "fortunes", "fortune-topics"};

// "words:N" or "sentencepiece:N", N a positive integer (the runtime's make_tokenizer).
bool valid_tokenizer(const std::string& t) {
  size_t colon = t.find(':');
  std::string kind = t.substr(0, colon), size = colon == std::string::npos ? "" : t.substr(colon + 1);
  bool digits = !size.empty() && size.size() < 10 && std::all_of(size.begin(), size.end(), ::isdigit);
  return (kind == "words" || kind == "sentencepiece") && digits && std::stoll(size) > 0;
}

std::string range_text(const Field& f) {
  auto num = [](double v) { return std::isinf(v) ? std::string(v < 0 ? "-inf" : "inf") : fmt::format("{}", v); };
  bool hi_open = f.hi_open || std::isinf(f.hi);
  return fmt::format("{}{}, {}{}", f.lo_open ? "(" : "[", num(f.lo), num(f.hi), hi_open ? ")" : "]");
}

/// A choice as written: its name and every field's value, given or by default.
struct Chosen {
  struct Value {
    const char* name;
    Attr value;
    Loc loc;
  };
  std::string name;
  Loc loc;
  std::vector<Value> fields;
};

// The runtime's --schedule spelling of a schedule (runtime/schedule.h's parse_schedule and plan_lr).
std::string schedule_spelling(const Chosen& c) {
  std::vector<std::string> v;
  for (const auto& f : c.fields) {
    if (const auto* ints = std::get_if<Ints>(&f.value)) v.push_back(fmt::format("{}", fmt::join(*ints, ",")));
    else v.push_back(to_string(f.value));
  }
  if (c.name == "warmup_cosine") return fmt::format("warmup:{}+cosine:{}:{}", v[0], v[1], v[2]);
  if (v.empty()) return c.name;
  return fmt::format("{}:{}", c.name, fmt::join(v, ":"));
}

struct TrainLowering {
  Ctx& c;
  std::vector<std::pair<std::string, Attr>> out;

  void error(const Loc& loc, const std::string& msg) { c.error(loc, "train: " + msg); }

  // A literal: number, string, bool, or a list of numbers. Nullopt after an error.
  std::optional<Attr> literal(const Expr& e, const std::string& key) {
    switch (e.kind) {
      case Expr::Int: return Attr(e.i);
      case Expr::Float: return Attr(e.f);
      case Expr::Str: return Attr(e.text);
      case Expr::Name:
        if (e.text == "true" || e.text == "false") return Attr(e.text == "true");
        break;
      case Expr::Unary:
        if (e.args[0]->kind == Expr::Int) return Attr(-e.args[0]->i);
        if (e.args[0]->kind == Expr::Float) return Attr(-e.args[0]->f);
        break;
      case Expr::List: {
        Ints is;
        Floats fs;
        bool any_float = false;
        for (const auto& item : e.args) {
          auto v = literal(*item, key);
          if (!v) return std::nullopt;
          if (kind_of(*v) == AttrKind::Int) is.push_back(std::get<int64_t>(*v)), fs.push_back(static_cast<double>(std::get<int64_t>(*v)));
          else if (kind_of(*v) == AttrKind::Float) fs.push_back(std::get<double>(*v)), any_float = true;
          else return error(item->loc, fmt::format("'{}' takes a list of numbers", key)), std::nullopt;
        }
        return any_float ? Attr(fs) : Attr(is);
      }
      default: break;
    }
    error(e.loc, fmt::format("'{}' takes a literal value (a number, string, bool or list)", key));
    return std::nullopt;
  }

  // Checks a value against a field; returns the value in the field's kind.
  std::optional<Attr> check(const Field& f, Attr v, const Loc& loc, const std::string& key) {
    static const AttrKind want[] = {AttrKind::Float, AttrKind::Int, AttrKind::Bool, AttrKind::Str, AttrKind::Floats, AttrKind::Ints};
    static const char* names[] = {"a number", "an integer", "true or false", "a string", "a list of 2 numbers", "a list of integers"};
    if (!coerce(v, want[static_cast<int>(f.kind)])) {
      error(loc, fmt::format("'{}' must be {}, got {}", key, names[static_cast<int>(f.kind)], to_string(v)));
      return std::nullopt;
    }
    auto in_range = [&](double x) {
      return std::isfinite(x) && (f.lo_open ? x > f.lo : x >= f.lo) && (f.hi_open ? x < f.hi : x <= f.hi);
    };
    std::vector<double> nums;
    if (f.kind == FK::Float) nums = {std::get<double>(v)};
    if (f.kind == FK::Int) nums = {static_cast<double>(std::get<int64_t>(v))};
    if (f.kind == FK::Floats2) {
      nums = std::get<Floats>(v);
      if (nums.size() != 2) return error(loc, fmt::format("'{}' must be a list of 2 numbers, got {}", key, to_string(v))), std::nullopt;
    }
    if (f.kind == FK::Ints)
      for (int64_t x : std::get<Ints>(v)) nums.push_back(static_cast<double>(x));
    for (double x : nums)
      if (!in_range(x)) return error(loc, fmt::format("'{}' must be in {}, got {}", key, range_text(f), to_string(v))), std::nullopt;
    return v;
  }

  void put(const std::string& key, Attr v, const Loc& loc) {
    for (const auto& [k, old] : out)
      if (k == key) return error(loc, fmt::format("'{}' is set twice", key.substr(6)));
    out.emplace_back(key, std::move(v));
  }

  // `name` or `name(k=v, ...)` against a table of choices: the choice with every field's value
  // (given or default), checked. Nullopt after an error.
  std::optional<Chosen> choice(const Setting& s, const std::vector<Choice>& table) {
    const Expr& e = *s.value;
    if (e.kind != Expr::Name && e.kind != Expr::Call)
      return error(e.loc, fmt::format("'{}' takes a name such as {}(...)", s.key, table[0].name)), std::nullopt;
    const Choice* ch = nullptr;
    std::vector<std::string> names;
    for (const auto& c2 : table) {
      names.emplace_back(c2.name);
      if (e.text == c2.name) ch = &c2;
    }
    if (!ch) {
      auto hint = closest_name(e.text, names);
      return error(e.loc, fmt::format("unknown {} '{}'{}; expected one of: {}", s.key, e.text,
                                      hint ? fmt::format(" (did you mean '{}'?)", *hint) : "", fmt::join(names, ", "))),
             std::nullopt;
    }
    Chosen chosen{ch->name, s.loc, {}};
    std::vector<std::optional<Attr>> given(ch->fields.size());
    std::vector<Loc> locs(ch->fields.size(), e.loc);
    if (e.args.size() > ch->fields.size())
      return error(e.args[ch->fields.size()]->loc, fmt::format("{} takes at most {} positional arguments", ch->name, ch->fields.size())),
             std::nullopt;
    for (size_t i = 0; i < e.args.size(); ++i) {
      given[i] = literal(*e.args[i], ch->fields[i].name);
      locs[i] = e.args[i]->loc;
      if (!given[i]) return std::nullopt;
    }
    for (const auto& kw : e.kwargs) {
      size_t i = 0;
      while (i < ch->fields.size() && kw.name != ch->fields[i].name) ++i;
      if (i == ch->fields.size()) {
        std::vector<std::string> fnames;
        for (const auto& f : ch->fields) fnames.emplace_back(f.name);
        auto hint = closest_name(kw.name, fnames);
        return error(kw.loc, fmt::format("{} has no argument '{}'{}", ch->name, kw.name,
                                         hint ? fmt::format("; did you mean '{}'?", *hint) : "")),
               std::nullopt;
      }
      if (given[i]) return error(kw.loc, fmt::format("{}: argument '{}' given twice", ch->name, kw.name)), std::nullopt;
      given[i] = literal(*kw.value, kw.name);
      locs[i] = kw.loc;
      if (!given[i]) return std::nullopt;
    }
    for (size_t i = 0; i < ch->fields.size(); ++i) {
      const Field& f = ch->fields[i];
      if (!given[i] && !f.def) return error(e.loc, fmt::format("{} needs argument '{}'", ch->name, f.name)), std::nullopt;
      auto v = given[i] ? check(f, *given[i], locs[i], f.name) : f.def;
      if (!v) return std::nullopt;
      chosen.fields.emplace_back(f.name, *v, locs[i]);
    }
    return chosen;
  }

  // The optimizer's name and each of its hyper-parameters as train.<name>.
  void optimizer(const Setting& s) {
    auto chosen = choice(s, optimizers());
    if (!chosen) return;
    put("train.optimizer", chosen->name, chosen->loc);
    for (const auto& f : chosen->fields) put(std::string("train.") + f.name, f.value, f.loc);
  }

  // One attribute in the runtime's --schedule spelling, so that the file and the flag are read
  // by one parser.
  void schedule(const Setting& s) {
    if (auto chosen = choice(s, schedules())) put("train.schedule", schedule_spelling(*chosen), chosen->loc);
  }
};

}  // namespace

void lower_train(Ctx& c, const ModelDef& m, std::optional<int64_t>& batch, Loc& batch_loc) {
  if (!m.has_train) return;
  TrainLowering t{c, {}};
  const Setting* optimizer = nullptr;
  const Setting* schedule = nullptr;
  const Setting* lr = nullptr;
  std::vector<const Setting*> rest;
  std::vector<std::string> keys{"optimizer", "schedule", "batch", "lr"};
  for (const auto& f : plain()) keys.emplace_back(f.name);
  for (const auto& s : m.train) {
    for (const Setting* other : rest)
      if (other->key == s.key) {
        t.error(s.loc, fmt::format("'{}' is set twice", s.key));
        return;
      }
    if (s.key == "optimizer") optimizer = &s;
    else if (s.key == "schedule") schedule = &s;
    else if (s.key == "lr") lr = &s;
    else if (std::find(keys.begin(), keys.end(), s.key) == keys.end()) {
      auto hint = closest_name(s.key, keys);
      t.error(s.loc, fmt::format("unknown setting '{}'{}", s.key, hint ? fmt::format("; did you mean '{}'?", *hint) : ""));
      continue;
    }
    rest.push_back(&s);
  }
  // The optimizer first, then its hyper-parameters; `lr = ...` beside it overrides its lr.
  if (optimizer) t.optimizer(*optimizer);
  else {
    Setting def{"optimizer", m.loc, std::make_unique<Expr>(Expr{Expr::Name, m.loc})};
    def.value->text = "adam";
    t.optimizer(def);
  }
  if (lr) {
    auto v = t.literal(*lr->value, "lr");
    if (v && (v = t.check(pos("lr"), *v, lr->value->loc, "lr")))
      for (auto& [k, old] : t.out)
        if (k == "train.lr") {
          bool explicit_lr = optimizer && optimizer->value->kind == Expr::Call &&
                             (std::any_of(optimizer->value->kwargs.begin(), optimizer->value->kwargs.end(),
                                          [](const KwArg& a) { return a.name == "lr"; }) || !optimizer->value->args.empty());
          if (explicit_lr) t.error(lr->loc, "'lr' is set twice: here and in the optimizer");
          old = *v;
        }
  }
  if (schedule) t.schedule(*schedule);
  else t.put("train.schedule", std::string("constant"), m.loc);
  for (const Setting* s : rest) {
    if (s == optimizer || s == schedule || s == lr) continue;
    auto v = t.literal(*s->value, s->key);
    if (!v) continue;
    if (s->key == "batch") {
      auto b = t.check(count("batch"), *v, s->value->loc, "batch");
      if (!b) continue;
      int64_t n = std::get<int64_t>(*b);
      if (n > (int64_t{1} << 30)) {
        t.error(s->value->loc, fmt::format("'batch' must be at most {}, got {}", int64_t{1} << 30, n));
      } else if (batch && *batch != n) {
        t.error(s->loc, fmt::format("'batch' is {} but the model says batch {}", n, *batch));
      } else {
        batch = n;
        batch_loc = s->loc;
      }
      continue;
    }
    const Field* f = nullptr;
    for (const auto& p : plain())
      if (s->key == p.name) f = &p;
    auto checked = t.check(*f, *v, s->value->loc, s->key);
    if (!checked) continue;
    if (s->key == "tokenizer" && !valid_tokenizer(std::get<std::string>(*checked))) {
      t.error(s->value->loc, fmt::format("tokenizer \"{}\": expected \"words:VOCAB_SIZE\" or \"sentencepiece:VOCAB_SIZE\" (a positive size)",
                                         std::get<std::string>(*checked)));
      continue;
    }
    if (s->key == "data") {
      const std::string& d = std::get<std::string>(*checked);
      bool known = std::find(std::begin(kDataSources), std::end(kDataSources), d) != std::end(kDataSources);
      bool path = d.find('/') != std::string::npos || d.ends_with(".csv") || d.ends_with(".txt");
      if (!known && !path) {
        t.error(s->value->loc, fmt::format("unknown data source \"{}\"; expected one of: {}, or a path to a .csv or .txt file",
                                           d, fmt::join(kDataSources, ", ")));
        continue;
      }
    }
    if (s->key == "monitor_mode" && std::get<std::string>(*checked) != "max" && std::get<std::string>(*checked) != "min") {
      t.error(s->value->loc, fmt::format("monitor_mode must be \"max\" or \"min\", got \"{}\"", std::get<std::string>(*checked)));
      continue;
    }
    if (s->key == "on_nonfinite" && std::get<std::string>(*checked) != "stop" && std::get<std::string>(*checked) != "skip") {
      t.error(s->value->loc, fmt::format("on_nonfinite must be \"stop\" or \"skip\", got \"{}\"", std::get<std::string>(*checked)));
      continue;
    }
    if (s->key == "precision" && std::get<std::string>(*checked) != "f32" && std::get<std::string>(*checked) != "bf16") {
      t.error(s->value->loc, fmt::format("precision must be \"f32\" or \"bf16\", got \"{}\"", std::get<std::string>(*checked)));
      continue;
    }
    if (s->key == "dropout") c.default_dropout = std::get<double>(*checked);
    if (s->key == "label_smoothing") c.default_label_smoothing = std::get<double>(*checked);
    if (s->key == "weight_decay") {
      for (auto& [k, old] : t.out)
        if (k == "train.weight_decay") {
          bool explicit_wd = optimizer && optimizer->value->kind == Expr::Call &&
                             std::any_of(optimizer->value->kwargs.begin(), optimizer->value->kwargs.end(),
                                         [](const KwArg& a) { return a.name == "weight_decay"; });
          if (explicit_wd) t.error(s->loc, "'weight_decay' is set twice: here and in the optimizer");
          old = *checked;
        }
      continue;
    }
    t.put("train." + s->key, *checked, s->loc);
  }
  bool has_epochs = std::any_of(t.out.begin(), t.out.end(), [](auto& kv) { return kv.first == "train.epochs"; });
  if (!has_epochs) t.put("train.epochs", int64_t{10}, m.loc);
  for (auto& [k, v] : t.out) c.g.set_attr(k, v);
}

}  // namespace stag::fe
