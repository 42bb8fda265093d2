#include "ir/parser.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <limits>

namespace stag {

namespace {

bool ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool ident_char(char c) { return ident_start(c) || (c >= '0' && c <= '9') || c == '.'; }

enum class Tok { Ident, ValueName, Int, Float, String, LBrace, RBrace, LParen, RParen, LBracket,
                 RBracket, Comma, Colon, Equals, End, Error };

struct Token {
  Tok kind = Tok::End;
  std::string text;  // identifier / value name (without %) / decoded string / error message
  int64_t i = 0;
  double f = 0;
  int line = 1, col = 1;
};

std::string describe(const Token& t) {
  switch (t.kind) {
    case Tok::Ident: return fmt::format("'{}'", t.text);
    case Tok::ValueName: return fmt::format("'%{}'", t.text);
    case Tok::Int: return fmt::format("number {}", t.i);
    case Tok::Float: return fmt::format("number {}", format_float(t.f));
    case Tok::String: return "a string";
    case Tok::End: return "end of file";
    case Tok::Error: return "an invalid token";
    default: break;
  }
  static constexpr std::string_view punct[] = {"'{'", "'}'", "'('", "')'", "'['", "']'", "','", "':'", "'='"};
  return std::string(punct[static_cast<int>(t.kind) - static_cast<int>(Tok::LBrace)]);
}

class Lexer {
 public:
  explicit Lexer(std::string_view src) : src_(src) {}

  Token next() {
    Token t = scan();
    if (t.kind != Tok::End) {
      end_line_ = line_;
      end_col_ = col_;
    }
    return t;
  }

 private:
  Token scan() {
    skip_space();
    Token t;
    t.line = line_;
    t.col = col_;
    // The end of a truncated file is shown just after its last token, not on a blank line.
    if (pos_ >= src_.size()) {
      t.line = end_line_;
      t.col = end_col_;
      return t;
    }
    char c = src_[pos_];
    static constexpr std::string_view puncts = "{}()[],:=";
    if (auto p = puncts.find(c); p != std::string_view::npos) {
      advance();
      t.kind = static_cast<Tok>(static_cast<int>(Tok::LBrace) + p);
      return t;
    }
    if (c == '%') {
      advance();
      size_t start = pos_;
      while (pos_ < src_.size() && ident_char(src_[pos_])) advance();
      if (pos_ == start) return error(t, "expected a value name after '%'");
      t.kind = Tok::ValueName;
      t.text = src_.substr(start, pos_ - start);
      return t;
    }
    if (c == '"') return string(t);
    if (c == '-' || c == '+' || (c >= '0' && c <= '9')) return number(t);
    if (ident_start(c)) {
      size_t start = pos_;
      while (pos_ < src_.size() && ident_char(src_[pos_])) advance();
      // `inf` and `nan` stay identifiers here (graph, output and attribute names may be spelled
      // so); where a value is expected, literal() reads them as floats.
      t.kind = Tok::Ident;
      t.text = src_.substr(start, pos_ - start);
      return t;
    }
    unsigned char u = static_cast<unsigned char>(c);
    return error(t, u >= 0x20 && u < 0x7f ? fmt::format("unexpected character '{}'", c)
                                           : fmt::format("unexpected byte 0x{:02x}", u));
  }

  void advance() {
    if (src_[pos_] == '\n') {
      ++line_;
      col_ = 1;
    } else {
      ++col_;
    }
    ++pos_;
  }

  void skip_space() {
    while (pos_ < src_.size()) {
      char c = src_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') advance();
      else if (c == '#' || (c == '/' && pos_ + 1 < src_.size() && src_[pos_ + 1] == '/'))
        while (pos_ < src_.size() && src_[pos_] != '\n') advance();
      else break;
    }
  }

  Token error(Token t, std::string msg) {
    t.kind = Tok::Error;
    t.text = std::move(msg);
    return t;
  }

