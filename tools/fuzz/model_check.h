#pragma once
/// The model targets' check: a graph a reader accepts prints as IR that reads back to the same
/// text, and a refused one comes with an error message.

#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include "frontend/load.h"
#include "ir/parser.h"
#include "ir/printer.h"

namespace stag::fuzz {

inline void check_round_trip(const Graph& g) {
  std::string text = print(g);
  Diagnostics diags;
  auto again = parse_ir(text, "printed.ir", diags);
  if (!again || print(*again) != text) {
    fmt::print(stderr, "an accepted graph does not read back from its printed IR:\n{}\n{}", text, diags.render());
    std::abort();
  }
}

/// Loads `text` as the file `path` would be; true when the model was accepted.
inline bool load_and_check(const std::string& path, std::string_view text, bool training) {
  Diagnostics diags;
  LoadOptions options;
  options.training = training;
  auto g = load_model(path, std::string(text), options, diags);
  if (g) check_round_trip(*g);
  else if (!diags.has_errors()) {
    fmt::print(stderr, "a model was refused without an error message\n");
    std::abort();
  }
  return g != nullptr;
}

}  // namespace stag::fuzz
