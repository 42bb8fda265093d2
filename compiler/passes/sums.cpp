// Finding sums and rebuilding them (see sums.h), for the passes that rewrite them.

#include "compiler/passes/sums.h"

#include <set>
#include <stdexcept>

namespace stag {

std::vector<Sum> outermost_sums(const Graph& g, const std::map<const Value*, int>& uses) {
  std::vector<Sum> sums;
  std::set<const Node*> inside;  // adds met inside a sum already found
  // From the back, so that a sum is met at its outermost add.
  for (auto it = g.nodes.rbegin(); it != g.nodes.rend(); ++it) {
    Node* root = it->get();
    if (root->op != Op::add || inside.count(root)) continue;
    const Type& type = root->result()->type;
    // An operand that is an add of the sum's type read only here is part of the sum; anything
    // else (a broadcast bias, an add read twice) is a term.
    Sum s{root, {}, {}};
    std::vector<Value*> stack = {root->operands[1], root->operands[0]};
    while (!stack.empty()) {
      Value* v = stack.back();
      stack.pop_back();
      Node* d = v->def;
      auto u = uses.find(v);
      if (d->op == Op::add && v->type == type && u != uses.end() && u->second == 1) {
        s.inner.push_back(d);
        inside.insert(d);
        stack.push_back(d->operands[1]);
        stack.push_back(d->operands[0]);
      } else {
        s.terms.push_back(v);
      }
    }
    sums.push_back(std::move(s));
  }
  return sums;
}

Value* Inserter::add(const Node* at, Op op, std::vector<Value*> operands, std::vector<Attr> attrs, const Type& t, const Loc& loc) {
  Node* n = g.append(op, std::move(operands), std::move(attrs), {t}, {g.fresh_name()}, loc);
  before[at].push_back(std::move(g.nodes.back()));
  g.nodes.pop_back();
  return n->result();
}

void Inserter::place() {
  std::vector<std::unique_ptr<Node>> nodes;
  for (auto& n : g.nodes) {
    if (auto f = before.find(n.get()); f != before.end())
      for (auto& m : f->second) nodes.push_back(std::move(m));
    nodes.push_back(std::move(n));
  }
  g.nodes = std::move(nodes);
  before.clear();
}

Value* SumWriter::operator()(Op op, std::vector<Value*> operands, std::vector<Attr> attrs, const Type& t, const Loc& loc) {
  if (++made == count) {
    root->op = op;
    root->operands = std::move(operands);
    root->attrs = std::move(attrs);
    return root->result();
  }
  return ins.add(root, op, std::move(operands), std::move(attrs), t, loc);
}

Value* SumWriter::add_all(const std::vector<Value*>& values) {
  Value* acc = values[0];
  for (size_t i = 1; i < values.size(); ++i) acc = (*this)(Op::add, {acc, values[i]}, {}, root->result()->type, root->loc);
  return acc;
}

}  // namespace stag
