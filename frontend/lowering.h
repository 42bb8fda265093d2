#pragma once
/// Shared state of lowering a `.stag` model to graph IR: compile-time values, layer instances,
/// and the context that creates checked nodes and parameters. Internal to frontend/.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "frontend/ast.h"
#include "frontend/load.h"
#include "ir/builder.h"
#include "ir/graph.h"

namespace stag::fe {

struct Instance;
struct LayerKind;

/// A value during lowering: a tensor in the graph, or a compile-time value.
struct Val {
  enum Kind { Poison, None, Tensor, Int, Float, Bool, Str, List, Tuple, TypeV, DTypeV, Layer } kind = Poison;
  Value* t = nullptr;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<Val> items;  ///< List items, or Tuple results
  Type type;               ///< TypeV
  DType dtype = DType::f32;
  Instance* layer = nullptr;

  static Val tensor(Value* v) { Val x; x.kind = v ? Tensor : Poison; x.t = v; return x; }
  static Val integer(int64_t v) { Val x; x.kind = Int; x.i = v; return x; }
  static Val real(double v) { Val x; x.kind = Float; x.f = v; return x; }
  static Val boolean(bool v) { Val x; x.kind = Bool; x.b = v; return x; }
  static Val str(std::string v) { Val x; x.kind = Str; x.s = std::move(v); return x; }
  static Val none() { Val x; x.kind = None; return x; }
  bool ok() const { return kind != Poison; }
  bool is_number() const { return kind == Int || kind == Float; }
  double number() const { return kind == Int ? static_cast<double>(i) : f; }
};

/// How a value reads in a message: `an integer (3)`, `a tensor f32[64,10]`.
std::string describe(const Val& v);

/// A layer in the model tree. The model itself is the root instance, with an empty path.
struct Instance {
  std::string kind;  ///< constructor name: `Linear`, a block's name, `Sequential`
  std::string path;  ///< hierarchical name: `layer1.0`
  Loc loc;
  const LayerKind* builtin = nullptr;
  const BlockDef* block = nullptr;
  bool frozen = false;
  bool broken = false;  ///< its constructor failed (already reported): calls give no value
  int calls = 0;
  std::map<std::string, Val> args;                 ///< bound constructor arguments (and block constants)
  std::map<std::string, Value*> params;            ///< local parameter name -> parameter
  std::vector<std::unique_ptr<Instance>> children; ///< sub-layers in declaration order
  std::map<std::string, Instance*> child_names;

  const Val& arg(const std::string& name) const { return args.at(name); }
  int64_t i(const std::string& name) const { return args.at(name).i; }
  double f(const std::string& name) const { return args.at(name).number(); }
  bool b(const std::string& name) const { return args.at(name).b; }
  /// `prefix.name`, or `name` at the root.
  std::string full(const std::string& name) const { return path.empty() ? name : path + "." + name; }
  /// A label for messages: `fc1 (Linear)`.
  std::string label() const { return path.empty() ? kind : path + " (" + kind + ")"; }
};

/// A user's `init NAME = ...` for one parameter, keyed by its full name.
struct InitOverride {
  NamedAttrs attrs;
  Loc loc;
  bool used = false;
};

/// Limits that keep any input cheap: exceeding one is an error, never an allocation.
inline constexpr size_t kMaxNodes = 200000;
inline constexpr int kMaxBlockDepth = 32;
inline constexpr int64_t kMaxRepeat = 1024;
inline constexpr int64_t kMaxFeatures = int64_t{1} << 24;
inline constexpr int64_t kMaxUnroll = 4096;
inline constexpr int64_t kMaxLoopSteps = int64_t{1} << 24;  ///< a `for` loop's steps

/// Everything lowering needs: the graph under construction and the user's options.
struct Ctx {
  Ctx(Graph& graph, Diagnostics& d, const LoadOptions& o) : g(graph), b(graph), diags(d), opts(o) {}

  Graph& g;
  Builder b;
  Diagnostics& diags;
  const LoadOptions& opts;
  std::map<std::string, InitOverride> inits;
  std::optional<double> default_dropout;  ///< train { dropout = p }: p for Dropout() without one
  std::optional<double> default_label_smoothing;  ///< train { label_smoothing = e }: e for losses without one
  Value* step = nullptr;                  ///< the `%step` input, made on first use
  Value* pos = nullptr;                   ///< a decode step's `%pos` input, made on first use
  int64_t context = 0;                    ///< decode: the sequence length token inputs declare
  int64_t next_seed = 1;
  /// The `for` loops being lowered, outermost first: each one's step index (a placeholder
  /// made on first use) and its generator key, which step_key gives inside the loop.
  struct LoopKey {
    int64_t length = 0;
    Value* index = nullptr;  ///< i64[]: the step's position in the sequence
    Value* key = nullptr;    ///< the enclosing key * length + index
  };
  std::vector<LoopKey> loop_keys;
  bool too_big = false;
  std::string scope;  ///< the path of the layer being called, kept in its nodes' locations

