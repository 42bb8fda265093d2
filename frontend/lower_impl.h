#pragma once
/// The lowering of one `.stag` model, shared by the files that implement it: names.cpp
/// (scopes and lookup), expr.cpp (expressions and op calls), modules.cpp (layers, blocks,
/// declarations) and lower.cpp (statements and the model). Internal to frontend/.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "frontend/lowering.h"

namespace stag::fe {

/// Where names resolve: the enclosing layer (model or block instance) and forward locals.
struct Scope {
  Instance* inst;
  std::map<std::string, Val> locals;
  bool forward = false;
};

/// Lowers the chosen model of a parsed file into the context's graph.
class Lowering {
 public:
  Lowering(Ctx& c, const File& f) : c_(c), file_(f) {}

  void model(const ModelDef& m);

 private:
  // ---- errors
  Val fail(const Loc& loc, std::string msg) {
    c_.error(loc, std::move(msg));
    return {};
  }
  static std::string hint(const std::string& name, const std::vector<std::string>& candidates) {
    auto h = closest_name(name, candidates);
    return h ? fmt::format("; did you mean '{}'?", *h) : std::string();
  }

  // ---- names (names.cpp)
  std::vector<std::string> names_in(const Scope& s) const;
  bool declared(const Scope& s, const std::string& n) const {
    return s.inst->args.count(n) || s.inst->child_names.count(n) || s.inst->params.count(n) || inputs_.count(n);
  }
  /// False (after reporting) when `n` may not be declared in `s`.
  bool check_new_name(Scope& s, const std::string& n, const Loc& loc);
  /// A local, constant, predefined name, layer or parameter, possibly by dotted path.
  Val lookup(Scope& s, const std::string& name, const Loc& loc);
  std::string kind_of_name(const Scope& s, const std::string& n) const;

  // ---- expressions (expr.cpp)
  Val eval(Scope& s, const Expr& e);
  Val type_literal(Scope& s, const Expr& e);
  /// Compile-time arithmetic on two numbers, overflow-checked, with Python's semantics.
  Val number_op(const std::string& op, const Val& a, const Val& b, const Loc& loc);
  Val binary(Scope& s, const Expr& e);
  /// A keyword argument's value as an op attribute.
  std::optional<Attr> to_attr(const Val& v, const Loc& loc);
  std::vector<std::string> callables(const Scope& s) const;
  Val call(Scope& s, const Expr& e);
  Val call_op(Scope& s, Op op, const Expr& e);
  /// accuracy(logits, labels): the fraction of rows whose argmax equals the label.
  Val accuracy(Scope& s, const Expr& e);
  /// positions(x): the position of each token of x [B, T], i64[T] from 0; in a decode step the
  /// `pos` input, as i64[1].
  Val positions(Scope& s, const Expr& e);
  void decode_outputs(const ModelDef& m);
  void check_monitor(const ModelDef& m);

  // ---- layers and blocks (modules.cpp)
  const BlockDef* find_block(const std::string& name) const;
  /// Applies a layer; empty after an error (reported, or reported earlier).
  std::vector<Val> call_layer(Instance& in, const std::vector<Val>& ins, const Loc& loc);
  /// call_layer's work, with the layer's path as the scope of the nodes it makes.
  std::vector<Val> layer_outputs(Instance& in, const std::vector<Val>& ins, const Loc& loc);
  std::vector<Val> call_block(Instance& in, const std::vector<Val>& ins, const Loc& loc);
  /// Binds `Ctor(args)` against a signature; every value is checked for its kind and range.
  bool bind_builtin(Scope& s, const LayerKind& k, const Expr& e, Instance& in);
  std::optional<Val> check_arg(const LayerKind& k, const ArgSpec& spec, Val v, const Loc& loc);
  std::vector<std::string> constructors() const;
  /// Makes the layer `parent.local` from a constructor expression; nullptr after an error.
  Instance* instantiate(Scope& s, const Expr& e, Instance& parent, const std::string& local, bool frozen);
  Instance* construct(Scope& s, const Expr& e, Instance* raw);
  bool instantiate_block(Scope& outer, const BlockDef& b, const Expr& e, Instance& in);
  /// `normal(std=0.02)` and friends as parameter attributes; empty after an error.
  NamedAttrs init_spec(Scope& s, const Expr& e);
  /// The value of an `if` condition (a compile-time bool); nullopt after an error.
  std::optional<bool> condition(Scope& s, const Expr& e);
  /// Declarations of a model or block body, in order. False when any failed.
  bool decls(Scope& s, const std::vector<Decl>& ds);

  // ---- statements (lower.cpp)
  /// Runs a forward section; returns the value of `return` (blocks), or nullopt.
  std::optional<Val> run(Scope& s, const std::vector<Stmt>& body, bool is_model);
  /// Runs statements until a `return`, whose value it gives.
  std::optional<Val> exec(Scope& s, const std::vector<Stmt>& body, bool is_model);
  void statement(Scope& s, const Stmt& st);

  // ---- loops (loops.cpp)
  /// One `NAME in SEQUENCE` of a loop's header.
  struct Sequence {
    std::string name;
    Loc loc;
    Value* steps = nullptr;  ///< the slices stacked along axis 0; null for `_ in range(...)`
    bool reversed = false;
    bool is_range = false;
    int64_t length = 0;
    int64_t axis = 0;        ///< the axis the user's tensor is sliced along
  };
  /// A value the loop carries: an outer local its body rebinds.
  struct Carry {
    std::string name;
    Loc loc;
    Value* init;
    Value* param;  ///< its placeholder in the body
  };
  /// A `stack NAME = e along AXIS` of the loop being lowered.
  struct Stacked {
    std::string name;
    Loc loc;
    Value* value;
    int64_t axis;
  };
  /// What the statements of a loop's body see of the loop.
  struct LoopFrame {
    int64_t axis = 0;  ///< `stack`'s default axis: that of the loop's first tensor
    std::set<std::string> carries;
    std::vector<Stacked> stacks;
  };
  struct LoopParts {
    std::vector<Sequence> seqs;
    std::vector<Carry> carries;
    std::vector<Value*> params;  ///< the placeholders: carries, then slices
    std::vector<std::string> names;
    size_t first;  ///< the body's first node
  };
  void loop(Scope& s, const Stmt& st, bool is_model);
  std::optional<Sequence> sequence(Scope& s, const Stmt::Clause& c);
  std::optional<Sequence> range_sequence(Scope& s, const Stmt::Clause& c, const Expr& e, Sequence q);
  bool sequences(Scope& s, const Stmt& st, std::vector<Sequence>& out);
  std::vector<Carry> carries(Scope& s, const Stmt& st, bool& ok);
  void finish_loop(Scope& s, const Stmt& st, LoopParts p, Scope& inner, LoopFrame& frame);
  /// After a loop that failed (reported), the names it would bind hold no value.
  void poison_loop_results(Scope& s, const Stmt& st);
  void stack(Scope& s, const Stmt& st);

  Ctx& c_;
  const File& file_;
  LoopFrame* loop_ = nullptr;  ///< the innermost loop being lowered
  std::optional<int64_t> batch_;
  bool batch_failed_ = false;
  std::map<std::string, Val> inputs_;
  std::vector<std::string> stack_;
  size_t instances_ = 0;
  Instance root_;
};

}  // namespace stag::fe
