#pragma once
/// The op set: the enum, each op's operand counts, traits, attribute schema and shape rule,
/// all generated from ir/ops.def.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/attr.h"
#include "ir/types.h"

namespace stag {

enum class Op : uint16_t {
#define OP(id, ...) id,
#include "ir/ops.def"
};

/// Bit flags in the op table's traits column.
enum Trait : uint32_t {
  Source = 1u << 0,       ///< no operands that define its shape; the type comes from the text
  Elementwise = 1u << 1,  ///< one result element per (broadcast) operand element
  Reduction = 1u << 2,
  Loss = 1u << 3,
  Stochastic = 1u << 4,   ///< draws from the counter-based generator
  /// Reads each element of its operands once: an operand may be computed inside its kernel
  /// (fused) at no extra cost. Elementwise ops do so for operands of their result's shape.
  ReadsOnce = 1u << 5,
  /// Reads each element of its last operand (the incoming gradient) once, the others more often.
  ReadsLastOnce = 1u << 6,
  /// Stores each result element once, from an accumulator: elementwise consumers of the result
  /// may be applied in that store (an epilogue) when the lowering's strategy allows.
  TakesEpilogue = 1u << 7,
  /// A product (matmul, convolution) with a `precision` attribute: bf16 multiplies its
  /// operands rounded to bf16, summing in f32 (PyTorch's CPU autocast); see autocast-bf16.
  MixedPrecision = 1u << 8,
  /// Holds a body subgraph (`Node::body`), printed nested in braces after the op: its inputs
  /// are the body's parameters, its outputs what one iteration gives (see docs/ir.md, scan).
  HasBody = 1u << 9,
  /// A few instructions an element (no exp, log, division or square root): a value of it is
  /// worth computing again in each of a few readers rather than stored (fusion's recompute rule).
  Cheap = 1u << 10,
};

class Graph;

struct AttrSpec {
  std::string name;
  AttrKind kind;
  std::vector<std::string> choices;  ///< allowed strings, for kind Str; empty means any
  std::optional<Attr> default_value; ///< none: the attribute is required
};

/// What a shape rule sees: operand types, attributes by schema position, and the declared
/// result types (from the text's annotation; sources take their type from them).
struct ShapeCtx {
  const struct OpInfo& info;
  const std::vector<Type>& operands;
  const std::vector<Attr>& attrs;
  const std::vector<Type>& declared;
  std::vector<Type> results;
  /// The node's body, for ops with the HasBody trait (nullptr when it has none).
  const Graph* body = nullptr;

  const Attr& attr(std::string_view name) const;
  int64_t i(std::string_view name) const { return std::get<int64_t>(attr(name)); }
  double f(std::string_view name) const { return std::get<double>(attr(name)); }
  bool b(std::string_view name) const { return std::get<bool>(attr(name)); }
  const std::string& s(std::string_view name) const { return std::get<std::string>(attr(name)); }
  const Ints& ints(std::string_view name) const { return std::get<Ints>(attr(name)); }
  const Floats& floats(std::string_view name) const { return std::get<Floats>(attr(name)); }
  DType dtype(std::string_view name) const { return std::get<DType>(attr(name)); }
};

/// Checks operands and attributes and pushes the result types; returns the reason on a user
/// error (without the op's name, which the caller prefixes), empty on success.
using ShapeRule = std::string (*)(ShapeCtx&);

struct OpInfo {
  Op op;
  std::string_view name;
  int min_operands;
  int max_operands;  ///< -1: unbounded
  uint32_t traits;
  ShapeRule shape_rule;
  std::vector<AttrSpec> attrs;

  bool has(Trait t) const { return (traits & t) != 0; }
  /// Position of the named attribute in `attrs`, or -1.
  int attr_index(std::string_view attr_name) const;
};

const OpInfo& op_info(Op op);
std::optional<Op> op_from_name(std::string_view name);
/// Every op, in table order.
const std::vector<OpInfo>& all_ops();

/// Fills `out` (by schema position) from named attributes: checks names, kinds and choices,
/// applies defaults. Returns the first problem, empty on success.
std::string resolve_attrs(const OpInfo& info, const NamedAttrs& given, std::vector<Attr>& out);
/// Why `count` operands are wrong for the op ("expects 2 operands, got 1"), empty when right.
std::string check_arity(const OpInfo& info, size_t count);
/// Checks a full attribute vector against the schema (kinds and choices).
std::string check_attrs(const OpInfo& info, const std::vector<Attr>& attrs);

/// Runs the op's shape rule; the error, if any, is prefixed with the op's name. `body` is the
/// node's body subgraph for ops with the HasBody trait.
std::string infer_types(const OpInfo& info, const std::vector<Type>& operands,
                        const std::vector<Attr>& attrs, const std::vector<Type>& declared,
                        std::vector<Type>& results, const Graph* body = nullptr);

/// The closest of `candidates` to `name` by edit distance, if close enough to be a likely typo.
std::optional<std::string> closest_name(std::string_view name,
                                        const std::vector<std::string>& candidates);

}  // namespace stag
