#pragma once
/// The catalog's models (models/NAME.stag) as the compiler tests load them, and random inputs
/// for their compiled functions.

#include <catch2/catch.hpp>

#include <filesystem>
#include <optional>
#include <string>

#include "frontend/load.h"
#include "ir/analysis.h"
#include "ir/random.h"
#include "runtime/model.h"

namespace stag::test {

inline std::filesystem::path catalog_path(const std::string& name) {
  return std::filesystem::path(STAG_TESTS_DIR) / "../models" / (name + ".stag");
}

/// A model file lowered with `options`; `text` replaces the file's contents (an edited copy).
inline std::unique_ptr<Graph> load_model_file(const std::filesystem::path& path, const LoadOptions& options,
                                              std::optional<std::string> text = std::nullopt) {
  std::string error;
  if (!text) text = read_source(path.string(), error);
  INFO(error);
  REQUIRE(text);
  Diagnostics diags;
  auto g = load_model(path.string(), *text, options, diags);
  INFO(diags.render());
  REQUIRE(g);
  return g;
}

/// An input of the compiled function: f32 standard normal, ids uniform below the bound the
/// graph gives them (an embedding's rows, a loss's classes; else 10), drawn from (seed, stream).
inline rt::Tensor random_input(const Graph& g, const rt::BufferSpec& spec, int64_t seed, int64_t stream) {
  rt::Tensor t(spec.dtype, spec.shape);
  int64_t bound = index_bound(g, g.find(spec.name), 10);
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (spec.dtype == rt::DType::f32) t.values<float>()[i] = static_cast<float>(random_standard_normal(seed, stream, i));
    else t.values<int64_t>()[i] = static_cast<int64_t>(random_uniform01(seed, stream, i) * static_cast<double>(bound));
  }
  return t;
}

}  // namespace stag::test
