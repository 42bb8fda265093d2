#pragma once
/// Saved state as string maps (they go into checkpoint metadata, which is string to string):
/// exact round-trip formatting of numbers, and strict parsing with errors naming the key.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace stag::rt {

/// String-to-string state, as stored in safetensors metadata.
using StateMap = std::map<std::string, std::string>;

/// Shortest text that parses back to the same double ("inf", "-inf", "nan" for non-finite).
std::string format_double(double v);
/// Strict inverse of format_double; throws Error naming `key` for anything else.
double parse_double(const std::string& text, const std::string& key);
/// Strict decimal int64; throws Error naming `key`.
int64_t parse_int(const std::string& text, const std::string& key);
/// Strict decimal uint64 (seeds); throws Error naming `key`.
uint64_t parse_uint(const std::string& text, const std::string& key);
/// Space-separated format_double values.
std::string format_doubles(const std::vector<double>& v);
std::vector<double> parse_doubles(const std::string& text, const std::string& key);
/// The value at key; throws Error "missing saved state 'key'".
const std::string& state_get(const StateMap& m, const std::string& key);

}  // namespace stag::rt
