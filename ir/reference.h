#pragma once
/// The reference interpreter: runs any graph with plain loops in double precision. It is the
/// oracle that compiled kernels, passes and gradients are checked against, and the evaluator
/// behind constant folding; it is never the user's execution path.

#include <initializer_list>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace stag {

/// A tensor of the reference interpreter. Every element type is held as double: integers up
/// to 2^53 and booleans (0/1) exactly, and f32 math without intermediate rounding.
struct RefTensor {
  Type type;
  std::vector<double> data;

  RefTensor() = default;
  RefTensor(Type t, std::vector<double> d) : type(std::move(t)), data(std::move(d)) {}
  /// A tensor of the type, every element `fill`.
  static RefTensor filled(const Type& t, double fill);
  int64_t numel() const { return static_cast<int64_t>(data.size()); }
  /// The element at a full index (row-major).
  double at(std::initializer_list<int64_t> index) const {
    int64_t flat = 0;
    size_t d = 0;
    for (int64_t i : index) flat = flat * type.dims[d++] + i;
    return data[static_cast<size_t>(flat)];
  }
};

/// A run-time error of the graph's data (an index out of range, a missing input), as opposed
/// to a malformed graph, which the verifier rejects before anything runs.
struct RefError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct RefResult {
  std::map<std::string, RefTensor> outputs;  ///< by output name
  std::map<std::string, RefTensor> updates;  ///< new parameter values, by parameter name
  std::map<std::string, RefTensor> values;   ///< every value, by name (when asked for)
};

/// Runs a verified graph. `feeds` holds every input and parameter by name, with exactly the
/// declared type. Throws RefError on a missing or mistyped feed or bad data.
RefResult interpret(const Graph& g, const std::map<std::string, RefTensor>& feeds, bool keep_values = false);

/// x as f32, then rounded to bf16 (to nearest, ties to even), as a bf16 product's factors are.
double round_to_bf16(double x);

/// Evaluates one node on operand tensors (constant folding uses this).
std::vector<RefTensor> evaluate(const Node& n, const std::vector<const RefTensor*>& operands);

}  // namespace stag
