#pragma once
/// Splits `.stag` source text into tokens. Comments run from `#` to the end of the line.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ir/diag.h"

namespace stag::fe {

enum class Tok {
  Ident, Int, Float, String,
  LParen, RParen, LBrace, RBrace, LBracket, RBracket, Comma, Colon, Semi, Assign,
  Plus, Minus, Star, Slash, SlashSlash, Percent, At,
  Eq, Ne, Lt, Le, Gt, Ge,
  End, Error
};

struct Token {
  Tok kind = Tok::End;
  std::string text;  ///< identifier (dots included: `wte.weight`), decoded string, or error message
  int64_t i = 0;
  double f = 0;
  Loc loc;
};

/// How a token reads in a message: `'relu'`, `number 3`, `end of file`.
std::string describe(const Token& t);

/// Tokenizes the whole text. Lexical errors become Error tokens (reported by the parser, which
/// sees them in order); the list always ends with an End token.
std::vector<Token> lex(std::string_view text, const std::string& file);

}  // namespace stag::fe
