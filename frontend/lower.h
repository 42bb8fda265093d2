#pragma once
/// Lowers a `.stag` model description to graph IR.

#include <memory>
#include <string>
#include <string_view>

#include "frontend/load.h"
#include "ir/diag.h"
#include "ir/graph.h"

namespace stag::fe {

/// The largest `.stag` file accepted: the catalog's biggest model is a few KB, and the cap keeps
/// the token list and syntax tree of any input small.
inline constexpr size_t kMaxStagBytes = size_t{1} << 18;

/// Parses `text` and lowers the chosen model; nullptr after reporting errors to `diags`.
std::unique_ptr<Graph> lower_stag(std::string_view text, const std::string& file, const LoadOptions& options,
                                  Diagnostics& diags);

}  // namespace stag::fe
