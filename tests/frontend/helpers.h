#pragma once
// Shared helpers of the frontend tests: reading the catalog and compiling model text.

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "frontend/load.h"
#include "ir/graph.h"

namespace stag::test {

/// Every models/*.stag file, sorted.
std::vector<std::filesystem::path> catalog();
std::string read_file(const std::filesystem::path& p);

/// A compiled model and what the frontend said.
struct Compiled {
  std::unique_ptr<Graph> graph;
  std::string errors;  ///< rendered diagnostics
};
Compiled compile(const std::string& text, LoadOptions options = {}, const std::string& file = "test.stag");
/// The first node of `op` in g, or nullptr.
const Node* find_op(const Graph& g, Op op);
size_t count_op(const Graph& g, Op op);

}  // namespace stag::test