  Token number(Token t) {
    size_t start = pos_;
    bool neg = src_[pos_] == '-';
    if (src_[pos_] == '-' || src_[pos_] == '+') advance();
    if (src_.substr(pos_, 3) == "inf" && (pos_ + 3 == src_.size() || !ident_char(src_[pos_ + 3]))) {
      for (int i = 0; i < 3; ++i) advance();
      t.kind = Tok::Float;
      t.f = neg ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
      return t;
    }
    size_t digits = pos_;
    bool is_float = false;
    while (pos_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos_]))) advance();
    if (pos_ == digits) return error(t, "expected a number");
    if (pos_ < src_.size() && src_[pos_] == '.') {
      is_float = true;
      advance();
      while (pos_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos_]))) advance();
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      is_float = true;
      advance();
      if (pos_ < src_.size() && (src_[pos_] == '-' || src_[pos_] == '+')) advance();
      size_t exp = pos_;
      while (pos_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos_]))) advance();
      if (pos_ == exp) return error(t, "expected digits in the exponent");
    }
    if (pos_ < src_.size() && ident_start(src_[pos_]))
      return error(t, fmt::format("unexpected character '{}' after a number", src_[pos_]));
    std::string_view text = src_.substr(start, pos_ - start);
    if (text[0] == '+') text.remove_prefix(1);
    const char* end = text.data() + text.size();
    if (is_float) {
      auto [p, ec] = std::from_chars(text.data(), end, t.f);
      if (ec == std::errc::result_out_of_range) return error(t, fmt::format("number {} is out of range", text));
      t.kind = Tok::Float;
    } else {
      auto [p, ec] = std::from_chars(text.data(), end, t.i);
      if (ec != std::errc()) return error(t, fmt::format("integer {} does not fit in 64 bits", text));
      t.kind = Tok::Int;
    }
    return t;
  }

  Token string(Token t) {
    advance();  // opening quote
    std::string out;
    while (pos_ < src_.size() && src_[pos_] != '"') {
      char c = src_[pos_];
      if (c == '\n') return error(t, "string is not closed on its line");
      if (c == '\\') {
        advance();
        if (pos_ >= src_.size()) break;
        char e = src_[pos_];
        if (e == 'n') out += '\n';
        else if (e == 't') out += '\t';
        else if (e == '"' || e == '\\') out += e;
        else if (e == 'x' && pos_ + 2 < src_.size() && std::isxdigit(static_cast<unsigned char>(src_[pos_ + 1])) &&
                 std::isxdigit(static_cast<unsigned char>(src_[pos_ + 2]))) {
          out += static_cast<char>(std::stoi(std::string(src_.substr(pos_ + 1, 2)), nullptr, 16));
          advance();
          advance();
        } else {
          return error(t, "unknown escape in string");
        }
        advance();
        continue;
      }
      out += c;
      advance();
    }
    if (pos_ >= src_.size()) return error(t, "string is not closed");
    advance();
    t.kind = Tok::String;
    t.text = std::move(out);
    return t;
  }

  std::string_view src_;
  size_t pos_ = 0;
  int line_ = 1, col_ = 1;
  int end_line_ = 1, end_col_ = 1;  ///< just after the last token
};

class Parser {
 public:
  Parser(std::string_view text, std::string file, Diagnostics& diags, SourceMap* map)
      : lex_(text), file_(std::move(file)), diags_(diags), map_(map) {
    tok_ = lex_.next();
  }

  std::unique_ptr<Graph> graph() {
    if (!expect_keyword("graph")) return nullptr;
    if (tok_.kind != Tok::Ident) return fail("expected the graph's name after 'graph'");
    auto g = std::make_unique<Graph>(tok_.text);
    g_ = g.get();
    next();
    if (!expect(Tok::LBrace, "'{' after the graph's name")) return nullptr;
    while (tok_.kind != Tok::RBrace) {
      if (tok_.kind == Tok::End) return fail("expected '}' to close the graph");
      if (!statement()) return nullptr;
    }
    next();
    if (tok_.kind != Tok::End) return fail(fmt::format("expected end of file after the graph, found {}", describe(tok_)));
    return g;
  }

  std::optional<Attr> literal() {
    if (tok_.kind == Tok::Error) return fail_opt(tok_.text);
    Attr a;
    switch (tok_.kind) {
      case Tok::Int: a = tok_.i; break;
      case Tok::Float: a = tok_.f; break;
      case Tok::String: a = tok_.text; break;
      case Tok::Ident:
        if (auto f = special_float(tok_)) a = *f;
        else if (tok_.text == "true" || tok_.text == "false") a = tok_.text == "true";
        else if (auto d = dtype_from_name(tok_.text)) a = *d;
        else return fail_opt(fmt::format("expected a value, found {}", describe(tok_)));
        break;
      case Tok::LBracket: return list();
      default: return fail_opt(fmt::format("expected a value, found {}", describe(tok_)));
    }
    next();
    return a;
  }

  bool at_end() const { return tok_.kind == Tok::End; }

 private:
  static std::optional<double> special_float(const Token& t) {
    if (t.kind != Tok::Ident) return std::nullopt;
    if (t.text == "inf") return std::numeric_limits<double>::infinity();
    if (t.text == "nan") return std::numeric_limits<double>::quiet_NaN();
    return std::nullopt;
  }

