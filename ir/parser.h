#pragma once
/// Reads the IR's text form back into a graph.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "ir/diag.h"
#include "ir/graph.h"

namespace stag {

/// Where each node, output and update sits in the IR text, so that the verifier can point
/// at the line a user edits (the `loc(...)` in the text points at the model source instead).
struct SourceMap {
  std::unordered_map<const Node*, Loc> nodes;
  std::vector<Loc> outputs;
  std::vector<Loc> updates;
};

/// Parses one graph. On a syntax or naming error, reports it to `diags` (with the text
/// registered for carets) and returns nullptr. Shapes are not checked here: run `verify`.
std::unique_ptr<Graph> parse_ir(std::string_view text, const std::string& file, Diagnostics& diags,
                                SourceMap* positions = nullptr);

/// Parses a single attribute literal (`3`, `1.5`, `"s"`, `[1, 2]`, `f32`, `true`).
std::optional<Attr> parse_attr_literal(std::string_view text);

/// True for names the text form can hold: `[A-Za-z0-9_.]+` for values, and the same
/// starting with a letter or `_` for graph, output and attribute names.
bool is_value_name(std::string_view s);
bool is_identifier(std::string_view s);

}  // namespace stag
