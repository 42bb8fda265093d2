#pragma once
/// CSV tables of numbers: every column a number, one of them the integer class label.
///
/// Fields are separated by a delimiter (',' by default) and trimmed of spaces and tabs; lines end
/// in \n or \r\n; blank lines are skipped. Quoted fields are not supported (a numeric table has no
/// use for them): a quote makes the field "not a number". Numbers are parsed with std::from_chars
/// (locale-independent), "nan"/"inf" included; a label must be an integer value >= 0. Errors name
/// file:line and the column.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "runtime/data/dataset.h"

namespace stag::rt {

struct CsvOptions {
  /// Whether the first non-blank line names the columns.
  bool header = true;
  /// The label column by header name; when empty, `label_index` is used.
  std::string label_name;
  /// The label column by 0-based index; negative counts from the end (-1: the last column).
  int64_t label_index = -1;
  char delimiter = ',';
};

/// Features f32 [N, columns-1] (the other columns in file order) and labels i64 [N].
Dataset load_csv(const std::filesystem::path& path, const CsvOptions& options = {});
/// The same from text in memory; messages name `name`.
Dataset parse_csv(std::string_view text, const std::string& name, const CsvOptions& options = {});

}  // namespace stag::rt