  std::optional<Attr> list() {
    next();
    Ints ints;
    Floats floats;
    bool any_float = false;
    while (tok_.kind != Tok::RBracket) {
      if (!ints.empty() || !floats.empty())
        if (!expect(Tok::Comma, "',' or ']' in the list")) return std::nullopt;
      if (tok_.kind == Tok::Int) {
        ints.push_back(tok_.i);
        floats.push_back(static_cast<double>(tok_.i));
      } else if (tok_.kind == Tok::Float || special_float(tok_)) {
        any_float = true;
        ints.push_back(0);
        floats.push_back(tok_.kind == Tok::Float ? tok_.f : *special_float(tok_));
      } else if (tok_.kind == Tok::Error) {
        return fail_opt(tok_.text);
      } else {
        return fail_opt(fmt::format("lists hold numbers only; found {}", describe(tok_)));
      }
      next();
    }
    next();
    if (any_float) return Attr(std::move(floats));
    return Attr(std::move(ints));
  }

  bool statement() {
    if (tok_.kind == Tok::Ident && tok_.text == "attr") return graph_attr();
    if (tok_.kind == Tok::Ident && tok_.text == "output") return output();
    if (tok_.kind == Tok::Ident && tok_.text == "update") return update();
    if (tok_.kind == Tok::ValueName) return node();
    fail(fmt::format("expected a node ('%name: type = op(...)'), 'attr', 'output' or 'update', found {}",
                     describe(tok_)));
    return false;
  }

  bool graph_attr() {
    next();
    if (tok_.kind != Tok::Ident) return fail(fmt::format("expected an attribute name, found {}", describe(tok_))), false;
    std::string key = tok_.text;
    Loc at = here();
    next();
    if (!expect(Tok::Equals, "'=' after the attribute name")) return false;
    auto value = literal();
    if (!value) return false;
    if (g_->attr(key)) return error_at(at, fmt::format("graph attribute '{}' is set twice", key)), false;
    g_->attrs.emplace_back(key, std::move(*value));
    return true;
  }

  bool output() {
    Loc at = here();
    next();
    if (tok_.kind != Tok::Ident) return fail(fmt::format("expected the output's name, found {}", describe(tok_))), false;
    std::string name = tok_.text;
    for (const auto& o : g_->outputs)
      if (o.name == name) return fail(fmt::format("output '{}' is defined twice", name)), false;
    next();
    if (!expect(Tok::Equals, "'=' after the output's name")) return false;
    Value* v = use();
    if (!v) return false;
    auto loc = opt_loc();
    if (!loc) return false;
    g_->outputs.push_back({name, v, *loc});
    if (map_ && depth_ == 0) map_->outputs.push_back(at);
    return true;
  }

  bool update() {
    Loc at = here();
    next();
    Value* target = use();
    if (!target) return false;
    if (!expect(Tok::Equals, "'=' after the updated parameter")) return false;
    Value* v = use();
    if (!v) return false;
    auto loc = opt_loc();
    if (!loc) return false;
    if (depth_ > 0) return error_at(at, "a body has no updates: return the new value as a carry"), false;
    g_->updates.push_back({target, v, *loc});
    if (map_) map_->updates.push_back(at);
    return true;
  }

