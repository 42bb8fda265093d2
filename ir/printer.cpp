#include "ir/printer.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstdint>

namespace stag {

static std::string print_loc(const Loc& loc) {
  if (!loc.known()) return {};
  std::string scope = loc.scope.empty() ? "" : " in " + to_string(Attr(loc.scope));
  return fmt::format(" loc({}:{}:{}{})", to_string(Attr(loc.file)), loc.line, loc.col, scope);
}

// Equality that tells -0.0 from 0.0, so a value that differs from its default only in sign is
// still printed (both forms mean different things to a kernel and must read back).
static bool same_attr(const Attr& a, const Attr& b) {
  auto bits = [](double v) { return std::bit_cast<uint64_t>(v); };
  if (const double* x = std::get_if<double>(&a))
    return std::holds_alternative<double>(b) && bits(*x) == bits(std::get<double>(b));
  if (const Floats* x = std::get_if<Floats>(&a)) {
    const Floats* y = std::get_if<Floats>(&b);
    return y && std::equal(x->begin(), x->end(), y->begin(), y->end(),
                           [&](double p, double q) { return bits(p) == bits(q); });
  }
  return a == b;
}

static std::string statements(const Graph& g, int indent);

std::string print(const Node& n, int indent) {
  const OpInfo& info = n.info();
  std::string out;
  for (size_t i = 0; i < n.results.size(); ++i)
    out += fmt::format("{}%{}: {}", i ? ", " : "", n.result(i)->name, to_string(n.result(i)->type));
  out += fmt::format(" = {}(", info.name);
  bool first = true;
  for (const Value* v : n.operands) {
    out += fmt::format("{}%{}", first ? "" : ", ", v->name);
    first = false;
  }
  for (size_t i = 0; i < info.attrs.size() && i < n.attrs.size(); ++i) {
    const AttrSpec& spec = info.attrs[i];
    if (spec.default_value && same_attr(*spec.default_value, n.attrs[i])) continue;
    out += fmt::format("{}{}={}", first ? "" : ", ", spec.name, to_string(n.attrs[i]));
    first = false;
  }
  out += ")" + print_loc(n.loc);
  if (!n.body) return out;
  return out + " {\n" + statements(*n.body, indent + 2) + std::string(static_cast<size_t>(indent) + 2, ' ') + "}";
}

// A graph's lines: attributes, nodes, outputs, updates, each indented by `indent` + 2 spaces.
static std::string statements(const Graph& g, int indent) {
  std::string pad(static_cast<size_t>(indent) + 2, ' '), out;
  for (const auto& [key, value] : g.attrs) out += fmt::format("{}attr {} = {}\n", pad, key, to_string(value));
  for (const auto& n : g.nodes) out += pad + print(*n, indent) + "\n";
  for (const auto& o : g.outputs)
    out += fmt::format("{}output {} = %{}{}\n", pad, o.name, o.value->name, print_loc(o.loc));
  for (const auto& u : g.updates)
    out += fmt::format("{}update %{} = %{}{}\n", pad, u.target->name, u.value->name, print_loc(u.loc));
  return out;
}

std::string print(const Graph& g) {
  return fmt::format("graph {} {{\n", g.name) + statements(g, 0) + "}\n";
}

}  // namespace stag
