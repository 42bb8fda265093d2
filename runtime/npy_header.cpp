// Strict parser and NumPy-compatible formatter for the .npy header dictionary.
#include "runtime/npy_header.h"

#include <fmt/format.h>

#include <cctype>
#include <optional>

#include "runtime/checked.h"

namespace stag::rt {

namespace {

class Parser {
 public:
  Parser(std::string_view text, const std::string& file) : s_(text), file_(file) {}

  NpyHeader parse() {
    NpyHeader h;
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip_ws();
    expect('{', "the header to start with '{'");
    skip_ws();
    while (peek() != '}') {
      size_t key_at = pos_;
      std::string key = parse_string("a quoted key");
      skip_ws();
      expect(':', "':' after a key");
      skip_ws();
      auto once = [&](bool& seen) {
        if (seen) fail_at(key_at, fmt::format("duplicate key '{}'", key));
        seen = true;
      };
      if (key == "descr") {
        once(have_descr);
        if (peek() == '[' || peek() == '{')
          fail("descr is not a simple dtype string: structured (record) dtypes are not supported");
        h.descr = parse_string("descr to be a quoted dtype string");
      } else if (key == "fortran_order") {
        once(have_fortran);
        h.fortran_order = parse_bool();
      } else if (key == "shape") {
        once(have_shape);
        h.shape = parse_shape();
      } else {
        fail_at(key_at, fmt::format("unexpected key '{}' (a .npy header has exactly descr, "
                                    "fortran_order and shape)", key));
      }
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        skip_ws();
      } else if (peek() != '}') {
        fail("expected ',' or '}' after a value");
      }
    }
    ++pos_;
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected text after the header dictionary");
    if (!have_descr) fail("missing key 'descr'");
    if (!have_fortran) fail("missing key 'fortran_order'");
    if (!have_shape) fail("missing key 'shape'");
    return h;
  }

 private:
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool at_end() const { return pos_ >= s_.size(); }

  [[noreturn]] void fail_at(size_t at, const std::string& what) const {
    throw Error(fmt::format("{}: invalid .npy header: {} (at offset {} of the header)", file_, what,
                            at));
  }
  [[noreturn]] void fail(const std::string& what) const { fail_at(pos_, what); }

  void skip_ws() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r' ||
                         peek() == '\f'))
      ++pos_;
  }

  void expect(char c, const char* what) {
    if (at_end() || peek() != c) fail(fmt::format("expected {}", what));
    ++pos_;
  }

  std::string parse_string(const char* what) {
    char q = peek();
    if (q != '\'' && q != '"') fail(fmt::format("expected {}", what));
    size_t start = ++pos_;
    while (!at_end() && peek() != q) {
      // Escapes never occur in what NumPy writes for the dtypes the runtime reads.
      if (peek() == '\\') fail("escape sequences in strings are not supported");
      if (peek() == '\n') fail("unterminated string");
      ++pos_;
    }
    if (at_end()) fail("unterminated string");
    std::string out(s_.substr(start, pos_ - start));
    ++pos_;
    return out;
  }

  bool parse_bool() {
    if (s_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (s_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    fail("fortran_order must be True or False");
  }

  int64_t parse_dim() {
    size_t start = pos_;
    if (peek() == '-') fail("negative dimension in shape");
    if (peek() < '0' || peek() > '9') fail("expected a non-negative integer in shape");
    int64_t v = 0;
    while (peek() >= '0' && peek() <= '9') {
      auto m = checked_mul(v, 10);
      auto a = m ? checked_add(*m, peek() - '0') : std::nullopt;
      if (!a) fail_at(start, "dimension in shape does not fit in int64");
      v = *a;
      ++pos_;
    }
    // Python 3 rejects leading zeros ("05"); so do we.
    if (pos_ - start > 1 && s_[start] == '0') fail_at(start, "dimension with a leading zero");
    if (std::isalpha(static_cast<unsigned char>(peek())) || peek() == '_' || peek() == '.')
      fail("expected a plain decimal integer in shape");
    return v;
  }

  Shape parse_shape() {
    if (peek() != '(') fail("shape must be a tuple, e.g. (2, 3), (5,) or ()");
    ++pos_;
    skip_ws();
    Shape shape;
    if (peek() == ')') {
      ++pos_;
      return shape;
    }
    bool comma_after_last = false;
    while (true) {
      if (shape.size() >= kMaxRank)
        fail(fmt::format("shape has more than {} dimensions", kMaxRank));
      shape.push_back(parse_dim());
      skip_ws();
      comma_after_last = false;
      if (peek() == ',') {
        ++pos_;
        comma_after_last = true;
        skip_ws();
      }
      if (peek() == ')') break;
      if (!comma_after_last) fail("expected ',' or ')' in shape");
    }
    // In Python "(5)" is the integer 5, not a tuple.
    if (shape.size() == 1 && !comma_after_last) fail("shape (n) is not a tuple; write (n,)");
    ++pos_;
    return shape;
  }

  std::string_view s_;
  const std::string& file_;
  size_t pos_ = 0;
};

}  // namespace

NpyHeader parse_npy_header(std::string_view text, const std::string& file) {
  return Parser(text, file).parse();
}

std::string format_npy_header(const NpyHeader& h) {
  // Python's repr of a tuple: "()", "(5,)", "(2, 3)".
  std::string shape;
  if (h.shape.size() == 1)
    shape = fmt::format("({},)", h.shape[0]);
  else
    shape = fmt::format("({})", fmt::join(h.shape, ", "));
  std::string out = fmt::format("{{'descr': '{}', 'fortran_order': {}, 'shape': {}, }}", h.descr,
                                h.fortran_order ? "True" : "False", shape);
  // NumPy leaves room for the growing axis's digits so the header can be rewritten in place.
  if (!h.shape.empty()) {
    constexpr size_t kGrowthAxisMaxDigits = 21;
    size_t digits = std::to_string(h.shape[h.fortran_order ? h.shape.size() - 1 : 0]).size();
    if (digits < kGrowthAxisMaxDigits) out.append(kGrowthAxisMaxDigits - digits, ' ');
  }
  return out;
}

}  // namespace stag::rt