  bool node() {
    Loc at = here();
    std::vector<std::string> names;
    std::vector<Type> types;
    std::vector<Loc> name_locs;
    for (;;) {
      if (tok_.kind != Tok::ValueName) return fail(fmt::format("expected a result name, found {}", describe(tok_))), false;
      for (const auto& n : names)
        if (n == tok_.text) return fail(fmt::format("'%{}' is named twice", tok_.text)), false;
      if (g_->has_name(tok_.text)) return fail(fmt::format("the name '%{}' is already defined", tok_.text)), false;
      names.push_back(tok_.text);
      name_locs.push_back(here());
      next();
      if (!expect(Tok::Colon, "':' and a type after the result name")) return false;
      auto t = type();
      if (!t) return false;
      types.push_back(*t);
      if (tok_.kind != Tok::Comma) break;
      if (names.size() >= 4096) return fail("too many results"), false;
      next();
    }
    if (!expect(Tok::Equals, "'=' after the result types")) return false;
    if (tok_.kind != Tok::Ident) return fail(fmt::format("expected an op name, found {}", describe(tok_))), false;
    auto op = op_from_name(tok_.text);
    if (!op) {
      std::vector<std::string> names_list;
      for (const auto& info : all_ops()) names_list.emplace_back(info.name);
      auto hint = closest_name(tok_.text, names_list);
      return fail(fmt::format("unknown op '{}'{}", tok_.text,
                              hint ? fmt::format("; did you mean '{}'?", *hint) : "")),
             false;
    }
    const OpInfo& info = op_info(*op);
    Loc op_loc = here();
    next();
    if (!expect(Tok::LParen, "'(' after the op name")) return false;
    std::vector<Value*> operands;
    NamedAttrs attrs;
    std::vector<Loc> attr_locs;
    while (tok_.kind != Tok::RParen) {
      if (!operands.empty() || !attrs.empty())
        if (!expect(Tok::Comma, "',' or ')' in the argument list")) return false;
      if (tok_.kind == Tok::ValueName) {
        if (!attrs.empty()) return fail("operands must come before attributes"), false;
        Value* v = use();
        if (!v) return false;
        operands.push_back(v);
      } else if (tok_.kind == Tok::Ident) {
        attr_locs.push_back(here());
        std::string key = tok_.text;
        next();
        if (!expect(Tok::Equals, "'=' after the attribute name")) return false;
        auto value = literal();
        if (!value) return false;
        attrs.emplace_back(std::move(key), std::move(*value));
      } else {
        return fail(fmt::format("expected an operand or an attribute, found {}", describe(tok_))), false;
      }
    }
    next();
    if (auto err = check_arity(info, operands.size()); !err.empty())
      return error_at(op_loc, fmt::format("{}: {}", info.name, err)), false;
    std::vector<Attr> resolved;
    if (auto err = resolve_attrs(info, attrs, resolved); !err.empty()) {
      // Point at the attribute the message names first (not at a 'did you mean' suggestion),
      // at its last occurrence (the repeat, for one given twice); else at the op.
      Loc where = op_loc;
      size_t first = std::string::npos;
      for (size_t i = 0; i < attrs.size(); ++i) {
        size_t at = err.find(fmt::format("'{}'", attrs[i].first));
        if (at != std::string::npos && (first == std::string::npos || at <= first)) {
          first = at;
          where = attr_locs[i];
        }
      }
      return error_at(where, fmt::format("{}: {}", info.name, err)), false;
    }
    auto loc = opt_loc();
    if (!loc) return false;
    std::shared_ptr<Graph> body;
    if (tok_.kind == Tok::LBrace || info.has(HasBody)) {
      if (!info.has(HasBody)) return fail(fmt::format("{} takes no body", info.name)), false;
      body = this->body(info);
      if (!body) return false;
    }
    Node* node = g_->append(*op, std::move(operands), std::move(resolved), types, names, *loc);
    node->body = std::move(body);
    if (map_) map_->nodes[node] = at;
    return true;
  }

  // `{ statements }` after an op with a body; its names are its own (bodies are closed).
  std::shared_ptr<Graph> body(const OpInfo& info) {
    if (!expect(Tok::LBrace, fmt::format("'{{' and the body of {}", info.name))) return nullptr;
    if (depth_ >= 64) return fail("bodies are nested too deeply"), nullptr;
    auto body = std::make_shared<Graph>("body");
    Graph* outer = g_;
    g_ = body.get();
    ++depth_;
    bool ok = true;
    while (ok && tok_.kind != Tok::RBrace) {
      if (tok_.kind != Tok::End) {
        ok = statement();
        continue;
      }
      fail(fmt::format("expected '}}' to close the body of {}", info.name));
      ok = false;
    }
    --depth_;
    g_ = outer;
    if (!ok) return nullptr;
    next();
    return body;
  }

  std::optional<Type> type() {
    if (tok_.kind != Tok::Ident) return fail_opt_t(fmt::format("expected a type such as f32[2,3], found {}", describe(tok_)));
    auto dtype = dtype_from_name(tok_.text);
    if (!dtype) return fail_opt_t(fmt::format("unknown element type '{}'; expected f32, f64, i32, i64 or bool", tok_.text));
    Loc at = here();
    next();
    if (!expect(Tok::LBracket, "'[' and the dimensions after the element type")) return std::nullopt;
    Type t{*dtype, {}};
    while (tok_.kind != Tok::RBracket) {
      if (!t.dims.empty() && !expect(Tok::Comma, "',' or ']' in the dimensions")) return std::nullopt;
      if (tok_.kind == Tok::Error) return fail_opt_t(tok_.text);
      if (tok_.kind != Tok::Int) return fail_opt_t(fmt::format("expected a dimension, found {}", describe(tok_)));
      if (t.dims.size() == kMaxRank) return fail_opt_t(fmt::format("types have at most {} dimensions", kMaxRank));
      t.dims.push_back(tok_.i);
      next();
    }
    next();
    if (auto e = type_error(t); !e.empty()) return error_at(at, e), std::nullopt;
    return t;
  }

