// Recursive-descent parser for `.stag` files; the grammar is in docs/language.md.

#include "frontend/parser.h"

#include <fmt/format.h>

#include "frontend/lexer.h"
#include "ir/types.h"

namespace stag::fe {

namespace {

struct SyntaxError {};  // unwinds to parse_stag after the error is reported

class Parser {
 public:
  Parser(std::vector<Token> toks, Diagnostics& diags) : toks_(std::move(toks)), diags_(diags) {}

  File file() {
    File f;
    while (!at(Tok::End)) {
      if (is_kw("block")) f.blocks.push_back(block());
      else if (is_kw("model")) f.models.push_back(model());
      else if (is_kw("gan")) f.gans.push_back(gan());
      else fail("expected 'model', 'gan' or 'block'");
    }
    if (f.models.empty()) {
      diags_.error(peek().loc, "the file declares no model; expected 'model NAME { ... }'");
      throw SyntaxError{};
    }
    return f;
  }

 private:
  // ---- token helpers
  const Token& peek(size_t ahead = 0) const { return toks_[std::min(pos_ + ahead, toks_.size() - 1)]; }
  bool at(Tok k) const { return peek().kind == k; }
  bool is_kw(std::string_view kw) const { return at(Tok::Ident) && peek().text == kw; }
  Token take() {
    Token t = peek();
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }

  [[noreturn]] void fail(const std::string& expected) {
    const Token& t = peek();
    if (t.kind == Tok::Error) diags_.error(t.loc, t.text);
    else diags_.error(t.loc, fmt::format("{}, found {}", expected, describe(t)));
    throw SyntaxError{};
  }
  Token expect(Tok k, const std::string& what) {
    if (!at(k)) fail(fmt::format("expected {}", what));
    return take();
  }
  Token ident(const std::string& what) {
    if (!at(Tok::Ident)) fail(fmt::format("expected {}", what));
    return take();
  }
  // A plain name: no dots, since it names something in the current scope.
  Token simple_ident(const std::string& what) {
    Token t = ident(what);
    if (t.text.find('.') != std::string::npos) {
      diags_.error(t.loc, fmt::format("{} must not contain '.', got '{}'", what, t.text));
      throw SyntaxError{};
    }
    return t;
  }
  void skip_semis() {
    while (at(Tok::Semi)) take();
  }

  struct Depth {
    Parser& p;
    explicit Depth(Parser& parser) : p(parser) {
      if (++p.depth_ > kMaxNesting) {
        p.diags_.error(p.peek().loc, fmt::format("nesting is deeper than {} levels", kMaxNesting));
        throw SyntaxError{};
      }
    }
    ~Depth() { --p.depth_; }
  };

  // ---- declarations
  ModelDef model() {
    ModelDef m;
    m.loc = take().loc;
    m.name = simple_ident("the model's name").text;
    expect(Tok::LBrace, "'{' after the model's name");
    while (!at(Tok::RBrace)) {
      skip_semis();
      if (at(Tok::RBrace)) break;
      if (is_kw("forward")) {
        if (m.has_forward) {
          diags_.error(peek().loc, "the model has two forward sections");
          throw SyntaxError{};
        }
        m.forward_loc = take().loc;
        m.has_forward = true;
        m.forward = stmts();
      } else if (is_kw("train")) {
        if (m.has_train) {
          diags_.error(peek().loc, "the model has two train sections");
          throw SyntaxError{};
        }
        take();
        m.has_train = true;
        m.train = settings();
      } else if (is_kw("batch")) {
        Decl d{Decl::Batch, take().loc};
        d.value = expr();
        m.decls.push_back(std::move(d));
      } else {
        m.decls.push_back(member("'batch', 'const', 'input', 'layer', 'param', 'init', 'forward', 'train' or '}'", true));
      }
    }
    take();
    return m;
  }

  GanDef gan() {
    GanDef d;
    d.loc = take().loc;
    d.name = simple_ident("the GAN's name").text;
    d.settings = settings("the GAN's settings");
    return d;
  }

