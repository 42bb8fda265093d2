// Exact number formatting and strict parsing for saved state.
#include "runtime/state_map.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <limits>

#include "runtime/error.h"

namespace stag::rt {

std::string format_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{}", v);  // fmt's default is the shortest round-trip form
}

double parse_double(const std::string& s, const std::string& key) {
  if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  if (s == "inf") return std::numeric_limits<double>::infinity();
  if (s == "-inf") return -std::numeric_limits<double>::infinity();
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size())
    throw Error(fmt::format("saved state '{}': '{}' is not a number", key, s));
  return v;
}

template <class T>
static T parse_integer(const std::string& s, const std::string& key) {
  T v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size())
    throw Error(fmt::format("saved state '{}': '{}' is not an integer", key, s));
  return v;
}

int64_t parse_int(const std::string& s, const std::string& key) {
  return parse_integer<int64_t>(s, key);
}
uint64_t parse_uint(const std::string& s, const std::string& key) {
  return parse_integer<uint64_t>(s, key);
}

std::string format_doubles(const std::vector<double>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ' ';
    out += format_double(v[i]);
  }
  return out;
}

std::vector<double> parse_doubles(const std::string& s, const std::string& key) {
  std::vector<double> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t sp = s.find(' ', pos);
    out.push_back(parse_double(s.substr(pos, sp == std::string::npos ? sp : sp - pos), key));
    if (sp == std::string::npos) break;
    pos = sp + 1;
  }
  return out;
}

const std::string& state_get(const StateMap& m, const std::string& key) {
  auto it = m.find(key);
  if (it == m.end()) throw Error(fmt::format("missing saved state '{}'", key));
  return it->second;
}

}  // namespace stag::rt
