#pragma once
/// The header dictionary of a .npy file: a strict parser for the Python literal NumPy writes, and
/// the formatter that writes it the way NumPy does.

#include <string>
#include <string_view>

#include "runtime/tensor.h"

namespace stag::rt {

/// The three entries every .npy header has.
struct NpyHeader {
  std::string descr;  ///< NumPy dtype string, e.g. "<f4".
  bool fortran_order = false;
  Shape shape;
};

/// Parses `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` followed by padding
/// (spaces, a newline). Accepts what Python's literal syntax allows for these three keys — either
/// quote style, any whitespace, trailing commas, any key order — and nothing else: the keys must
/// be exactly descr, fortran_order and shape, each once; descr a string; fortran_order True or
/// False; shape a tuple of non-negative decimal integers that fit in int64. Throws Error whose
/// message starts with `file` and says what is wrong.
NpyHeader parse_npy_header(std::string_view text, const std::string& file);

/// The dictionary text NumPy 1.24 writes for this header, including its spare spaces for growing
/// the first axis, without the alignment padding and final newline.
std::string format_npy_header(const NpyHeader& h);

}  // namespace stag::rt
