#include "ir/ops.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <stdexcept>

#include "ir/parser.h"

namespace stag {

namespace rules {
#define OP(id, min, max, traits, rule, attrs) std::string rule(ShapeCtx&);
#include "ir/ops.def"
}  // namespace rules

namespace {

// Parses "name:kind{a,b}=default ..." from ops.def. The table is ours, so a malformed entry is
// an internal bug: it throws at start-up and every test catches it.
std::vector<AttrSpec> parse_schema(std::string_view op, std::string_view text) {
  std::vector<AttrSpec> specs;
  size_t pos = 0;
  auto fail = [&](const std::string& why) {
    throw std::logic_error(fmt::format("ops.def: op {}: bad attribute schema: {}", op, why));
  };
  while (pos < text.size()) {
    if (text[pos] == ' ') {
      ++pos;
      continue;
    }
    // An entry ends at the next space outside brackets (defaults such as `[1, 1]` hold spaces).
    size_t end = pos;
    int depth = 0;
    while (end < text.size() && (depth > 0 || text[end] != ' ')) {
      if (text[end] == '[' || text[end] == '{') ++depth;
      if (text[end] == ']' || text[end] == '}') --depth;
      ++end;
    }
    std::string_view entry = text.substr(pos, end - pos);
    pos = end;
    size_t colon = entry.find(':');
    if (colon == std::string_view::npos) fail(std::string(entry));
    AttrSpec spec;
    spec.name = entry.substr(0, colon);
    std::string_view rest = entry.substr(colon + 1);
    size_t eq = rest.find('=');
    std::string_view kind_text = rest.substr(0, eq);
    size_t brace = kind_text.find('{');
    if (brace != std::string_view::npos) {
      std::string_view list = kind_text.substr(brace + 1, kind_text.size() - brace - 2);
      kind_text = kind_text.substr(0, brace);
      size_t start = 0;
      while (start <= list.size()) {
        size_t comma = std::min(list.find(',', start), list.size());
        spec.choices.emplace_back(list.substr(start, comma - start));
        start = comma + 1;
      }
    }
    static const std::pair<std::string_view, AttrKind> kinds[] = {
        {"i", AttrKind::Int},     {"f", AttrKind::Float},       {"b", AttrKind::Bool},
        {"s", AttrKind::Str},     {"ints", AttrKind::Ints},     {"floats", AttrKind::Floats},
        {"dtype", AttrKind::DTypeK}};
    auto k = std::find_if(std::begin(kinds), std::end(kinds),
                          [&](auto& p) { return p.first == kind_text; });
    if (k == std::end(kinds)) fail(fmt::format("unknown kind '{}'", kind_text));
    spec.kind = k->second;
    if (eq != std::string_view::npos) {
      std::string_view def = rest.substr(eq + 1);
      std::optional<Attr> value;
      if (spec.kind == AttrKind::Str) value = Attr(std::string(def));
      else value = parse_attr_literal(def);
      if (!value || !coerce(*value, spec.kind)) fail(fmt::format("bad default '{}'", def));
      spec.default_value = std::move(value);
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

std::vector<OpInfo> build_table() {
  std::vector<OpInfo> table;
#define OP(id, min, max, traits, rule, attrs) \
  table.push_back(OpInfo{Op::id, #id, min, max, traits, &rules::rule, parse_schema(#id, attrs)});
#include "ir/ops.def"
  return table;
}

}  // namespace

const std::vector<OpInfo>& all_ops() {
  static const std::vector<OpInfo> table = build_table();
  return table;
}

const OpInfo& op_info(Op op) { return all_ops()[static_cast<size_t>(op)]; }

std::optional<Op> op_from_name(std::string_view name) {
  for (const auto& info : all_ops())
    if (info.name == name) return info.op;
  return std::nullopt;
}

int OpInfo::attr_index(std::string_view attr_name) const {
  for (size_t i = 0; i < attrs.size(); ++i)
    if (attrs[i].name == attr_name) return static_cast<int>(i);
  return -1;
}

const Attr& ShapeCtx::attr(std::string_view name) const {
  int idx = info.attr_index(name);
  assert(idx >= 0 && "shape rule asked for an attribute its op does not have");
  return attrs[static_cast<size_t>(idx)];
}

static std::string check_one(const AttrSpec& spec, const Attr& value) {
  if (kind_of(value) != spec.kind)
    return fmt::format("attribute '{}' must be {}, got {}", spec.name, kind_name(spec.kind),
                       to_string(value));
  if (!spec.choices.empty()) {
    const auto& s = std::get<std::string>(value);
    if (std::find(spec.choices.begin(), spec.choices.end(), s) == spec.choices.end())
      return fmt::format("attribute '{}' is {}; expected one of: {}", spec.name, to_string(value),
                         fmt::join(spec.choices, ", "));
  }
  return {};
}

std::string resolve_attrs(const OpInfo& info, const NamedAttrs& given, std::vector<Attr>& out) {
  out.assign(info.attrs.size(), Attr{});
  std::vector<bool> seen(info.attrs.size(), false);
  for (const auto& [name, value] : given) {
    int idx = info.attr_index(name);
    if (idx < 0) {
      std::vector<std::string> names;
      for (const auto& a : info.attrs) names.push_back(a.name);
      auto hint = closest_name(name, names);
      if (info.attrs.empty()) return fmt::format("takes no attributes, got '{}'", name);
      return fmt::format("unknown attribute '{}'{}", name,
                         hint ? fmt::format("; did you mean '{}'?", *hint) : std::string());
    }
    if (seen[idx]) return fmt::format("attribute '{}' given twice", name);
    seen[idx] = true;
    Attr v = value;
    if (!coerce(v, info.attrs[idx].kind))
      return fmt::format("attribute '{}' must be {}, got {}", name, kind_name(info.attrs[idx].kind),
                         to_string(value));
    if (auto err = check_one(info.attrs[idx], v); !err.empty()) return err;
    out[idx] = std::move(v);
  }
  for (size_t i = 0; i < info.attrs.size(); ++i) {
    if (seen[i]) continue;
    if (!info.attrs[i].default_value)
      return fmt::format("missing attribute '{}' ({})", info.attrs[i].name,
                         kind_name(info.attrs[i].kind));
    out[i] = *info.attrs[i].default_value;
  }
  return {};
}

std::string check_arity(const OpInfo& info, size_t count) {
  int n = static_cast<int>(std::min<size_t>(count, INT32_MAX));
  if (n >= info.min_operands && (info.max_operands < 0 || n <= info.max_operands)) return {};
  std::string want = info.min_operands == info.max_operands ? std::to_string(info.min_operands)
                     : info.max_operands < 0 ? fmt::format("at least {}", info.min_operands)
                                             : fmt::format("{} to {}", info.min_operands, info.max_operands);
  bool one = info.min_operands == 1 && info.max_operands <= 1;  // "1 operand", "at least 1 operand"
  return fmt::format("expects {} operand{}, got {}", want, one ? "" : "s", count);
}

std::string check_attrs(const OpInfo& info, const std::vector<Attr>& attrs) {
  if (attrs.size() != info.attrs.size())
    return fmt::format("has {} attributes, expected {}", attrs.size(), info.attrs.size());
  for (size_t i = 0; i < attrs.size(); ++i)
    if (auto err = check_one(info.attrs[i], attrs[i]); !err.empty()) return err;
  return {};
}

std::string infer_types(const OpInfo& info, const std::vector<Type>& operands,
                        const std::vector<Attr>& attrs, const std::vector<Type>& declared,
                        std::vector<Type>& results, const Graph* body) {
  ShapeCtx ctx{info, operands, attrs, declared, {}, body};
  std::string err = info.shape_rule(ctx);
  if (!err.empty()) return fmt::format("{}: {}", info.name, err);
  for (const auto& t : ctx.results)
    if (auto e = type_error(t); !e.empty()) return fmt::format("{}: result {}", info.name, e);
  results = std::move(ctx.results);
  return {};
}

// Edit distance counting an insertion, a deletion, a substitution or a swap of two neighbours
// (the commonest typo: "alpah") as one edit.
static size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

std::optional<std::string> closest_name(std::string_view name,
                                        const std::vector<std::string>& candidates) {
  if (name.empty() || name.size() > 64) return std::nullopt;  // keeps the distance cheap
  // Close enough to be a typo: a third of the name may differ, and at least one character must
  // stay (else every one-letter name would suggest every other).
  size_t limit = std::min(std::max<size_t>(1, name.size() / 3), name.size() - 1);
  std::optional<std::string> best;
  size_t best_d = limit + 1;
  for (const auto& c : candidates) {
    if (c.size() > 64) continue;
    size_t d = edit_distance(name, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

}  // namespace stag
