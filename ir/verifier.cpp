#include "ir/verifier.h"

#include <fmt/format.h>

#include <unordered_set>

namespace stag {

namespace {

class Verifier {
 public:
  Verifier(const Graph& g, Diagnostics& diags, const SourceMap* map, bool is_body = false)
      : g_(g), diags_(diags), map_(map), is_body_(is_body) {}

  bool run() {
    size_t before = diags_.error_count();
    if (!is_identifier(g_.name)) error({}, fmt::format("graph name '{}' is not an identifier", g_.name));
    std::unordered_set<std::string> keys;
    for (const auto& [key, value] : g_.attrs) {
      if (!is_identifier(key)) error({}, fmt::format("graph attribute name '{}' is not an identifier", key));
      if (!keys.insert(key).second) error({}, fmt::format("graph attribute '{}' is set twice", key));
    }
    for (const auto& n : g_.nodes) node(*n);
    outputs();
    updates();
    return diags_.error_count() == before;
  }

 private:
  void node(const Node& n) {
    const OpInfo& info = n.info();
    Loc loc = where(n);
    std::string who = n.results.empty() ? std::string(info.name) : "%" + n.result()->name;
    auto err = [&](const std::string& msg) { diags_.error(loc, msg, who); };
    if (is_body_ && n.op == Op::parameter)
      err("a body has no parameters: pass weights to the op as loop-invariant operands");
    // Structure: operands defined earlier (this also rules out cycles), names unique.
    bool operands_ok = true;
    for (const Value* v : n.operands) {
      if (!v || !defined_.count(v)) {
        err(fmt::format("{}: operand %{} is not defined before its use", info.name, v ? v->name : "?"));
        operands_ok = false;
      } else if (invalid_.count(v)) {
        operands_ok = false;  // reported where it is defined; shape rules assume valid types
      }
    }
    if (n.results.empty()) {
      err(fmt::format("{} has no results", info.name));
      operands_ok = false;
    }
    for (const auto& r : n.results) {
      if (!is_value_name(r->name)) err(fmt::format("value name '%{}' is not valid", r->name));
      if (!names_.insert(r->name).second) err(fmt::format("value name '%{}' is defined twice", r->name));
      if (r->def != &n) err(fmt::format("value %{} does not point back at its node", r->name));
      if (auto e = type_error(r->type); !e.empty()) {
        err(fmt::format("%{}: {}", r->name, e));
        invalid_.insert(r.get());
        operands_ok = false;  // one error for a bad type, not a second from the shape rule
      }
    }
    if (auto e = check_arity(info, n.operands.size()); !e.empty()) {
      err(fmt::format("{}: {}", info.name, e));
      operands_ok = false;
    }
    if (auto e = check_attrs(info, n.attrs); !e.empty()) {
      err(fmt::format("{}: {}", info.name, e));
      operands_ok = false;
    }
    if (!body(n, err)) operands_ok = false;
    if (operands_ok) {
      std::vector<Type> operand_types, declared, results;
      for (const Value* v : n.operands) operand_types.push_back(v->type);
      for (const auto& r : n.results) declared.push_back(r->type);
      if (auto e = infer_types(info, operand_types, n.attrs, declared, results, n.body.get()); !e.empty()) {
        err(e);
      } else if (results.size() != declared.size()) {
        err(fmt::format("{} gives {} results, {} are declared", info.name, results.size(), declared.size()));
      } else {
        for (size_t i = 0; i < results.size(); ++i)
          if (results[i] != declared[i])
            err(fmt::format("%{} is declared {} but {} gives {}", n.result(i)->name,
                            to_string(declared[i]), info.name, to_string(results[i])));
      }
    }
    for (const auto& r : n.results) defined_.insert(r.get());
  }

  // A node's body verifies as a graph of its own; the shape rule then checks it against the node.
  template <typename Err>
  bool body(const Node& n, const Err& err) {
    if (!n.body) return true;
    if (!n.info().has(HasBody)) return err(fmt::format("{} takes no body", n.info().name)), false;
    return Verifier(*n.body, diags_, map_, true).run();
  }

  void outputs() {
    std::unordered_set<std::string> names;
    for (size_t i = 0; i < g_.outputs.size(); ++i) {
      const Output& o = g_.outputs[i];
      Loc loc = map_ && !is_body_ && i < map_->outputs.size() ? map_->outputs[i] : o.loc;
      std::string who = "output " + o.name;
      if (!is_identifier(o.name)) diags_.error(loc, fmt::format("output name '{}' is not an identifier", o.name), who);
      if (!names.insert(o.name).second) diags_.error(loc, fmt::format("output '{}' is defined twice", o.name), who);
      if (!o.value || !defined_.count(o.value))
        diags_.error(loc, fmt::format("output '{}' refers to a value not in the graph", o.name), who);
    }
  }

  void updates() {
    if (is_body_ && !g_.updates.empty()) error({}, "a body has no updates: return the new value as a carry");
    if (is_body_) return;
    std::unordered_set<const Value*> targets;
    for (size_t i = 0; i < g_.updates.size(); ++i) {
      const Update& u = g_.updates[i];
      Loc loc = map_ && i < map_->updates.size() ? map_->updates[i] : u.loc;
      std::string who = u.target ? "update %" + u.target->name : "update";
      auto err = [&](const std::string& msg) { diags_.error(loc, msg, who); };
      if (!u.target || !defined_.count(u.target) || !u.value || !defined_.count(u.value)) {
        err("update refers to a value not in the graph");
        continue;
      }
      if (u.target->def->op != Op::parameter)
        err(fmt::format("update target %{} is not a parameter (it comes from {})", u.target->name,
                        u.target->def->info().name));
      if (u.target->type != u.value->type)
        err(fmt::format("update of %{} ({}) with %{} ({}): the types differ", u.target->name,
                        to_string(u.target->type), u.value->name, to_string(u.value->type)));
      if (!targets.insert(u.target).second) err(fmt::format("%{} is updated twice", u.target->name));
    }
  }

  Loc where(const Node& n) const {
    if (map_) {
      auto it = map_->nodes.find(&n);
      if (it != map_->nodes.end()) return it->second;
    }
    return n.loc;
  }

  void error(const Loc& loc, std::string msg) { diags_.error(loc, std::move(msg), "graph " + g_.name); }

  const Graph& g_;
  Diagnostics& diags_;
  const SourceMap* map_;
  bool is_body_;  ///< a node's body: no parameters, no updates, outputs not in the source map
  std::unordered_set<const Value*> defined_;
  std::unordered_set<const Value*> invalid_;  ///< values whose type is not valid
  std::unordered_set<std::string> names_;
};

}  // namespace

bool verify(const Graph& g, Diagnostics& diags, const SourceMap* positions) {
  return Verifier(g, diags, positions).run();
}

}  // namespace stag