  BlockDef block() {
    BlockDef b;
    b.loc = take().loc;
    b.name = simple_ident("the block's name").text;
    expect(Tok::LParen, "'(' after the block's name");
    while (!at(Tok::RParen)) {
      Token p = simple_ident("a parameter name");
      b.params.push_back(p.text);
      b.param_locs.push_back(p.loc);
      b.defaults.push_back(nullptr);
      if (at(Tok::Assign)) {
        take();
        b.defaults.back() = expr();
      }
      if (!at(Tok::RParen)) expect(Tok::Comma, "',' or ')' in the parameter list");
    }
    take();
    expect(Tok::LBrace, "'{' to open the block");
    while (!at(Tok::RBrace)) {
      skip_semis();
      if (at(Tok::RBrace)) break;
      if (is_kw("forward")) {
        if (b.has_forward) {
          diags_.error(peek().loc, fmt::format("block '{}' has two forward sections", b.name));
          throw SyntaxError{};
        }
        take();
        b.has_forward = true;
        expect(Tok::LParen, "'(' and the forward's arguments");
        while (!at(Tok::RParen)) {
          Token a = simple_ident("an argument name");
          b.inputs.push_back(a.text);
          b.input_locs.push_back(a.loc);
          if (!at(Tok::RParen)) expect(Tok::Comma, "',' or ')'");
        }
        take();
        b.body = stmts();
      } else {
        b.decls.push_back(member("'const', 'layer', 'param', 'init', 'forward' or '}'", false));
      }
    }
    take();
    return b;
  }

  // const / input / layer / param / init / if
  Decl member(const std::string& expected, bool allow_input) {
    if (is_kw("if")) {
      Depth depth(*this);
      Decl d{Decl::If, take().loc};
      d.value = expr();
      d.body = members(expected, allow_input);
      if (is_kw("else")) {
        take();
        if (is_kw("if")) d.orelse.push_back(member(expected, allow_input));
        else d.orelse = members(expected, allow_input);
      }
      return d;
    }
    if (is_kw("const")) {
      Decl d{Decl::Const, take().loc};
      Token n = simple_ident("the constant's name");
      d.name = n.text;
      d.name_loc = n.loc;
      expect(Tok::Assign, "'=' after the constant's name");
      d.value = expr();
      return d;
    }
    if (allow_input && is_kw("input")) {
      Decl d{Decl::Input, take().loc};
      Token n = simple_ident("the input's name");
      d.name = n.text;
      d.name_loc = n.loc;
      expect(Tok::Colon, "':' and the input's type");
      d.value = type_literal();
      return d;
    }
    if (is_kw("layer")) {
      Decl d{Decl::Layer, take().loc};
      Token n = simple_ident("the layer's name");
      d.name = n.text;
      d.name_loc = n.loc;
      expect(Tok::Assign, "'=' after the layer's name");
      d.value = expr();
      if (is_kw("frozen")) take(), d.frozen = true;
      return d;
    }
    if (is_kw("param")) {
      Decl d{Decl::Param, take().loc};
      Token n = simple_ident("the parameter's name");
      d.name = n.text;
      d.name_loc = n.loc;
      expect(Tok::Colon, "':' and the parameter's type");
      d.value = type_literal();
      if (at(Tok::Assign)) {
        take();
        d.init = expr();
      }
      if (is_kw("frozen")) take(), d.frozen = true;
      return d;
    }
    if (is_kw("init")) {
      Decl d{Decl::Init, take().loc};
      Token n = ident("a parameter name such as 'fc1.weight'");
      d.name = n.text;
      d.name_loc = n.loc;
      expect(Tok::Assign, "'=' and an initialiser");
      d.init = expr();
      return d;
    }
    fail(fmt::format("expected {}", expected));
  }

  std::vector<Decl> members(const std::string& expected, bool allow_input) {
    expect(Tok::LBrace, "'{' after the condition");
    std::vector<Decl> out;
    while (!at(Tok::RBrace)) {
      skip_semis();
      if (at(Tok::RBrace)) break;
      out.push_back(member(expected, allow_input));
    }
    take();
    return out;
  }

  std::vector<Setting> settings(const std::string& what = "the train section") {
    expect(Tok::LBrace, fmt::format("'{{' to open {}", what));
    std::vector<Setting> out;
    while (!at(Tok::RBrace)) {
      skip_semis();
      if (at(Tok::RBrace)) break;
      Token k = simple_ident("a setting name");
      expect(Tok::Assign, "'=' after the setting's name");
      out.push_back({k.text, k.loc, expr()});
    }
    take();
    return out;
  }

  // ---- statements
  std::vector<Stmt> stmts() {
    Depth depth(*this);
    expect(Tok::LBrace, "'{' to open the forward section");
    std::vector<Stmt> out;
    while (!at(Tok::RBrace)) {
      skip_semis();
      if (at(Tok::RBrace)) break;
      out.push_back(stmt());
    }
    take();
    return out;
  }