  /// `loc` in the current scope.
  Loc scoped(Loc loc) const {
    loc.scope = scope;
    return loc;
  }

  bool training() const { return opts.training; }
  /// Makes a checked node; on a user error reports `context: message` at loc and returns nullptr.
  std::vector<Value*> ops(Op op, const std::vector<Value*>& operands, const NamedAttrs& attrs, const Loc& loc,
                          const std::string& context = {}, const std::vector<Type>& declared = {},
                          std::shared_ptr<Graph> body = nullptr);
  Value* op(Op op, const std::vector<Value*>& operands, const NamedAttrs& attrs, const Loc& loc,
            const std::string& context = {});
  /// A scalar constant (rank 0) of the given dtype.
  Value* scalar(double v, DType dtype, const Loc& loc);
  /// A constant filled with one value.
  Value* fill(double v, const Type& type, const Loc& loc);
  /// Creates the parameter `inst.full(local)`, applying a user's init override and frozen marker.
  Value* parameter(Instance& inst, const std::string& local, const Type& type, NamedAttrs init,
                   bool trainable = true);
  /// The `%step: i64[]` input that keys the counter-based generator in training mode; inside a
  /// `for` loop, a key of the loop's step derived from it, so that every step draws anew.
  Value* step_key(const Loc& loc);
  /// The `%step` input itself, made on first use.
  Value* step_key_outside(const Loc& loc);
  /// A decode step's `pos: i64[]` input: where its one token stands in the sequence.
  Value* position(const Loc& loc);
  /// A decode step's carried state: the input `cache.NAME` of `type`...
  Value* cache_input(const std::string& name, const Type& type, const Loc& loc);
  /// ...and its next value, the output `cache.NAME.next`.
  void cache_output(const std::string& name, Value* next, const Loc& loc);
  Value* cache_input_named(const std::string& name, const Type& type, const Loc& loc);
  void error(const Loc& loc, std::string msg) { diags.error(loc, std::move(msg)); }
};

/// What a layer constructor argument may hold.
enum class ArgKind { Size, Int, Float, Prob, Bool, Str, Pair, OptPair, Shape };

struct ArgSpec {
  ArgSpec(const char* n, ArgKind k, std::optional<Val> d = std::nullopt) : name(n), kind(k), def(std::move(d)) {}
  const char* name;
  ArgKind kind;
  std::optional<Val> def;  ///< none: required
};

/// A built-in layer: its PyTorch constructor signature, its parameters, its forward.
struct LayerKind {
  const char* name;
  std::vector<ArgSpec> args;
  /// Checks the bound arguments and creates the parameters; false after reporting an error.
  bool (*make)(Ctx&, Instance&);
  /// Applies the layer; empty after reporting an error.
  std::vector<Val> (*forward)(Ctx&, Instance&, const std::vector<Val>& inputs, const Loc& loc);
  int min_inputs = 1;
  int max_inputs = 1;
};

/// The built-in layer table (frontend/layers.cpp, recurrent.cpp, attention.cpp).
const std::vector<LayerKind>& layer_kinds();
const LayerKind* find_layer_kind(const std::string& name);
/// Parts of the table defined beside their forward code.
void add_recurrent_layers(std::vector<LayerKind>& table);
void add_attention_layers(std::vector<LayerKind>& table);

/// PyTorch's default init of a Linear or conv weight (kaiming_uniform, a = sqrt(5)) and the
/// matching bias init (uniform +-1/sqrt(fan_in)).
NamedAttrs kaiming_default();
NamedAttrs bias_default(int64_t fan_in);
/// A Linear layer's computation on the last axis: x @ w^T + b (b may be null).
Value* linear(Ctx& c, Value* x, Value* w, Value* b, const Loc& loc, const std::string& context);

/// Checks `train { ... }` and stores it as `train.*` graph attributes.
void lower_train(Ctx& c, const ModelDef& m, std::optional<int64_t>& batch, Loc& batch_loc);

}  // namespace stag::fe
