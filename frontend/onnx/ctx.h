#pragma once
/// What an op converter sees: the ONNX node being converted, its inputs as stag values (with
/// their values when known at import time) and its attributes, and a builder that folds
/// nodes whose operands are all known. Internal to frontend/onnx.

#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "frontend/onnx/proto.h"
#include "ir/builder.h"
#include "ir/reference.h"

namespace stag::onnx_import {

/// A node that cannot be converted; the importer reports it with the node's name.
struct ConvertError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& message);
/// A known value used as an integer (an index, a count): fails on NaN, infinity or beyond int64.
int64_t as_int(double d, std::string_view what);

class Ctx {
 public:
  explicit Ctx(Graph& g) : b(g), g(g) {}

  Builder b;
  Graph& g;
  int64_t opset = 0;
  /// The model's directory: Constant nodes may hold external data.
  std::string dir;
  const onnx::NodeProto* node = nullptr;
  /// ONNX value name -> stag value.
  std::unordered_map<std::string, Value*> values;
  /// Values known at import time (constants, initializers of integer type, folded shape math).
  std::unordered_map<const Value*, RefTensor> known;
  /// Graph inputs a converter needed as compile-time values (a Reshape's shape fed as an input).
  std::vector<std::string> wanted_constants;
  /// ONNX values that are empty tensors (an empty Slice, as PyTorch exports `x.flatten()`'s
  /// shape): stag's tensors are never empty, so they have no stag value and only Concat,
  /// which leaves them out, may read them.
  std::unordered_set<std::string> empty;
  /// What a converter returns for an empty result.
  static Value* empty_result();

  // ---- the node's inputs and attributes
  size_t inputs() const { return static_cast<size_t>(node->input_size()); }
  bool has(size_t i) const { return i < inputs() && !node->input(static_cast<int>(i)).empty(); }
  bool is_empty(size_t i) const { return has(i) && empty.count(node->input(static_cast<int>(i))); }
  Value* in(size_t i) const;
  size_t outputs() const { return static_cast<size_t>(node->output_size()); }
  const onnx::AttributeProto* attr(std::string_view name) const;
  int64_t ai(std::string_view name, int64_t def) const;
  double af(std::string_view name, double def) const;
  std::string as(std::string_view name, const std::string& def) const;
  Ints aints(std::string_view name, const Ints& def = {}) const;
  Floats afloats(std::string_view name) const;

  // ---- building
  Value* op(Op op, const std::vector<Value*>& operands, const NamedAttrs& attrs = {});
  std::vector<Value*> ops(Op op, const std::vector<Value*>& operands, const NamedAttrs& attrs = {});
  Value* constant(const Type& type, std::vector<double> data);
  /// A scalar of `like`'s element type.
  Value* scalar(double v, const Value* like) { return constant({like->type.dtype, {}}, {v}); }
  Value* reshape(Value* x, const Dims& dims);
  Value* cast(Value* x, DType to) { return x->type.dtype == to ? x : op(Op::cast, {x}, {{"to", to}}); }

  /// The value of `v` at import time; fails naming `what` when it is computed at run time.
  /// Asks for the graph inputs `v` is computed from as compile-time values (wanted_constants).
  const RefTensor& need_known(const Value* v, std::string_view what);
  Ints known_ints(const Value* v, std::string_view what);
  /// Input i's integers if it is present, else `def` (optional attribute-like inputs).
  Ints ints_input(size_t i, std::string_view what, const Ints& def);

 private:
  void fold(Node* n);
};

/// Converts the current node; returns one value per ONNX output (nullptr for an output left
/// out, such as Dropout's mask nobody reads).
using Converter = std::vector<Value*> (*)(Ctx&);

struct OpEntry {
  std::string_view name;
  Converter convert;
};

/// The converters of each group of ops (ops_math.cpp, ops_nn.cpp, ops_rnn.cpp, ops_shape.cpp,
/// ops_loop.cpp).
const std::vector<OpEntry>& math_ops();
const std::vector<OpEntry>& nn_ops();
const std::vector<OpEntry>& rnn_ops();
const std::vector<OpEntry>& shape_ops();
const std::vector<OpEntry>& loop_ops();  ///< Scan and Loop (ops_loop.cpp)
/// The converter of an op of the default domain, or nullptr.
Converter find_converter(std::string_view op_type);
/// stag's own ops (domain kStagDomain), as `stag export` writes them.
const std::vector<OpEntry>& stag_ops();
/// The converter of a node of the default domain or stag's, or nullptr.
Converter find_converter(const onnx::NodeProto& n);

/// Axis `a` of a rank-`rank` tensor counted from 0 (ONNX allows negative axes).
int64_t norm_axis(int64_t a, size_t rank);

/// x transposed by perm, or x itself when perm keeps every axis in place.
Value* transpose_if(Ctx& c, Value* x, const Ints& perm);

}  // namespace stag::onnx_import
