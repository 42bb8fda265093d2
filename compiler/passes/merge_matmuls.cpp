// Sums of products: a sum of matmuls of one operand layout (a tree of adds whose inner adds are
// read once) becomes one matmul of operands concatenated along K, A1·B1 + A2·B2 = [A1 A2]·[B1; B2],
// and a batched product summed over its batch one matmul of the reshaped operands; an unrolled
// RNN's weight gradient is one product instead of one a time step and an add chain.

#include <fmt/format.h>

#include <map>
#include <set>

#include "compiler/passes/pass.h"
#include "compiler/passes/sums.h"

namespace stag {

namespace {

// The axis a matmul operand is contracted along: A's columns (rows when transposed), B's rows
// (columns when transposed).
int64_t k_axis(const Type& t, bool is_a, bool transposed) {
  int64_t r = static_cast<int64_t>(t.rank());
  return (is_a != transposed) ? r - 1 : r - 2;
}

// Products merge when they share the transpose flags, the precision and their operands' types
// but for K: the concatenations are then well formed and their product has every term's type.
std::string layout_key(const Node& m) {
  bool ta = m.b("transpose_a"), tb = m.b("transpose_b");
  Type a = m.operands[0]->type, b = m.operands[1]->type;
  a.dims[k_axis(a, true, ta)] = 0;
  b.dims[k_axis(b, false, tb)] = 0;
  return fmt::format("{} {} {} {} {}", ta, tb, m.s("precision"), to_string(a), to_string(b));
}

// The type `op` gives these operands, or nothing when its shape rule rejects them.
std::optional<Type> type_of(Op op, const std::vector<Type>& operands, const std::vector<Attr>& attrs) {
  std::vector<Type> results;
  if (!infer_types(op_info(op), operands, attrs, {}, results).empty() || results.size() != 1) return std::nullopt;
  return results[0];
}

std::vector<Type> types_of(const std::vector<Value*>& values) {
  std::vector<Type> types;
  for (const Value* v : values) types.push_back(v->type);
  return types;
}

// A group of products to merge: its matmuls, in the sum's order, and the merged operands' types.
struct Group {
  std::vector<Node*> products;
  std::vector<Value*> as, bs;
  std::vector<Attr> flags;
  Type a, b;
};

// sum(matmul(A, B, transpose_a=true), batch axes) with A: [S.., K, M] and B: [S.., K, N] is
// one product over K' = S..·K: matmul(reshape(A, [S..·K, M]), reshape(B, [S..·K, N]),
// transpose_a=true). Only this layout keeps K next to the batch axes in both operands, so
// that the reshapes move no data. Returns how many sums it rewrote.
int64_t merge_batch_sums(Graph& g, Inserter& ins) {
  std::map<const Value*, int> uses = use_counts(g);
  std::set<const Node*> gone;  // the batched products
  int64_t merged = 0;
  std::vector<Node*> order;  // the inserter appends to g.nodes
  for (const auto& n : g.nodes) order.push_back(n.get());
  for (Node* n : order) {
    if (n->op != Op::sum || n->b("keepdims")) continue;
    Value* x = n->operands[0];
    const Node& m = *x->def;
    if (m.op != Op::matmul || uses[x] != 1 || !m.b("transpose_a") || m.b("transpose_b")) continue;
    const Type &a = m.operands[0]->type, &b = m.operands[1]->type;
    size_t r = a.rank();
    if (r < 3 || b.rank() != r || !std::equal(a.dims.begin(), a.dims.end() - 2, b.dims.begin())) continue;
    std::set<int64_t> axes;
    for (int64_t ax : n->ints("axes")) axes.insert(ax < 0 ? ax + static_cast<int64_t>(r) : ax);
    if (axes.size() != r - 2 || *axes.begin() != 0 || *axes.rbegin() != static_cast<int64_t>(r) - 3) continue;
    int64_t k = 1;
    for (size_t d = 0; d + 1 < r; ++d) k *= a.dims[d];  // every batch dim and K
    Type ra{a.dtype, {k, a.dims[r - 1]}}, rb{b.dtype, {k, b.dims[r - 1]}};
    if (type_of(Op::matmul, {ra, rb}, m.attrs) != n->result()->type) continue;
    Value* va = ins.add(n, Op::reshape, {m.operands[0]}, {Ints(ra.dims)}, ra, m.loc);
    Value* vb = ins.add(n, Op::reshape, {m.operands[1]}, {Ints(rb.dims)}, rb, m.loc);
    n->op = Op::matmul;
    n->operands = {va, vb};
    n->attrs = m.attrs;
    gone.insert(&m);
    ++merged;
  }
  if (merged) {
    ins.place();
    g.erase_nodes([&](const Node& d) { return gone.count(&d) > 0; });
  }
  return merged;
}

}  // namespace

bool merge_matmuls(Graph& g, PassCounters& c) {
  Inserter ins{g, {}};
  int64_t batch_sums = merge_batch_sums(g, ins);
  std::map<const Value*, int> uses = use_counts(g);
  std::set<const Node*> gone;  // inner adds and merged products of rewritten sums
  int64_t sums = 0, merged = 0;

  for (Sum& s : outermost_sums(g, uses)) {
    Node* root = s.root;
    const std::vector<Value*>& terms = s.terms;
    const Type& type = root->result()->type;
    // Products read only by the sum, of the sum's type, grouped by layout in order of appearance.
    std::vector<std::string> keys;
    std::map<std::string, Group> groups;
    for (Value* t : terms) {
      Node* m = t->def;
      if (m->op != Op::matmul || uses[t] != 1 || t->type != type) continue;
      std::string key = layout_key(*m);
      if (!groups.count(key)) keys.push_back(key);
      groups[key].products.push_back(m);
    }
    std::vector<Group*> merging;
    std::set<const Value*> merged_terms;
    for (const auto& key : keys) {
      Group& gr = groups[key];
      if (gr.products.size() < 2) continue;
      const Node& first = *gr.products.front();
      bool ta = first.b("transpose_a"), tb = first.b("transpose_b");
      for (const Node* m : gr.products) {
        gr.as.push_back(m->operands[0]);
        gr.bs.push_back(m->operands[1]);
      }
      gr.flags = first.attrs;  // the transpose flags and the precision
      auto a = type_of(Op::concat, types_of(gr.as), {k_axis(gr.as[0]->type, true, ta)});
      auto b = type_of(Op::concat, types_of(gr.bs), {k_axis(gr.bs[0]->type, false, tb)});
      if (!a || !b || type_of(Op::matmul, {*a, *b}, gr.flags) != type) continue;
      gr.a = *a;
      gr.b = *b;
      merging.push_back(&gr);
      for (const Node* m : gr.products) merged_terms.insert(m->result());
    }
    if (merging.empty()) continue;

    // The new sum: the merged products, then the other terms in their order. Every term
    // broadcasts to the sum's type (it did into one of its adds), so each add has that type.
    size_t rest = 0;
    bool typed = true;
    for (Value* t : terms)
      if (!merged_terms.count(t)) {
        ++rest;
        typed = typed && type_of(Op::add, {type, t->type}, {}) == type;
      }
    if (!typed) continue;
    size_t steps = merging.size() * 3 + (merging.size() + rest - 1);  // concat, concat, matmul; adds
    SumWriter emit{ins, root, steps};
    std::vector<Value*> sum;
    for (Group* gr : merging) {
      const Node& first = *gr->products.front();
      bool ta = std::get<bool>(gr->flags[0]), tb = std::get<bool>(gr->flags[1]);
      Value* a = emit(Op::concat, gr->as, {k_axis(gr->a, true, ta)}, gr->a, first.loc);
      Value* b = emit(Op::concat, gr->bs, {k_axis(gr->b, false, tb)}, gr->b, first.loc);
      sum.push_back(emit(Op::matmul, {a, b}, gr->flags, type, first.loc));
      for (Node* m : gr->products) gone.insert(m);
      merged += static_cast<int64_t>(gr->products.size());
    }
    for (Value* t : terms)
      if (!merged_terms.count(t)) sum.push_back(t);
    emit.add_all(sum);
    for (Node* n : s.inner) gone.insert(n);
    sums += static_cast<int64_t>(merging.size());
  }
  if (sums > 0) {
    ins.place();
    g.erase_nodes([&](const Node& n) { return gone.count(&n) > 0; });
    c.add("sums of products merged into one product", sums);
    c.add("products merged", merged);
  }
  if (batch_sums > 0) c.add("sums over a product's batch merged into one product", batch_sums);
  return sums + batch_sums > 0;
}

}  // namespace stag
