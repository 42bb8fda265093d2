#pragma once
/// What the passes that rewrite sums share: finding a sum (a tree of adds of one type whose
/// inner adds are read only by the next) with its terms, and rebuilding it from new values with
/// nodes placed before it, its last add keeping the sum's name and readers.

#include <map>
#include <memory>
#include <vector>

#include "ir/graph.h"

namespace stag {

struct Sum {
  Node* root;                ///< the outermost add
  std::vector<Value*> terms;  ///< left to right
  std::vector<Node*> inner;   ///< the other adds of the tree
};

/// Every sum of g, each once at its outermost add, from the graph's end to its start.
std::vector<Sum> outermost_sums(const Graph& g, const std::map<const Value*, int>& uses);

/// New nodes are appended to the graph and then kept aside, to be placed right before the node
/// they serve (the node they feed, rewritten in place) once every rewrite is done.
struct Inserter {
  Graph& g;
  std::map<const Node*, std::vector<std::unique_ptr<Node>>> before;

  Value* add(const Node* at, Op op, std::vector<Value*> operands, std::vector<Attr> attrs, const Type& t, const Loc& loc);
  void place();
};

/// Writes the `count` nodes of a rewritten sum, in order: all but the last are new nodes placed
/// before the sum, the last is the sum's own node (its name, type and readers stay).
struct SumWriter {
  Inserter& ins;
  Node* root;
  size_t count;
  size_t made = 0;

  Value* operator()(Op op, std::vector<Value*> operands, std::vector<Attr> attrs, const Type& t, const Loc& loc);
  /// The adds of values, left to right (their count is values.size() - 1); the last value made.
  Value* add_all(const std::vector<Value*>& values);
};

}  // namespace stag
