// Shared helpers of the frontend tests.

#include "helpers.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace stag::test {

std::vector<std::filesystem::path> catalog() {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(STAG_SOURCE_DIR) / "models"))
    if (e.path().extension() == ".stag") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Compiled compile(const std::string& text, LoadOptions options, const std::string& file) {
  Diagnostics diags;
  Compiled c;
  c.graph = load_model(file, text, options, diags);
  c.errors = diags.render();
  return c;
}

const Node* find_op(const Graph& g, Op op) {
  for (const auto& n : g.nodes)
    if (n->op == op) return n.get();
  return nullptr;
}

size_t count_op(const Graph& g, Op op) {
  return static_cast<size_t>(std::count_if(g.nodes.begin(), g.nodes.end(), [&](const auto& n) { return n->op == op; }));
}

}  // namespace stag::test
