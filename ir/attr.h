#pragma once
/// Attribute values of ops and graphs, their kinds, and their canonical text form.

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "ir/types.h"

namespace stag {

/// The order matches Attr's alternatives, so `Attr::index()` is the kind.
enum class AttrKind : uint8_t { Int, Float, Bool, Str, Ints, Floats, DTypeK };

using Ints = std::vector<int64_t>;
using Floats = std::vector<double>;
using Attr = std::variant<int64_t, double, bool, std::string, Ints, Floats, DType>;

inline AttrKind kind_of(const Attr& a) { return static_cast<AttrKind>(a.index()); }
std::string_view kind_name(AttrKind k);

/// Canonical text of a value: ints as `3`, floats always with a `.`, `e`, `inf` or `nan`
/// (`1.0`, `1e-05`), strings quoted with escapes, lists as `[a, b]`, dtypes bare (`f32`).
/// Floats print in the shortest form that reads back to the same double.
std::string to_string(const Attr& a);
std::string format_float(double v);

/// Converts a parsed literal to the kind a schema wants (an int literal where a float is wanted,
/// an int list where a float list is wanted, an empty list of either kind). Returns false when
/// the literal cannot be that kind.
bool coerce(Attr& a, AttrKind want);

/// transpose's `perm` that moves axis `from` of a rank-`rank` tensor to position `to`, the
/// other axes keeping their order.
Ints move_axis(size_t rank, size_t from, size_t to);

/// An ordered list of named attributes; the order is kept for printing.
using NamedAttrs = std::vector<std::pair<std::string, Attr>>;

}  // namespace stag
