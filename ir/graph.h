#pragma once
/// The graph IR: values, nodes (one op each), and the graph that owns them.

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/attr.h"
#include "ir/diag.h"
#include "ir/ops.h"
#include "ir/types.h"

namespace stag {

struct Node;

/// A tensor value: the result of one node. Its name is unique in the graph and is printed
/// with a leading `%` (`%fc1.weight`, `%7`).
struct Value {
  std::string name;
  Type type;
  Node* def = nullptr;
  int result_index = 0;
};

/// One op applied to operands. Attributes are stored by position in the op's schema, with
/// every default filled in, so passes read them without lookups by name.
struct Node {
  Op op;
  std::vector<Value*> operands;
  std::vector<std::unique_ptr<Value>> results;
  std::vector<Attr> attrs;
  /// Where the node came from in the model source; survives printing as `loc(...)`.
  Loc loc;
  /// The body subgraph of an op with the HasBody trait (scan), nullptr otherwise. Bodies are
  /// closed: they read only their own inputs. Copies of a node may share it; a pass that
  /// rewrites a body in place keeps its meaning (DCE), so sharing stays sound.
  std::shared_ptr<Graph> body;

  const OpInfo& info() const { return op_info(op); }
  Value* result(size_t i = 0) const { return results.at(i).get(); }
  const Attr& attr(std::string_view name) const;
  /// A product (the MixedPrecision trait) whose precision is bf16: it multiplies its first two
  /// operands rounded to bf16.
  bool in_bf16() const;
  /// Sets a MixedPrecision node's precision ("f32" or "bf16").
  void set_precision(const std::string& precision);
  int64_t i(std::string_view name) const { return std::get<int64_t>(attr(name)); }
  double f(std::string_view name) const { return std::get<double>(attr(name)); }
  bool b(std::string_view name) const { return std::get<bool>(attr(name)); }
  const std::string& s(std::string_view name) const { return std::get<std::string>(attr(name)); }
  const Ints& ints(std::string_view name) const { return std::get<Ints>(attr(name)); }
  const Floats& floats(std::string_view name) const { return std::get<Floats>(attr(name)); }
  DType dtype(std::string_view name) const { return std::get<DType>(attr(name)); }
};

/// A named result of the graph (`output logits = %9`).
struct Output {
  std::string name;
  Value* value;
  Loc loc;
};

/// A persistent state update (`update %bn.running_mean = %12`): after the graph runs, the
/// parameter holds the new value. Running statistics and optimizer steps are updates.
struct Update {
  Value* target;
  Value* value;
  Loc loc;
};

/// A static dataflow graph. Nodes are kept in a valid execution order: every operand is
/// defined by an earlier node.
class Graph {
 public:
  explicit Graph(std::string name = "main") : name(std::move(name)) {}
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  std::string name;
  /// Graph-level settings kept with the IR: the model's batch size, its training section.
  NamedAttrs attrs;
  std::vector<std::unique_ptr<Node>> nodes;
  std::vector<Output> outputs;
  std::vector<Update> updates;

  /// Appends a node without checking it (the builder and the parser check; the verifier
  /// re-checks). Result names must be unused.
  Node* append(Op op, std::vector<Value*> operands, std::vector<Attr> attrs,
               const std::vector<Type>& result_types, const std::vector<std::string>& result_names,
               Loc loc = {});

  Value* find(std::string_view name) const;
  bool has_name(std::string_view name) const { return find(name) != nullptr; }
  /// An unused name of the form `%N`.
  std::string fresh_name();
  /// Every value name, for "did you mean" hints.
  std::vector<std::string> value_names() const;

  /// The value of a graph attribute, or nullptr.
  const Attr* attr(std::string_view key) const;
  void set_attr(const std::string& key, Attr value);

  /// Points every use of `from` (operands, outputs, update values) at `to`.
  void replace_uses(const Value* from, Value* to);
  /// Removes the nodes `dead` selects; nothing may use their results any more.
  void erase_nodes(const std::function<bool(const Node&)>& dead);

  /// A deep copy; values are renamed to the same names. Bodies are copied too.
  std::unique_ptr<Graph> clone() const;

  /// The results of the `input` nodes in order: a body's parameters.
  std::vector<Value*> inputs() const;

 private:
  std::unordered_map<std::string, Value*> by_name_;
  size_t next_id_ = 0;
};

}  // namespace stag
