#include "ir/diag.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

namespace stag {

std::string to_string(const Loc& loc) {
  return fmt::format("{}:{}:{}", loc.file.empty() ? "<input>" : loc.file, loc.line, loc.col);
}

void Diagnostics::add_source(const std::string& file, std::string text) {
  sources_[file] = std::make_shared<const std::string>(std::move(text));
}

void Diagnostics::error(const Loc& loc, std::string message, std::string where) {
  if (errors_ >= kMaxErrors) {
    if (!truncated_) {
      Diagnostic d;
      d.where = "stag";
      d.message = "too many errors; stopping";
      diags_.push_back(std::move(d));
    }
    truncated_ = true;
    return;
  }
  ++errors_;
  diags_.push_back({Severity::Error, loc, std::move(where), std::move(message)});
}

void Diagnostics::note(const Loc& loc, std::string message, std::string where) {
  if (truncated_) return;
  diags_.push_back({Severity::Note, loc, std::move(where), std::move(message)});
}

// The text of line `line` (1-based) of `src`, or nullopt past the end.
static std::optional<std::string_view> line_of(const std::string& src, int line) {
  size_t pos = 0;
  for (int i = 1; i < line; ++i) {
    pos = src.find('\n', pos);
    if (pos == std::string::npos) return std::nullopt;
    ++pos;
  }
  size_t end = src.find('\n', pos);
  return std::string_view(src).substr(pos, end == std::string::npos ? std::string::npos : end - pos);
}

// Length of the UTF-8 sequence starting at `i` (1 for ASCII), or 0 when it is not valid UTF-8.
static size_t utf8_length(std::string_view s, size_t i) {
  unsigned char c = s[i];
  size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 0;
  return n;
}

std::string Diagnostics::render(const Diagnostic& d) const {
  std::string head = d.loc.known() ? to_string(d.loc) : (d.where.empty() ? "stag" : d.where);
  std::string out = fmt::format("{}: {}: {}\n", head, d.severity == Severity::Error ? "error" : "note",
                                d.message);
  auto src = d.loc.known() ? sources_.find(d.loc.file) : sources_.end();
  if (src == sources_.end()) return out;
  auto text = line_of(*src->second, d.loc.line);
  if (!text || text->size() > 400) return out;  // a line too long to quote helps nobody
  // Keep the caret aligned: tabs stay tabs, every other character before the column becomes a
  // space (one for a whole UTF-8 sequence); bytes that would garble a terminal (controls, bytes
  // that are not UTF-8) are shown as '?'.
  std::string line, caret;
  for (size_t i = 0; i < text->size();) {
    unsigned char c = (*text)[i];
    size_t n = utf8_length(*text, i);
    bool printable = c == '\t' || (c >= 0x20 && c != 0x7f && n > 0);
    line += printable ? std::string(text->substr(i, std::max<size_t>(n, 1))) : "?";
    if (static_cast<int>(i) + 1 < d.loc.col) caret += c == '\t' ? '\t' : ' ';
    i += std::max<size_t>(n, 1);
  }
  std::string gutter = fmt::format("{:>5} | ", d.loc.line);
  out += gutter + line + "\n";
  out += std::string(gutter.size() - 2, ' ') + "| " + caret + "^\n";
  return out;
}

std::string Diagnostics::render() const {
  std::string out;
  for (const auto& d : diags_) out += render(d);
  return out;
}

}  // namespace stag
