#pragma once
/// Helpers the test suites share: reading fixture files and reading runtime tensors as doubles.

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace stag::test {

/// The whole text of a file (fixtures, golden files).
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A runtime tensor's elements as doubles, whatever its element type.
inline std::vector<double> to_doubles(const rt::Tensor& t) {
  std::vector<double> out;
  switch (t.dtype()) {
    case rt::DType::f32: for (float v : t.values<float>()) out.push_back(v); break;
    case rt::DType::f64: for (double v : t.values<double>()) out.push_back(v); break;
    case rt::DType::i32: for (int32_t v : t.values<int32_t>()) out.push_back(v); break;
    case rt::DType::i64: for (int64_t v : t.values<int64_t>()) out.push_back(static_cast<double>(v)); break;
    case rt::DType::b8: for (bool v : t.values<bool>()) out.push_back(v); break;
  }
  return out;
}

/// The first element of `got` farther from `want` than tol * (1 + max |want|), described; empty
/// when every element is that close and the sizes agree.
inline std::string first_mismatch(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  if (got.size() != want.size()) return "sizes " + std::to_string(got.size()) + " and " + std::to_string(want.size());
  double scale = 0;
  for (double w : want) scale = std::max(scale, std::fabs(w));
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(got[i] - want[i]) <= tol * (1 + scale)))
      return "[" + std::to_string(i) + "] compiled " + std::to_string(got[i]) + " reference " + std::to_string(want[i]);
  return "";
}

}  // namespace stag::test
