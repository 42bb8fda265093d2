// CSV parsing into a numeric data set, with file:line errors.
#include "runtime/data/csv.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <vector>

#include "runtime/data/gzip.h"

namespace stag::rt {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split(std::string_view line, char delim) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t at = line.find(delim, start);
    out.push_back(trim(line.substr(start, at == std::string_view::npos ? at : at - start)));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

}  // namespace

Dataset parse_csv(std::string_view text, const std::string& name, const CsvOptions& opt) {
  std::vector<std::string> header;
  std::vector<float> features;
  std::vector<int64_t> labels;
  int64_t ncols = -1, label_col = -1, line_no = 0;
  auto resolve_label = [&](int64_t line) {
    if (!opt.label_name.empty()) {
      if (header.empty())
        throw Error(fmt::format("{}: label column '{}' named but the file has no header row", name,
                                opt.label_name));
      for (size_t i = 0; i < header.size(); ++i)
        if (header[i] == opt.label_name) return static_cast<int64_t>(i);
      throw Error(
          fmt::format("{}:{}: no column named '{}' in the header", name, line, opt.label_name));
    }
    int64_t i = opt.label_index < 0 ? ncols + opt.label_index : opt.label_index;
    if (i < 0 || i >= ncols)
      throw Error(fmt::format("{}:{}: label column {} out of range for {} columns", name, line,
                              opt.label_index, ncols));
    return i;
  };
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trim(line).empty()) continue;
    auto fields = split(line, opt.delimiter);
    if (ncols < 0) {
      ncols = static_cast<int64_t>(fields.size());
      if (ncols < 2)
        throw Error(
            fmt::format("{}:{}: a data set needs at least 2 columns (features and a "
                        "label), found {}",
                        name, line_no, ncols));
      if (opt.header) {
        for (auto f : fields) header.emplace_back(f);
        label_col = resolve_label(line_no);
        continue;
      }
      label_col = resolve_label(line_no);
    }
    if (static_cast<int64_t>(fields.size()) != ncols)
      throw Error(fmt::format("{}:{}: {} fields, expected {} like the first row", name, line_no,
                              fields.size(), ncols));
    for (int64_t c = 0; c < ncols; ++c) {
      std::string_view f = fields[c];
      double v = 0;
      auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), v);
      if (f.empty() || ec != std::errc() || end != f.data() + f.size())
        throw Error(fmt::format("{}:{}: column {}{}: '{}' is not a number", name, line_no, c + 1,
                                header.empty() ? "" : fmt::format(" ({})", header[c]), f));
      if (c == label_col) {
        if (!(v >= 0) || v != std::floor(v) || v > 9.0e15)
          throw Error(
              fmt::format("{}:{}: label '{}' is not a non-negative integer", name, line_no, f));
        labels.push_back(static_cast<int64_t>(v));
      } else {
        features.push_back(static_cast<float>(v));
      }
    }
  }
  if (ncols < 0) throw Error(fmt::format("{}: empty CSV file", name));
  int64_t n = static_cast<int64_t>(labels.size());
  return {Tensor::from<float>({n, ncols - 1}, features), Tensor::from<int64_t>({n}, labels)};
}

Dataset load_csv(const std::filesystem::path& path, const CsvOptions& options) {
  auto bytes = read_maybe_gzip(path);
  return parse_csv(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                   path.string(), options);
}

}  // namespace stag::rt
