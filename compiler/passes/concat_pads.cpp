// Sums of zero pads: zero-padded pieces summed side by side along one axis are their
// concatenation, pad(x1) + pad(x2) + ... = concat(x1, x2, ...); an unrolled RNN's gradient of
// its per-step slices is one copy of each step instead of a full-size buffer per step summed.

#include <algorithm>
#include <map>
#include <set>

#include "compiler/passes/pass.h"
#include "compiler/passes/sums.h"

namespace stag {

namespace {

// A term of the sum that is a zero pad along one axis: the piece, where it lands and its size.
struct Piece {
  Value* term;
  Value* x;
  int64_t axis, begin, size;
};

// The piece a term is, when it is a zero pad along exactly one axis read only by the sum.
std::optional<Piece> piece_of(Value* t, const Type& type, std::map<const Value*, int>& uses) {
  const Node& p = *t->def;
  if (p.op != Op::pad || p.f("value") != 0 || uses[t] != 1 || t->type != type) return std::nullopt;
  const Ints& pads = p.ints("pads");
  std::optional<int64_t> axis;
  for (size_t d = 0; d < type.rank(); ++d) {
    if (pads[2 * d] == 0 && pads[2 * d + 1] == 0) continue;
    if (axis) return std::nullopt;
    axis = static_cast<int64_t>(d);
  }
  if (!axis) return std::nullopt;
  Value* x = p.operands[0];
  return Piece{t, x, *axis, pads[2 * *axis], x->type.dims[*axis]};
}

}  // namespace

bool concat_pads(Graph& g, PassCounters& c) {
  std::map<const Value*, int> uses = use_counts(g);
  Inserter ins{g, {}};
  std::set<const Node*> gone;  // inner adds and pads of rewritten sums
  int64_t concats = 0, pads = 0;

  for (Sum& s : outermost_sums(g, uses)) {
    Node* root = s.root;
    const std::vector<Value*>& terms = s.terms;
    const Type& type = root->result()->type;
    // Pieces by axis; an axis whose pieces overlap is left alone. Each run of two or more
    // pieces that touch end to end becomes one concatenation, padded when it does not cover
    // the axis.
    std::map<int64_t, std::vector<Piece>> by_axis;
    for (Value* t : terms)
      if (auto p = piece_of(t, type, uses)) by_axis[p->axis].push_back(*p);
    std::vector<std::vector<Piece>> runs;
    for (auto& [axis, ps] : by_axis) {
      std::stable_sort(ps.begin(), ps.end(), [](const Piece& a, const Piece& b) { return a.begin < b.begin; });
      bool overlap = false;
      for (size_t i = 1; i < ps.size(); ++i) overlap |= ps[i].begin < ps[i - 1].begin + ps[i - 1].size;
      if (overlap) continue;
      for (size_t i = 0; i < ps.size();) {
        size_t j = i + 1;
        while (j < ps.size() && ps[j].begin == ps[j - 1].begin + ps[j - 1].size) ++j;
        if (j - i >= 2) runs.emplace_back(ps.begin() + static_cast<std::ptrdiff_t>(i), ps.begin() + static_cast<std::ptrdiff_t>(j));
        i = j;
      }
    }
    if (runs.empty()) continue;

    // The new sum: the concatenations, then the other terms in their order. Every term
    // broadcasts to the sum's type, so each add has that type.
    std::set<const Value*> joined;
    for (const auto& run : runs)
      for (const Piece& p : run) joined.insert(p.term);
    size_t rest = 0;
    bool typed = true;
    for (Value* t : terms)
      if (!joined.count(t)) {
        ++rest;
        std::vector<Type> results;
        typed = typed && infer_types(op_info(Op::add), {type, t->type}, {}, {}, results).empty() && results[0] == type;
      }
    if (!typed) continue;
    size_t steps = 0;
    for (const auto& run : runs) {
      int64_t end = run.back().begin + run.back().size;
      steps += run.front().begin == 0 && end == type.dims[run.front().axis] ? 1 : 2;  // concat, pad
    }
    steps += runs.size() + rest - 1;  // adds
    SumWriter emit{ins, root, steps};
    std::vector<Value*> sum;
    for (const auto& run : runs) {
      int64_t axis = run.front().axis, lo = run.front().begin, hi = run.back().begin + run.back().size;
      std::vector<Value*> xs;
      for (const Piece& p : run) {
        xs.push_back(p.x);
        gone.insert(p.term->def);
      }
      Type joined_type = type;
      joined_type.dims[axis] = hi - lo;
      Value* v = emit(Op::concat, xs, {axis}, joined_type, root->loc);
      if (lo != 0 || hi != type.dims[axis]) {
        Ints p(2 * type.rank(), 0);
        p[2 * axis] = lo;
        p[2 * axis + 1] = type.dims[axis] - hi;
        v = emit(Op::pad, {v}, {p, 0.0}, type, root->loc);
      }
      sum.push_back(v);
      pads += static_cast<int64_t>(run.size());
    }
    for (Value* t : terms)
      if (!joined.count(t)) sum.push_back(t);
    emit.add_all(sum);
    for (Node* n : s.inner) gone.insert(n);
    concats += static_cast<int64_t>(runs.size());
  }
  if (concats == 0) return false;

  ins.place();
  g.erase_nodes([&](const Node& n) { return gone.count(&n) > 0; });
  c.add("sums of zero pads turned into a concat", concats);
  c.add("pads concatenated", pads);
  return true;
}

}  // namespace stag
