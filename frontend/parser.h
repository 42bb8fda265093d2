#pragma once
/// Parses `.stag` text into a syntax tree. Stops at the first syntax error (reported to diags).

#include <optional>
#include <string>
#include <string_view>

#include "frontend/ast.h"
#include "ir/diag.h"

namespace stag::fe {

/// Deepest nesting of expressions and braces the parser accepts; deeper input is an error,
/// never a stack overflow.
inline constexpr int kMaxNesting = 64;
/// Longest chain of binary operators in one expression (`a + b + ...`).
inline constexpr int kMaxExprHeight = 256;

/// The file's tree, or nullopt after reporting a syntax error.
std::optional<File> parse_stag(std::string_view text, const std::string& file, Diagnostics& diags);

}  // namespace stag::fe
