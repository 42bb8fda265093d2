#pragma once
/// Source locations and user-facing diagnostics (`file:line:col: error: ...` with a caret).

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace stag {

/// A position in a source file; line and column count from 1. Line 0 means unknown.
struct Loc {
  std::string file;
  int line = 0;
  int col = 0;
  /// The layer instance whose call made the node (`h.0.attn`); empty at the model's own level.
  std::string scope = {};

  bool known() const { return line > 0; }
  bool operator==(const Loc&) const = default;
};

/// `file:line:col`.
std::string to_string(const Loc& loc);

enum class Severity { Error, Note };

struct Diagnostic {
  Severity severity = Severity::Error;
  Loc loc;
  /// Used in place of the location when it is unknown, e.g. `%conv1.out` for an IR node.
  std::string where;
  std::string message;
};

/// Collects the diagnostics of one run. User errors are reported here, never thrown or
/// asserted, so that one run reports several of them. Source texts registered with
/// `add_source` let the rendering quote the offending line with a caret under the column.
class Diagnostics {
 public:
  /// Collecting stops after this many errors; one more is reported as "too many errors".
  static constexpr size_t kMaxErrors = 50;

  void add_source(const std::string& file, std::string text);
  void error(const Loc& loc, std::string message, std::string where = {});
  void note(const Loc& loc, std::string message, std::string where = {});

  bool has_errors() const { return errors_ > 0; }
  size_t error_count() const { return errors_; }
  const std::vector<Diagnostic>& all() const { return diags_; }

  /// Every diagnostic, one block each, in the order reported.
  std::string render() const;
  std::string render(const Diagnostic& d) const;

 private:
  std::vector<Diagnostic> diags_;
  std::map<std::string, std::shared_ptr<const std::string>> sources_;
  size_t errors_ = 0;
  bool truncated_ = false;
};

}  // namespace stag
