#include "frontend/load.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sys/stat.h>

#include "frontend/lower.h"
#include "frontend/onnx/onnx.h"
#include "ir/parser.h"
#include "ir/scan.h"
#include "ir/verifier.h"

namespace stag {

std::optional<std::string> read_source(const std::string& path, std::string& error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    error = fmt::format("cannot open '{}': {}", path, std::strerror(errno));
    return std::nullopt;
  }
  if (S_ISDIR(st.st_mode)) {
    error = fmt::format("'{}' is a directory", path);
    return std::nullopt;
  }
  if (S_ISREG(st.st_mode) && static_cast<size_t>(st.st_size) > kMaxSourceBytes) {
    error = fmt::format("'{}' is {} bytes; source files are limited to {} bytes", path, st.st_size,
                        kMaxSourceBytes);
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = fmt::format("cannot open '{}': {}", path, std::strerror(errno));
    return std::nullopt;
  }
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxSourceBytes) {
      error = fmt::format("'{}' is larger than {} bytes", path, kMaxSourceBytes);
      return std::nullopt;
    }
  }
  return text;
}

std::unique_ptr<Graph> load_model(const std::string& path, const std::string& text,
                                  const LoadOptions& options, Diagnostics& diags) {
  if (path.ends_with(".stag")) {
    diags.add_source(path, text);
    auto g = fe::lower_stag(text, path, options, diags);
    // The frontend checks every node as it builds it; the verifier re-checks the whole graph, so
    // a frontend bug shows up as an error instead of a bad graph downstream.
    if (!g || !verify(*g, diags)) return nullptr;
    // --unroll: the user's `for` loops unrolled too (the recurrent layers already are).
    return options.unroll ? unroll_scans(*g) : std::move(g);
  }
  if (path.ends_with(".onnx")) return onnx_import::import(path, text, {options.batch, options.dims, options.loss, {}, nullptr}, diags);
  SourceMap positions;
  auto g = parse_ir(text, path, diags, &positions);
  if (!g || !verify(*g, diags, &positions)) return nullptr;
  return g;
}

}  // namespace stag
