// Name resolution during lowering: locals, constants, layers, parameters and dotted paths.

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "frontend/lower_impl.h"

namespace stag::fe {

// ---- names
std::vector<std::string> Lowering::names_in(const Scope& s) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : s.locals) out.push_back(k);
  for (const auto& [k, v] : s.inst->args) out.push_back(k);
  for (const auto& [k, v] : s.inst->child_names) out.push_back(k);
  for (const auto& [k, v] : s.inst->params) out.push_back(k);
  return out;
}

bool Lowering::check_new_name(Scope& s, const std::string& n, const Loc& loc) {
  if (n == "B" && s.inst->path.empty() && !s.inst->block) {
    fail(loc, "'B' is the batch size; set it with `batch N`");
    return false;
  }
  if (declared(s, n)) {
    fail(loc, fmt::format("'{}' is already defined", n));
    return false;
  }
  return true;
}

Val Lowering::lookup(Scope& s, const std::string& name, const Loc& loc) {
  if (auto it = s.locals.find(name); it != s.locals.end()) return it->second;
  if (auto it = s.inst->args.find(name); it != s.inst->args.end()) return it->second;
  if (name == "true" || name == "false") return Val::boolean(name == "true");
  if (name == "None") return Val::none();
  if (auto d = dtype_from_name(name)) {
    Val v;
    v.kind = Val::DTypeV;
    v.dtype = *d;
    return v;
  }
  if (name == "B") {
    if (batch_) return Val::integer(*batch_);
    if (batch_failed_) return {};  // the bad `batch` line is already reported
    return fail(loc, "the batch size B is not set: write `batch N` in the model or pass --batch N");
  }
  // Layers and parameters, possibly through a dotted path: `wte.weight`, `h.0.attn`.
  Instance* at = s.inst;
  std::string rest = name;
  for (;;) {
    if (auto p = at->params.find(rest); p != at->params.end()) {
      if (!s.forward) return fail(loc, fmt::format("parameter '{}' can only be used in a forward section", name));
      return Val::tensor(p->second);
    }
    std::string head = rest.substr(0, rest.find('.'));
    auto ch = at->child_names.find(head);
    if (ch == at->child_names.end()) break;
    at = ch->second;
    if (head.size() == rest.size()) {
      Val v;
      v.kind = Val::Layer;
      v.layer = at;
      return v;
    }
    rest = rest.substr(head.size() + 1);
  }
  std::vector<std::string> cands = names_in(s);
  if (at != s.inst) {
    cands.clear();
    for (const auto& [k, v] : at->params) cands.push_back(k);
    for (const auto& [k, v] : at->child_names) cands.push_back(k);
    return fail(loc, fmt::format("'{}' has no parameter or layer '{}'{}", at->path, rest, hint(rest, cands)));
  }
  return fail(loc, fmt::format("unknown name '{}'{}", name, hint(name, cands)));
}

std::string Lowering::kind_of_name(const Scope& s, const std::string& n) const {
  if (s.inst->child_names.count(n)) return "layer";
  if (s.inst->params.count(n)) return "parameter";
  return "constant";
}

}  // namespace stag::fe
