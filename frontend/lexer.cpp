// The `.stag` tokenizer: identifiers (with dots), numbers with overflow checks, strings, operators.

#include "frontend/lexer.h"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace stag::fe {

namespace {

bool ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool digit(char c) { return c >= '0' && c <= '9'; }
bool ident_char(char c) { return ident_start(c) || digit(c) || c == '.'; }

constexpr size_t kMaxTokenChars = 4096;  // identifiers, numbers and strings longer than this are errors

struct Punct {
  std::string_view text;
  Tok kind;
};
// Longest spellings first so that `//` wins over `/`.
constexpr Punct kPuncts[] = {
    {"//", Tok::SlashSlash}, {"==", Tok::Eq}, {"!=", Tok::Ne}, {"<=", Tok::Le}, {">=", Tok::Ge},
    {"(", Tok::LParen},      {")", Tok::RParen},  {"{", Tok::LBrace}, {"}", Tok::RBrace},
    {"[", Tok::LBracket},    {"]", Tok::RBracket}, {",", Tok::Comma}, {":", Tok::Colon},
    {";", Tok::Semi},        {"=", Tok::Assign},  {"+", Tok::Plus},  {"-", Tok::Minus},
    {"*", Tok::Star},        {"/", Tok::Slash},   {"%", Tok::Percent}, {"@", Tok::At},
    {"<", Tok::Lt},          {">", Tok::Gt},
};

class Lexer {
 public:
  Lexer(std::string_view src, const std::string& file) : src_(src), file_(file) {}

  std::vector<Token> run() {
    std::vector<Token> out;
    for (;;) {
      Token t = next();
      bool end = t.kind == Tok::End;
      out.push_back(std::move(t));
      if (end) return out;
    }
  }

 private:
  Token next() {
    skip_space();
    Token t;
    t.loc = {file_, line_, col_};
    if (pos_ >= src_.size()) return t;
    char c = src_[pos_];
    if (c == '"') return string(t);
    if (digit(c) || (c == '.' && pos_ + 1 < src_.size() && digit(src_[pos_ + 1]))) return number(t);
    if (ident_start(c)) {
      size_t start = pos_;
      while (pos_ < src_.size() && ident_char(src_[pos_])) advance();
      if (pos_ - start > kMaxTokenChars) return error(t, "identifier is too long");
      t.kind = Tok::Ident;
      t.text = src_.substr(start, pos_ - start);
      if (t.text.back() == '.' || t.text.find("..") != std::string::npos)
        return error(t, fmt::format("malformed name '{}'", t.text.substr(0, 64)));
      return t;
    }
    for (const auto& p : kPuncts)
      if (src_.substr(pos_, p.text.size()) == p.text) {
        for (size_t i = 0; i < p.text.size(); ++i) advance();
        t.kind = p.kind;
        return t;
      }
    unsigned char u = static_cast<unsigned char>(c);
    advance();
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
      else if (c == '#')
        while (pos_ < src_.size() && src_[pos_] != '\n') advance();
      else break;
    }
  }

  static Token error(Token t, std::string msg) {
    t.kind = Tok::Error;
    t.text = std::move(msg);
    return t;
  }

  Token number(Token t) {
    size_t start = pos_;
    bool is_float = false;
    while (pos_ < src_.size() && digit(src_[pos_])) advance();
    if (pos_ < src_.size() && src_[pos_] == '.' && !(pos_ + 1 < src_.size() && ident_start(src_[pos_ + 1]))) {
      is_float = true;
      advance();
      while (pos_ < src_.size() && digit(src_[pos_])) advance();
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      is_float = true;
      advance();
      if (pos_ < src_.size() && (src_[pos_] == '-' || src_[pos_] == '+')) advance();
      size_t exp = pos_;
      while (pos_ < src_.size() && digit(src_[pos_])) advance();
      if (pos_ == exp) return error(t, "expected digits in the exponent");
    }
    if (pos_ < src_.size() && ident_start(src_[pos_])) {
      while (pos_ < src_.size() && ident_char(src_[pos_])) advance();
      return error(t, "malformed number");
    }
    if (pos_ - start > kMaxTokenChars) return error(t, "number is too long");
    std::string text(src_.substr(start, pos_ - start));
    errno = 0;
    if (is_float) {
      double v = std::strtod(text.c_str(), nullptr);
      if (errno == ERANGE && std::isinf(v)) return error(t, fmt::format("number {} is out of range", text.substr(0, 40)));
      t.kind = Tok::Float;
      t.f = v;
    } else {
      long long v = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) return error(t, fmt::format("integer {} is too large", text.substr(0, 40)));
      t.kind = Tok::Int;
      t.i = v;
    }
    return t;
  }

  Token string(Token t) {
    advance();  // opening quote
    std::string s;
    while (pos_ < src_.size() && src_[pos_] != '"') {
      char c = src_[pos_];
      if (c == '\n') return error(t, "unterminated string");
      if (c == '\\') {
        advance();
        if (pos_ >= src_.size()) break;
        char e = src_[pos_];
        if (e == 'n') s += '\n';
        else if (e == 't') s += '\t';
        else if (e == '"' || e == '\\') s += e;
        else return error(t, fmt::format("unknown escape '\\{}' in string", e));
      } else {
        s += c;
      }
      advance();
      if (s.size() > kMaxTokenChars) return error(t, "string is too long");
    }
    if (pos_ >= src_.size()) return error(t, "unterminated string");
    advance();
    t.kind = Tok::String;
    t.text = std::move(s);
    return t;
  }

  std::string_view src_;
  const std::string& file_;
  size_t pos_ = 0;
  int line_ = 1, col_ = 1;
};

}  // namespace

std::string describe(const Token& t) {
  switch (t.kind) {
    case Tok::Ident: return fmt::format("'{}'", t.text.substr(0, 64));
    case Tok::Int: return fmt::format("number {}", t.i);
    case Tok::Float: return fmt::format("number {}", t.f);
    case Tok::String: return "a string";
    case Tok::End: return "end of file";
    case Tok::Error: return "an invalid token";
    default: break;
  }
  for (const auto& p : kPuncts)
    if (p.kind == t.kind) return fmt::format("'{}'", p.text);
  return "a token";
}

std::vector<Token> lex(std::string_view text, const std::string& file) { return Lexer(text, file).run(); }

}  // namespace stag::fe
