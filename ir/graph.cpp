#include "ir/graph.h"

#include <algorithm>
#include <cassert>

namespace stag {

bool Node::in_bf16() const { return info().has(MixedPrecision) && s("precision") == "bf16"; }

void Node::set_precision(const std::string& precision) { attrs[static_cast<size_t>(info().attr_index("precision"))] = precision; }

const Attr& Node::attr(std::string_view name) const {
  int idx = info().attr_index(name);
  assert(idx >= 0 && "no such attribute on this op");
  return attrs.at(static_cast<size_t>(idx));
}

Node* Graph::append(Op op, std::vector<Value*> operands, std::vector<Attr> attrs,
                    const std::vector<Type>& result_types,
                    const std::vector<std::string>& result_names, Loc loc) {
  assert(result_types.size() == result_names.size());
  auto node = std::make_unique<Node>();
  node->op = op;
  node->operands = std::move(operands);
  node->attrs = std::move(attrs);
  node->loc = std::move(loc);
  for (size_t i = 0; i < result_types.size(); ++i) {
    auto v = std::make_unique<Value>();
    v->name = result_names[i];
    v->type = result_types[i];
    v->def = node.get();
    v->result_index = static_cast<int>(i);
    assert(!by_name_.count(v->name) && "value name already used");
    by_name_[v->name] = v.get();
    node->results.push_back(std::move(v));
  }
  nodes.push_back(std::move(node));
  return nodes.back().get();
}

Value* Graph::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : it->second;
}

std::string Graph::fresh_name() {
  for (;;) {
    std::string n = std::to_string(next_id_++);
    if (!by_name_.count(n)) return n;
  }
}

std::vector<std::string> Graph::value_names() const {
  std::vector<std::string> names;
  for (const auto& [n, v] : by_name_) names.push_back(n);
  std::sort(names.begin(), names.end());  // hash order would make "did you mean" hints vary
  return names;
}

const Attr* Graph::attr(std::string_view key) const {
  for (const auto& [k, v] : attrs)
    if (k == key) return &v;
  return nullptr;
}

void Graph::set_attr(const std::string& key, Attr value) {
  for (auto& [k, v] : attrs)
    if (k == key) {
      v = std::move(value);
      return;
    }
  attrs.emplace_back(key, std::move(value));
}

void Graph::replace_uses(const Value* from, Value* to) {
  for (auto& n : nodes)
    for (Value*& v : n->operands)
      if (v == from) v = to;
  for (auto& o : outputs)
    if (o.value == from) o.value = to;
  for (auto& u : updates)
    if (u.value == from) u.value = to;
}

void Graph::erase_nodes(const std::function<bool(const Node&)>& dead) {
  auto keep = std::stable_partition(nodes.begin(), nodes.end(), [&](const auto& n) { return !dead(*n); });
  for (auto it = keep; it != nodes.end(); ++it)
    for (const auto& r : (*it)->results) by_name_.erase(r->name);
  nodes.erase(keep, nodes.end());
}

std::unique_ptr<Graph> Graph::clone() const {
  auto g = std::make_unique<Graph>(name);
  g->attrs = attrs;
  g->next_id_ = next_id_;
  std::unordered_map<const Value*, Value*> map;
  for (const auto& n : nodes) {
    std::vector<Value*> ops;
    for (Value* v : n->operands) ops.push_back(map.at(v));
    std::vector<Type> types;
    std::vector<std::string> names;
    for (const auto& r : n->results) {
      types.push_back(r->type);
      names.push_back(r->name);
    }
    Node* copy = g->append(n->op, std::move(ops), n->attrs, types, names, n->loc);
    if (n->body) copy->body = n->body->clone();
    for (size_t i = 0; i < n->results.size(); ++i) map[n->result(i)] = copy->result(i);
  }
  for (const auto& o : outputs) g->outputs.push_back({o.name, map.at(o.value), o.loc});
  for (const auto& u : updates) g->updates.push_back({map.at(u.target), map.at(u.value), u.loc});
  return g;
}

std::vector<Value*> Graph::inputs() const {
  std::vector<Value*> params;
  for (const auto& n : nodes)
    if (n->op == Op::input) params.push_back(n->result());
  return params;
}

}  // namespace stag
