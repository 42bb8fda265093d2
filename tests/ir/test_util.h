#pragma once
// Shared by the IR tests: readable Catch output for IR types.

#include <catch2/catch.hpp>

#include "ir/types.h"

namespace Catch {
template <>
struct StringMaker<stag::Type> {
  static std::string convert(const stag::Type& t) { return stag::to_string(t); }
};
}  // namespace Catch