  Value* use() {
    if (tok_.kind != Tok::ValueName) return fail(fmt::format("expected a value such as %x, found {}", describe(tok_))), nullptr;
    Value* v = g_->find(tok_.text);
    if (!v) {
      auto hint = closest_name(tok_.text, g_->value_names());
      return fail(fmt::format("use of undefined value '%{}'{}", tok_.text,
                              hint ? fmt::format("; did you mean '%{}'?", *hint)
                              : depth_ > 0 ? std::string(" (a body reads only its own inputs: pass outer values as operands)")
                                   : std::string(" (values must be defined before they are used)"))),
             nullptr;
    }
    next();
    return v;
  }

  // An optional trailing `loc("file":line:col)`, or `loc("file":line:col in "scope")`.
  std::optional<Loc> opt_loc() {
    if (tok_.kind != Tok::Ident || tok_.text != "loc") return Loc{};
    next();
    if (!expect(Tok::LParen, "'(' after 'loc'")) return std::nullopt;
    if (tok_.kind != Tok::String) return fail_opt_l(fmt::format("expected the file name in quotes, found {}", describe(tok_)));
    Loc loc;
    loc.file = tok_.text;
    next();
    // A known location has a line; its column may be 0 (the whole line), as the printer writes it.
    for (int* field : {&loc.line, &loc.col}) {
      if (!expect(Tok::Colon, "':' in the location")) return std::nullopt;
      int min = field == &loc.line ? 1 : 0;
      if (tok_.kind != Tok::Int || tok_.i < min || tok_.i > std::numeric_limits<int>::max())
        return fail_opt_l(min ? "expected a positive line number" : "expected a column number (0 or more)");
      *field = static_cast<int>(tok_.i);
      next();
    }
    if (tok_.kind == Tok::Ident && tok_.text == "in") {
      next();
      if (tok_.kind != Tok::String) return fail_opt_l(fmt::format("expected the scope in quotes, found {}", describe(tok_)));
      loc.scope = tok_.text;
      next();
    }
    if (!expect(Tok::RParen, "')' to close the location")) return std::nullopt;
    return loc;
  }

  bool expect_keyword(std::string_view kw) {
    if (tok_.kind == Tok::Ident && tok_.text == kw) {
      next();
      return true;
    }
    fail(fmt::format("expected '{}', found {}", kw, describe(tok_)));
    return false;
  }

  bool expect(Tok kind, std::string_view what) {
    if (tok_.kind == kind) {
      next();
      return true;
    }
    fail(tok_.kind == Tok::Error ? tok_.text : fmt::format("expected {}, found {}", what, describe(tok_)));
    return false;
  }

  void next() { tok_ = lex_.next(); }
  Loc here() const { return {file_, tok_.line, tok_.col}; }
  void error_at(const Loc& loc, std::string msg) { diags_.error(loc, std::move(msg)); }
  std::nullptr_t fail(std::string msg) {
    error_at(here(), tok_.kind == Tok::Error ? tok_.text : std::move(msg));
    return nullptr;
  }
  std::optional<Attr> fail_opt(std::string msg) { fail(std::move(msg)); return std::nullopt; }
  std::optional<Type> fail_opt_t(std::string msg) { fail(std::move(msg)); return std::nullopt; }
  std::optional<Loc> fail_opt_l(std::string msg) { fail(std::move(msg)); return std::nullopt; }

  Lexer lex_;
  Token tok_;
  std::string file_;
  Diagnostics& diags_;
  SourceMap* map_;
  Graph* g_ = nullptr;
  int depth_ = 0;  ///< how many bodies enclose the statement being read
};

}  // namespace

std::unique_ptr<Graph> parse_ir(std::string_view text, const std::string& file, Diagnostics& diags,
                                SourceMap* positions) {
  diags.add_source(file, std::string(text));
  Parser p(text, file, diags, positions);
  return p.graph();
}

std::optional<Attr> parse_attr_literal(std::string_view text) {
  Diagnostics ignored;
  Parser p(text, "", ignored, nullptr);
  auto a = p.literal();
  if (!a || !p.at_end()) return std::nullopt;
  return a;
}

bool is_value_name(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!ident_char(c)) return false;
  return true;
}

bool is_identifier(std::string_view s) { return is_value_name(s) && ident_start(s[0]); }

}  // namespace stag
