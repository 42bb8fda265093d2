// `gan` declarations: each setting read from the syntax tree against the file's models.

#include "frontend/gan.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "frontend/parser.h"
#include "ir/ops.h"

namespace stag::fe {

namespace {

struct GanReader {
  const File& file;
  Diagnostics& diags;
  GanSpec spec;

  void error(const Loc& loc, const std::string& msg) { diags.error(loc, msg); }

  std::vector<std::string> model_names() const {
    std::vector<std::string> names;
    for (const auto& m : file.models) names.push_back(m.name);
    return names;
  }

  void model_name(const Setting& s, std::string& out) {
    if (s.value->kind != Expr::Name) return error(s.value->loc, fmt::format("{} must name a model of the file", s.key));
    out = s.value->text;
    auto names = model_names();
    if (std::find(names.begin(), names.end(), out) != names.end()) return;
    auto h = closest_name(out, names);
    error(s.value->loc, fmt::format("{}: the file has no model '{}'{}; it has: {}", s.key, out,
                                    h ? fmt::format(" (did you mean '{}'?)", *h) : "", fmt::join(names, ", ")));
  }

  void loss(const Setting& s) {
    static const std::vector<std::string> kinds = {"non_saturating", "minimax", "least_squares", "hinge"};
    if (s.value->kind == Expr::Str && std::find(kinds.begin(), kinds.end(), s.value->text) != kinds.end()) {
      spec.loss = s.value->text;
      return;
    }
    error(s.value->loc, fmt::format("loss must be one of \"{}\"", fmt::join(kinds, "\", \"")));
  }

  void positive(const Setting& s, int64_t limit, int64_t& out) {
    if (s.value->kind != Expr::Int || s.value->i < 1 || s.value->i > limit)
      return error(s.value->loc, fmt::format("{} must be an integer from 1 to {}", s.key, limit));
    out = s.value->i;
  }

  static std::optional<double> number(const Expr& e) {
    if (e.kind == Expr::Int) return static_cast<double>(e.i);
    if (e.kind == Expr::Float) return e.f;
    if (e.kind == Expr::Unary && e.text == "-" && e.args.size() == 1)
      if (auto v = number(*e.args[0])) return -*v;
    return std::nullopt;
  }

  void range(const Setting& s) {
    const Expr& e = *s.value;
    std::optional<double> lo, hi;
    if (e.kind == Expr::List && e.args.size() == 2) lo = number(*e.args[0]), hi = number(*e.args[1]);
    if (!lo || !hi || !(*lo < *hi)) return error(e.loc, "real_range must be [LOW, HIGH] with LOW < HIGH");
    spec.real_low = *lo;
    spec.real_high = *hi;
  }

  void setting(const Setting& s) {
    if (s.key == "generator") return model_name(s, spec.generator);
    if (s.key == "discriminator") return model_name(s, spec.discriminator);
    if (s.key == "loss") return loss(s);
    if (s.key == "d_steps") return positive(s, 100, spec.d_steps);
    if (s.key == "real_range") return range(s);
    if (s.key == "epochs") return positive(s, 1000000, spec.epochs.emplace());
    if (s.key == "data") {
      if (s.value->kind != Expr::Str) return error(s.value->loc, "data must be a string");
      spec.data = s.value->text;
      return;
    }
    static const std::vector<std::string> keys = {"generator", "discriminator", "loss", "d_steps", "real_range", "epochs", "data"};
    auto h = closest_name(s.key, keys);
    error(s.loc, fmt::format("unknown GAN setting '{}'{}; expected {}", s.key, h ? fmt::format(" (did you mean '{}'?)", *h) : "",
                             fmt::join(keys, ", ")));
  }

  void read(const GanDef& d) {
    spec.name = d.name;
    spec.loc = d.loc;
    for (const auto& s : d.settings) setting(s);
    if (spec.generator.empty()) error(d.loc, fmt::format("gan '{}' names no generator: add `generator = MODEL`", d.name));
    if (spec.discriminator.empty())
      error(d.loc, fmt::format("gan '{}' names no discriminator: add `discriminator = MODEL`", d.name));
    if (!spec.generator.empty() && spec.generator == spec.discriminator)
      error(d.loc, "the generator and the discriminator must be two different models");
  }
};

GanLookup lookup(const File& f, const std::string& model, Diagnostics& diags) {
  GanLookup out;
  for (const auto& d : f.gans) {
    GanReader r{f, diags, {}};
    r.read(d);
    bool named = model.empty() || model == d.name;
    bool member = !model.empty() && (model == r.spec.generator || model == r.spec.discriminator);
    if (out.kind == GanLookup::None && (named || member)) {
      out.kind = named ? GanLookup::Pair : GanLookup::Member;
      out.spec = std::move(r.spec);
    }
  }
  return out;
}

}  // namespace

std::optional<GanLookup> resolve_gan(const File& ast, const std::string& model, Diagnostics& diags) {
  std::vector<std::string> seen;
  for (const auto& d : ast.gans) {
    if (std::find(seen.begin(), seen.end(), d.name) != seen.end()) diags.error(d.loc, fmt::format("gan '{}' is defined twice", d.name));
    for (const auto& m : ast.models)
      if (m.name == d.name) diags.error(d.loc, fmt::format("gan '{}' has the name of a model", d.name));
    seen.push_back(d.name);
  }
  GanLookup found = lookup(ast, model, diags);
  if (diags.has_errors()) return std::nullopt;
  return found;
}

std::optional<GanLookup> find_gan(std::string_view text, const std::string& file, const std::string& model,
                                  Diagnostics& diags) {
  auto ast = parse_stag(text, file, diags);
  if (!ast) return std::nullopt;
  return resolve_gan(*ast, model, diags);
}

}  // namespace stag::fe
