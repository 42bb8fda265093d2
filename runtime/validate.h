#pragma once
/// Checks shared by the file readers.

#include <string>

#include "runtime/tensor.h"

namespace stag::rt {

/// Throws Error (naming `file`) unless every byte of a bool tensor is 0 or 1: any other byte would
/// make reading it as C++ bool undefined behaviour.
void check_bool_bytes(const Tensor& t, const std::string& file);

}  // namespace stag::rt
