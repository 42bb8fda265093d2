#include "ir/attr.h"

#include <fmt/format.h>

#include <cmath>

namespace stag {

std::string_view kind_name(AttrKind k) {
  static constexpr std::string_view names[] = {"int",   "float",       "bool", "string",
                                               "ints",  "floats",      "dtype"};
  return names[static_cast<int>(k)];
}

std::string format_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  std::string s = fmt::format("{}", v);  // shortest round-trip form
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

static std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string to_string(const Attr& a) {
  struct Visitor {
    std::string operator()(int64_t v) const { return std::to_string(v); }
    std::string operator()(double v) const { return format_float(v); }
    std::string operator()(bool v) const { return v ? "true" : "false"; }
    std::string operator()(const std::string& v) const { return quote(v); }
    std::string operator()(const Ints& v) const { return fmt::format("[{}]", fmt::join(v, ", ")); }
    std::string operator()(const Floats& v) const {
      std::string s = "[";
      for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + format_float(v[i]);
      return s + "]";
    }
    std::string operator()(DType v) const { return std::string(dtype_name(v)); }
  };
  return std::visit(Visitor{}, a);
}

bool coerce(Attr& a, AttrKind want) {
  AttrKind have = kind_of(a);
  if (have == want) return true;
  if (want == AttrKind::Float && have == AttrKind::Int) {
    a = static_cast<double>(std::get<int64_t>(a));
    return true;
  }
  if (want == AttrKind::Floats && have == AttrKind::Ints) {
    const Ints& v = std::get<Ints>(a);
    a = Floats(v.begin(), v.end());
    return true;
  }
  // `[]` reads as an empty int list; it is also an empty float list.
  if (want == AttrKind::Ints && have == AttrKind::Floats && std::get<Floats>(a).empty()) {
    a = Ints{};
    return true;
  }
  return false;
}

Ints move_axis(size_t rank, size_t from, size_t to) {
  Ints perm;
  for (size_t i = 0; i < rank; ++i)
    if (i != from) perm.push_back(static_cast<int64_t>(i));
  perm.insert(perm.begin() + static_cast<long>(to), static_cast<int64_t>(from));
  return perm;
}

}  // namespace stag
