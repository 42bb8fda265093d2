#pragma once
/// The syntax tree of a `.stag` file: models, blocks, declarations, statements, expressions.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ir/diag.h"

namespace stag::fe {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

/// A keyword argument `name=value`.
struct KwArg {
  std::string name;
  Loc loc;
  ExprPtr value;
};

struct Expr {
  enum Kind {
    Int, Float, Str, Name,  ///< literals and (possibly dotted) names
    List,                   ///< `[a, b]`: items in args
    TypeLit,                ///< `f32[B, 10]`: dtype in text, dims in args
    Call,                   ///< `f(args, k=v)`: callee in text
    Repeat,                 ///< `repeat N Ctor(...)`: count in args[0], constructor call in args[1]
    Binary,                 ///< `a op b`: operator spelling in text (`+`, `and`...), operands in args
    Unary,                  ///< `-a`, `not a`
  } kind;
  Loc loc;
  Expr(Kind k, Loc l) : kind(k), loc(std::move(l)) {}
  int64_t i = 0;
  double f = 0;
  int height = 1;  ///< longest path to a leaf, bounded by the parser so recursion stays shallow
  std::string text;
  std::vector<ExprPtr> args;
  std::vector<KwArg> kwargs;
};

/// A statement of a forward section.
struct Stmt {
  enum Kind {
    Assign,  ///< `a = e` or `a, b = e`
    Output,  ///< `output name = e`, or `output name` for a local
    Loss,    ///< `loss = e`
    Metric,  ///< `metric name = e`
    Return,  ///< `return e` (blocks)
    If,      ///< `if cond { body } else { orelse }`: cond in value, decided at compile time
    Loop,    ///< `for x in xs along 1, ... { body }`: a scan; clauses in loop
    Stack,   ///< `stack ys = e along 1` (in a loop): target ys, value e, axis in along
  } kind;
  Loc loc;
  Stmt(Kind k, Loc l) : kind(k), loc(std::move(l)) {}
  /// One `NAME in SEQUENCE [along AXIS]` of a loop's header.
  struct Clause {
    std::string name;
    Loc loc;
    ExprPtr sequence;  ///< a tensor, `range(...)`, or either in `reversed(...)`
    ExprPtr along;     ///< may be null
  };
  std::vector<Clause> clauses;  ///< Loop's header
  ExprPtr along;                ///< Stack's axis; may be null
  std::vector<std::string> targets;
  std::vector<Loc> target_locs;
  ExprPtr value;  ///< may be null for `output name`
  std::vector<Stmt> body, orelse;  ///< If's branches
};

/// A declaration in a model or block body.
struct Decl {
  enum Kind {
    Batch,    ///< `batch 64`: value
    Const,    ///< `const T = 64`
    Input,    ///< `input x: f32[B, 784]`: value is the type literal
    Layer,    ///< `layer fc = Linear(784, 10) [frozen]`
    Param,    ///< `param cls: f32[1, 64] [= init] [frozen]`: type and init
    Init,     ///< `init fc.weight = xavier_uniform(gain=1.0)`
    If,       ///< `if cond { decls } else { decls }`: cond in value, decided at compile time
  } kind;
  Loc loc;
  Decl(Kind k, Loc l) : kind(k), loc(std::move(l)) {}
  std::string name;
  Loc name_loc;
  ExprPtr value;
  ExprPtr init;
  bool frozen = false;
  std::vector<Decl> body, orelse;  ///< If's branches
};

/// A `train { key = value ... }` entry.
struct Setting {
  std::string key;
  Loc loc;
  ExprPtr value;
};

/// `block Name(a, b=1) { decls forward(x) { stmts } }`: a user-defined layer.
struct BlockDef {
  std::string name;
  Loc loc;
  std::vector<std::string> params;
  std::vector<Loc> param_locs;
  std::vector<ExprPtr> defaults;  ///< one per param, null when required
  std::vector<Decl> decls;
  std::vector<std::string> inputs;  ///< the forward's arguments
  std::vector<Loc> input_locs;
  std::vector<Stmt> body;
  bool has_forward = false;
};

/// `model name { ... }`.
struct ModelDef {
  std::string name;
  Loc loc;
  std::vector<Decl> decls;
  std::vector<Stmt> forward;
  bool has_forward = false;
  Loc forward_loc;
  std::vector<Setting> train;
  bool has_train = false;
};

/// `gan name { generator = G  discriminator = D  ... }`: an adversarial pair of the file's models.
struct GanDef {
  std::string name;
  Loc loc;
  std::vector<Setting> settings;
};

/// A whole file: blocks are shared by every model in it.
struct File {
  std::vector<BlockDef> blocks;
  std::vector<ModelDef> models;
  std::vector<GanDef> gans;
};

}  // namespace stag::fe
