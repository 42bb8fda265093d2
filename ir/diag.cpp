#include "ir/diag.h"

#include <fmt/format.h>

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

std::string Diagnostics::render(const Diagnostic& d) const {
  std::string head = d.loc.known() ? to_string(d.loc) : (d.where.empty() ? "stag" : d.where);
  std::string out = fmt::format("{}: {}: {}\n", head, d.severity == Severity::Error ? "error" : "note",
                                d.message);
  auto src = d.loc.known() ? sources_.find(d.loc.file) : sources_.end();
  if (src == sources_.end()) return out;
  auto text = line_of(*src->second, d.loc.line);
  if (!text || text->size() > 400) return out;  // a line too long to quote helps nobody
  // Keep the caret aligned: tabs stay tabs, every other byte before the column becomes a space;
  // bytes that would garble a terminal are shown as '?'.
  std::string line, caret;
  for (size_t i = 0; i < text->size(); ++i) {
    unsigned char c = (*text)[i];
    bool printable = c == '\t' || (c >= 0x20 && c != 0x7f);
    line += printable ? static_cast<char>(c) : '?';
    if (static_cast<int>(i) + 1 < d.loc.col) caret += c == '\t' ? '\t' : ' ';
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
