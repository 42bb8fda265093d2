#pragma once
/// Builds graphs from C++: every node is checked (arity, attributes, shape rule) as it is made.

#include <stdexcept>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace stag {

/// Thrown by the builder's convenience methods when a node is invalid; the message names the
/// op and both shapes. Frontends call `try_create` instead and report the message themselves.
struct BuildError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Builder {
 public:
  explicit Builder(Graph& g) : g_(g) {}

  Graph& graph() { return g_; }
  /// The source location attached to the nodes made from now on.
  void set_loc(Loc loc) { loc_ = std::move(loc); }
  const Loc& loc() const { return loc_; }

  struct Result {
    std::vector<Value*> values;
    std::string error;  ///< empty on success
  };

  /// Makes a node after checking operand count, attributes and shapes. `declared` gives the
  /// result type of source ops; `names` the result names (fresh `%N` names when empty); `body`
  /// the body of an op with the HasBody trait (scan).
  Result try_create(Op op, const std::vector<Value*>& operands, const NamedAttrs& attrs = {},
                    const std::vector<Type>& declared = {}, const std::vector<std::string>& names = {},
                    std::shared_ptr<Graph> body = nullptr);
  /// As try_create, but throws BuildError.
  std::vector<Value*> create(Op op, const std::vector<Value*>& operands, const NamedAttrs& attrs = {},
                             const std::vector<Type>& declared = {},
                             const std::vector<std::string>& names = {}, std::shared_ptr<Graph> body = nullptr);

  Value* input(const std::string& name, const Type& type);
  Value* parameter(const std::string& name, const Type& type, const NamedAttrs& attrs = {});
  Value* constant(const Type& type, Floats value);
  Value* scalar(double value, DType dtype = DType::f32) { return constant({dtype, {}}, {value}); }
  void output(const std::string& name, Value* v);
  void update(Value* param, Value* v);

  // One method per op of ops.def with a single result, e.g. b.matmul({x, w}, {{"transpose_b", true}}).
#define OP(id, ...) \
  Value* id(const std::vector<Value*>& operands, const NamedAttrs& attrs = {}) { return one(Op::id, operands, attrs); }
#include "ir/ops.def"

 private:
  Value* one(Op op, const std::vector<Value*>& operands, const NamedAttrs& attrs);

  Graph& g_;
  Loc loc_;
};

}  // namespace stag