  Stmt stmt() {
    Loc loc = peek().loc;
    if (is_kw("if")) {
      take();
      Stmt s{Stmt::If, loc};
      s.value = expr();
      s.body = stmts();
      if (is_kw("else")) {
        take();
        if (is_kw("if")) {
          Depth depth(*this);
          s.orelse.push_back(stmt());
        } else {
          s.orelse = stmts();
        }
      }
      return s;
    }
    if (is_kw("for") && peek(1).kind != Tok::Assign && peek(1).kind != Tok::Comma) return loop();
    if (is_kw("stack") && peek(1).kind == Tok::Ident && peek(2).kind == Tok::Assign) {
      take();
      Stmt s{Stmt::Stack, loc};
      Token n = simple_ident("the stacked value's name");
      s.targets.push_back(n.text);
      s.target_locs.push_back(n.loc);
      take();
      s.value = expr();
      s.along = along();
      return s;
    }
    if (is_kw("return")) {
      take();
      Stmt s{Stmt::Return, loc};
      s.value = expr();
      return s;
    }
    if (is_kw("output") || is_kw("metric")) {
      bool output = peek().text == "output";
      take();
      Stmt s{output ? Stmt::Output : Stmt::Metric, loc};
      Token n = simple_ident(output ? "the output's name" : "the metric's name");
      s.targets.push_back(n.text);
      s.target_locs.push_back(n.loc);
      if (output && !at(Tok::Assign)) return s;
      expect(Tok::Assign, "'='");
      s.value = expr();
      return s;
    }
    if (is_kw("loss") && peek(1).kind == Tok::Assign) {
      take();
      take();
      Stmt s{Stmt::Loss, loc};
      s.value = expr();
      return s;
    }
    Stmt s{Stmt::Assign, loc};
    for (;;) {
      Token n = simple_ident("a statement ('NAME = expression', 'output', 'loss', 'metric' or 'return')");
      s.targets.push_back(n.text);
      s.target_locs.push_back(n.loc);
      if (!at(Tok::Comma)) break;
      take();
    }
    expect(Tok::Assign, "'=' after the name");
    s.value = expr();
    return s;
  }

  // `for NAME in SEQUENCE [along AXIS], ... { stmts }`
  Stmt loop() {
    Stmt s{Stmt::Loop, take().loc};
    for (;;) {
      Token n = simple_ident("the loop variable's name");
      if (!is_kw("in")) fail(fmt::format("expected 'in' after the loop variable '{}'", n.text));
      take();
      Stmt::Clause c{n.text, n.loc, expr(), nullptr};
      c.along = along();
      s.clauses.push_back(std::move(c));
      if (!at(Tok::Comma)) break;
      take();
    }
    if (!at(Tok::LBrace)) fail("expected ',' and another 'NAME in SEQUENCE', or '{' to open the loop's body");
    s.body = stmts();
    return s;
  }
  ExprPtr along() {
    if (!is_kw("along")) return nullptr;
    take();
    return expr();
  }

  // Operator chains are built by loops, not recursion, so nesting depth alone does not bound
  // the tree; its height does, and with it how deep lowering (and destroying) it recurses.
  ExprPtr finish(ExprPtr e) {
    for (const auto& a : e->args) e->height = std::max(e->height, a->height + 1);
    for (const auto& k : e->kwargs) e->height = std::max(e->height, k.value->height + 1);
    if (e->height > kMaxExprHeight) {
      diags_.error(e->loc, fmt::format("expression is too complex: nested more than {} operations deep", kMaxExprHeight));
      throw SyntaxError{};
    }
    return e;
  }

  // ---- expressions, lowest precedence first
  ExprPtr expr() {
    Depth depth(*this);
    ExprPtr lhs = conjunction();
    while (is_kw("or")) lhs = word_binary(std::move(lhs), &Parser::conjunction);
    return lhs;
  }
  ExprPtr conjunction() {
    ExprPtr lhs = negation();
    while (is_kw("and")) lhs = word_binary(std::move(lhs), &Parser::negation);
    return lhs;
  }
  ExprPtr negation() {
    if (!is_kw("not")) return comparison();
    Depth depth(*this);
    auto e = std::make_unique<Expr>(Expr::Unary, take().loc);
    e->text = "not";
    e->args.push_back(negation());
    return finish(std::move(e));
  }
  ExprPtr word_binary(ExprPtr lhs, ExprPtr (Parser::*next)()) {
    Token op = take();
    auto e = std::make_unique<Expr>(Expr::Binary, op.loc);
    e->text = op.text;
    e->args.push_back(std::move(lhs));
    e->args.push_back((this->*next)());
    return finish(std::move(e));
  }
  ExprPtr comparison() {
    ExprPtr lhs = additive();
    while (at(Tok::Eq) || at(Tok::Ne) || at(Tok::Lt) || at(Tok::Le) || at(Tok::Gt) || at(Tok::Ge))
      lhs = binary(std::move(lhs), &Parser::additive);
    return lhs;
  }
  ExprPtr additive() {
    ExprPtr lhs = multiplicative();
    while (at(Tok::Plus) || at(Tok::Minus)) lhs = binary(std::move(lhs), &Parser::multiplicative);
    return lhs;
  }
  ExprPtr multiplicative() {
    ExprPtr lhs = unary();
    while (at(Tok::Star) || at(Tok::Slash) || at(Tok::SlashSlash) || at(Tok::Percent) || at(Tok::At))
      lhs = binary(std::move(lhs), &Parser::unary);
    return lhs;
  }
  ExprPtr binary(ExprPtr lhs, ExprPtr (Parser::*next)()) {
    Token op = take();
    auto e = std::make_unique<Expr>(Expr{Expr::Binary, op.loc});
    e->text = describe(op).substr(1);
    e->text.pop_back();  // the spelling without quotes
    e->args.push_back(std::move(lhs));
    e->args.push_back((this->*next)());
    return finish(std::move(e));
  }
  ExprPtr unary() {
    if (at(Tok::Minus)) {
      Depth depth(*this);
      auto e = std::make_unique<Expr>(Expr{Expr::Unary, take().loc});
      e->text.push_back('-');
      e->args.push_back(unary());
      return finish(std::move(e));
    }
    return primary();
  }

