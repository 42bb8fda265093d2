#pragma once
/// Helpers the test suites share: reading fixture files and reading runtime tensors as doubles.

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

}  // namespace stag::test
