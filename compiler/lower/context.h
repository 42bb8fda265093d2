#pragma once
/// The state lowering shares between op families: buffers, the kernels being emitted, and
/// reading values through fused producers and epilogues.

#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <map>
#include <set>
#include <unordered_map>
#include <vector>

#include "compiler/lower/builder.h"
#include "compiler/lower/fusion.h"
#include "compiler/lower/lower.h"

namespace stag::lowering {

using kir::E;

constexpr double kInf = std::numeric_limits<double>::infinity();
using kir::kMaxGemmBatches;
/// Products of at most this many rows split their columns over threads, in blocks of
/// kColumnBlock (a multiple of every host's register tile width).
constexpr int64_t kColumnSplitRows = 64;
constexpr int64_t kColumnBlock = 64;

inline int64_t numel(const Type& t) { return *checked_numel(t.dims); }
inline int64_t norm_axis(int64_t axis, size_t rank) { return axis < 0 ? axis + static_cast<int64_t>(rank) : axis; }

inline E fconst(double v, DType t) { return kir::float_(v, t); }
inline E zero_of(DType t) { return is_float(t) ? fconst(0, t) : kir::cast(kir::int_(0), t); }
inline E const_of(double v, DType t) { return is_float(t) ? fconst(v, t) : kir::cast(kir::int_(static_cast<int64_t>(v)), t); }

/// The smallest value of a type: where a max starts.
inline E lowest(DType t) {
  if (is_float(t)) return kir::float_(-kInf, t);
  if (t == DType::i32) return kir::cast(kir::int_(std::numeric_limits<int32_t>::min()), t);
  return kir::cast(kir::int_(t == DType::b8 ? 0 : std::numeric_limits<int64_t>::min()), t);
}

/// Max that lets a NaN through, as PyTorch's max does.
inline E nan_max(E a, E b) {
  return kir::bin(kir::Bin::max, a, b);  // float max propagates NaN (kernel_ir.h)
}

/// In-bounds test and a safe index: loads at a clamped index are always legal, and the
/// value is masked by the test.
inline E in_range(E v, int64_t size) { return kir::and_(kir::ge(v, kir::int_(0)), kir::lt(v, kir::int_(size))); }

/// The program being built and the function being lowered. Buffer ids >= 0 name buffers of
/// the program; negative ids name values fused away (computed where they are read).
struct LowerContext {
  explicit LowerContext(const LowerOptions& o) : options(o) {}

  /// The shared buffer of a parameter, made on its first definition.
  void param_buffer(const Node& n);
  int new_buffer(const std::string& name, const Type& t, kir::BufKind kind);
  /// A view of `root` (kir::Buffer::alias): no memory of its own; one with a step moves with
  /// the loop being lowered.
  int view_buffer(const std::string& name, const Type& t, int root, int64_t first, int64_t step);
  /// Lowerings copy the types they keep: adding a buffer may move every Buffer.
  const kir::Buffer& B(int id) const { return id < 0 ? pseudo[-id - 1] : prog.buffers[id]; }
  int in(const Value* v) const { return buffer_of.at(v); }
  /// Element `index` of buffer or fused value `id`.
  E ld(int id, E index);

  void begin_function(const std::string& name);
  void end_function();
  /// Appends a kernel to the function being lowered, tagged with the values it computes.
  void emit(kir::KernelBuilder&& kb);
  int add_check(std::string message);
  std::string origin(const Node& n) const;
  /// Element `index` of a product's factor (buffer `id`, as ld): rounded to bf16 when the
  /// node being lowered is a bf16 product, on every strategy that multiplies in loops.
  E factor(int id, E index);
  /// A kernel writing every element of `out` (shape `dims`) with `value(idx)`.
  void map_kernel(const std::string& name, const std::string& from, int out, const Dims& dims,
                  const std::function<E(const std::vector<E>&)>& value);
  void copy_kernel(const std::string& from, int dst, int src);

  /// Element `flat` (multi-index `multi`, when the caller has it) of buffer or fused value `id`.
  E read(int id, const std::vector<E>* multi, E flat);
  /// The element of `id` (dims `d`) that numpy broadcasting pairs with index `idx` of dims `D`.
  E read_broadcast(int id, const std::vector<E>& idx, const Dims& D, const Dims& d);
  /// Element `flat` of an elementwise node's result, from its operands.
  E node_value(const Node& n, const std::vector<E>* multi, E flat);
  /// The buffer holding `id`'s elements in row-major order (through reshapes), or -1.
  int materialized(int id) const;
  /// Where a node's kernel stores: its result, or the end of its epilogue chain.
  int store_target(const Node& n) const;
  /// Whether n's store carries more than its result: an epilogue chain or followers.
  bool has_epilogue(const Node& n) const { return plan.epilogue.count(&n) > 0 || plan.followers.count(&n) > 0; }
  /// The epilogue of `n` applied to its accumulated value at output index `idx`.
  E epilogue(const Node& n, E acc, const std::vector<E>& idx);
  /// The same at index `idx` of the result's dims with the axes from `from` on merged into one
  /// (a plane as one loop), or null when an operand of the epilogue broadcasts over some but
  /// not all of those axes.
  E merged_epilogue(const Node& n, E acc, const std::vector<E>& idx, size_t from);
  /// The stores of n's element at `at` (index `idx`) of its store target `out`: acc through
  /// the epilogue, then its followers from the stored value. `in_place`: acc is `out[at]`
  /// already (a product's store), which without an epilogue chain is not stored again.
  std::vector<kir::Stmt> epilogue_stores(const Node& n, int out, E at, E acc, const std::vector<E>& idx, bool in_place);
  /// The stores of n's followers (FusionPlan::followers) at `at`, from what n stored in `out`.
  std::vector<kir::Stmt> follower_stores(const Node& n, int out, E at);

  LowerOptions options;
  LowerStats stats;
  kir::Program prog;
  const Graph* g = nullptr;                  ///< the graph being lowered
  FusionPlan plan;                           ///< its fusion
  std::vector<kir::Buffer> pseudo;           ///< descriptions of fused values (ids -1, -2, ...)
  std::vector<const Node*> pseudo_node;
  std::vector<std::string> group;            ///< the values the kernel being built computes
  std::string strategy;                      ///< the node's strategy, for the kernels it emits
  const Node* node = nullptr;                ///< the node being lowered: its products take its precision
  std::unordered_map<std::string, int> param_ids;
  std::vector<const Node*> param_nodes;      ///< the first definition of each parameter, in order
  std::unordered_map<const Value*, int> buffer_of;
  int fn = -1;
  int param_count = 0, input_count = 0, output_count = 0;
  int64_t workspace = 0;
  int loop = -1;                             ///< the loop (of fn's) whose body is being lowered
  std::set<int> may_hold_infinity;           ///< --check-numerics: buffers a mask's -inf may be in
  /// An image's phase planes copied in this function (conv.cpp's phase_images): the buffer,
  /// the zeros after it, and the kernel that wrote it.
  struct PhaseCopy {
    int buffer;
    int64_t slack;
    size_t kernel;
  };
  /// By what they hold (image buffer, geometry, layout): a weight gradient reads the copy its
  /// forward convolution made.
  std::map<std::string, PhaseCopy> phase_copies;
  /// A convolution's output whose planes' statistics it computed for the training batch norm
  /// reading it (conv.h's PlaneStats): the buffer [2, Bn, C] of means and sums of squares.
  std::unordered_map<const Value*, int> plane_stats;
};

kir::Buffer make_buffer(const std::string& name, const Type& type, kir::BufKind kind);

}  // namespace stag::lowering