  ExprPtr primary() {
    const Token& t = peek();
    Loc loc = t.loc;
    switch (t.kind) {
      case Tok::Int: {
        auto e = std::make_unique<Expr>(Expr{Expr::Int, loc});
        e->i = take().i;
        return e;
      }
      case Tok::Float: {
        auto e = std::make_unique<Expr>(Expr{Expr::Float, loc});
        e->f = take().f;
        return e;
      }
      case Tok::String: {
        auto e = std::make_unique<Expr>(Expr{Expr::Str, loc});
        e->text = take().text;
        return e;
      }
      case Tok::LParen: {
        take();
        ExprPtr e = expr();
        expect(Tok::RParen, "')'");
        return e;
      }
      case Tok::LBracket: {
        auto e = std::make_unique<Expr>(Expr{Expr::List, loc});
        take();
        e->args = items(Tok::RBracket, "']'");
        return finish(std::move(e));
      }
      case Tok::Ident: break;
      default: fail("expected an expression");
    }
    if (t.text == "repeat") {
      auto e = std::make_unique<Expr>(Expr{Expr::Repeat, take().loc});
      e->args.push_back(unary());
      if (!(at(Tok::Ident) && peek(1).kind == Tok::LParen)) fail("expected a layer constructor after the repeat count");
      e->args.push_back(primary());
      return finish(std::move(e));
    }
    if (dtype_from_name(t.text) && peek(1).kind == Tok::LBracket) return type_literal();
    Token name = take();
    if (!at(Tok::LParen)) {
      auto e = std::make_unique<Expr>(Expr{Expr::Name, loc});
      e->text = name.text;
      return e;
    }
    auto e = std::make_unique<Expr>(Expr{Expr::Call, loc});
    e->text = name.text;
    take();
    while (!at(Tok::RParen)) {
      if (at(Tok::Ident) && peek(1).kind == Tok::Assign) {
        Token k = take();
        take();
        if (k.text.find('.') != std::string::npos) {
          diags_.error(k.loc, fmt::format("keyword '{}' must not contain '.'", k.text));
          throw SyntaxError{};
        }
        e->kwargs.push_back({k.text, k.loc, expr()});
      } else {
        if (!e->kwargs.empty()) fail("expected a keyword argument (positional arguments come first)");
        e->args.push_back(expr());
      }
      if (!at(Tok::RParen)) expect(Tok::Comma, "',' or ')' in the argument list");
    }
    take();
    return finish(std::move(e));
  }

  std::vector<ExprPtr> items(Tok close, const std::string& close_text) {
    Depth depth(*this);
    std::vector<ExprPtr> out;
    while (!at(close)) {
      out.push_back(expr());
      if (!at(close)) expect(Tok::Comma, fmt::format("',' or {}", close_text));
    }
    take();
    return out;
  }

  ExprPtr type_literal() {
    Token d = ident("a tensor type such as f32[B, 784]");
    if (!dtype_from_name(d.text)) {
      diags_.error(d.loc, fmt::format("unknown element type '{}'; expected f32, f64, i32, i64 or bool", d.text));
      throw SyntaxError{};
    }
    auto e = std::make_unique<Expr>(Expr{Expr::TypeLit, d.loc});
    e->text = d.text;
    expect(Tok::LBracket, "'[' and the dimensions");
    e->args = items(Tok::RBracket, "']'");
    return e;
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
  Diagnostics& diags_;
};

}  // namespace

std::optional<File> parse_stag(std::string_view text, const std::string& file, Diagnostics& diags) {
  Parser p(lex(text, file), diags);
  try {
    return p.file();
  } catch (const SyntaxError&) {
    return std::nullopt;
  }
}

}  // namespace stag::fe
