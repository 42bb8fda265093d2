// Labelled texts for classifiers: the fortunes' topics, text CSV files, the fixed split and the
// word table.
#include "runtime/data/topics.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "runtime/data/text.h"
#include "runtime/error.h"
#include "runtime/data/gzip.h"
#include "runtime/io.h"

namespace stag::rt {

namespace fs = std::filesystem;

namespace {

std::string_view trim_blank_lines(std::string_view s) {
  while (!s.empty() && (s.front() == '\n' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.remove_suffix(1);
  return s;
}

std::string file_text(const fs::path& f) {
  auto b = read_file_bytes(f);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// Class ids for names: sorted, so that they do not depend on the order rows come in.
std::vector<int64_t> number_classes(const std::vector<std::string>& names, std::vector<std::string>& classes) {
  std::map<std::string, int64_t> ids;
  for (const auto& n : names) ids[n] = 0;
  for (auto& [name, id] : ids) {
    id = static_cast<int64_t>(classes.size());
    classes.push_back(name);
  }
  std::vector<int64_t> labels;
  for (const auto& n : names) labels.push_back(ids[n]);
  return labels;
}

}  // namespace

std::vector<std::string> split_fortunes(std::string_view text) {
  std::vector<std::string> out;
  size_t entry = 0;
  for (size_t pos = 0; pos <= text.size();) {
    size_t nl = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, nl - pos);
    bool separator = line == "%" || line == "%\r";
    if (separator || nl == text.size()) {
      std::string_view e = trim_blank_lines(text.substr(entry, (separator ? pos : nl) - entry));
      if (!e.empty()) out.emplace_back(e);
      entry = nl + 1;
    }
    pos = nl + 1;
  }
  return out;
}

LabeledTexts read_fortune_topics(const fs::path& dir, int64_t min_entries) {
  LabeledTexts d;
  for (const auto& f : text_corpus_files(dir)) {
    auto entries = split_fortunes(file_text(f));
    if (static_cast<int64_t>(entries.size()) < min_entries) continue;
    auto label = static_cast<int64_t>(d.classes.size());
    d.classes.push_back(f.filename().string());
    for (auto& e : entries) {
      d.texts.push_back(std::move(e));
      d.labels.push_back(label);
    }
  }
  if (d.classes.size() < 2)
    throw Error(fmt::format("{}: fewer than two files with {} fortunes or more", dir.string(), min_entries));
  return d;
}

Part part_of(std::string_view text) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  switch (h % 10) {
    case 0: return Part::test;
    case 1: return Part::validation;
    default: return Part::train;
  }
}

std::vector<std::string> words_of(std::string_view text) {
  std::vector<std::string> words;
  std::string w;
  for (unsigned char c : text) {
    bool part = std::isalnum(c) || c == '\'' || c >= 128;
    if (part) w.push_back(static_cast<char>(c >= 128 ? c : std::tolower(c)));
    if (!part && !w.empty()) words.push_back(std::exchange(w, {}));
  }
  if (!w.empty()) words.push_back(std::move(w));
  return words;
}

void WordTable::add(std::string word) {
  index_.emplace(word, static_cast<int64_t>(words_.size()) + 3);
  words_.push_back(std::move(word));
}

WordTable WordTable::build(const std::vector<std::string>& texts, const std::vector<int64_t>& indices, int64_t vocab) {
  if (vocab < 4) throw Error(fmt::format("a word table needs a vocabulary of at least 4 ids, got {}", vocab));
  std::map<std::string, int64_t> count;
  for (int64_t i : indices)
    for (auto& w : words_of(texts[static_cast<size_t>(i)])) ++count[w];
  std::vector<std::pair<std::string, int64_t>> byfreq(count.begin(), count.end());
  // Stable on the map's alphabetical order, so ties stay alphabetical.
  std::stable_sort(byfreq.begin(), byfreq.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  WordTable t;
  t.vocab_ = vocab;
  for (size_t i = 0; i < byfreq.size() && static_cast<int64_t>(i) < vocab - 3; ++i) t.add(byfreq[i].first);
  return t;
}

std::vector<int64_t> WordTable::encode(std::string_view text, int64_t T) const {
  std::vector<int64_t> ids{kCls};
  for (auto& w : words_of(text)) {
    if (static_cast<int64_t>(ids.size()) == T) break;
    auto it = index_.find(w);
    ids.push_back(it == index_.end() ? kUnknown : it->second);
  }
  ids.resize(static_cast<size_t>(T), kPad);
  return ids;
}

StateMap WordTable::save() const {
  return {{"tokenizer", fmt::format("words:{}", vocab_)}, {"tokenizer.words", fmt::format("{}", fmt::join(words_, " "))}};
}

WordTable WordTable::restore(const StateMap& state) {
  if (!state.count("tokenizer") || !state.at("tokenizer").starts_with("words:"))
    throw Error("the checkpoint has no word tokenizer (tokenizer = \"words:N\"); it was not written by stag train of a text classifier");
  WordTable t;
  t.vocab_ = parse_int(state.at("tokenizer").substr(6), "tokenizer");
  const std::string& words = state_get(state, "tokenizer.words");
  for (size_t i = 0; i < words.size();) {
    size_t end = std::min(words.find(' ', i), words.size());
    t.add(words.substr(i, end - i));
    i = end + 1;
  }
  if (static_cast<int64_t>(t.words_.size()) + 3 > t.vocab_)
    throw Error(fmt::format("saved state 'tokenizer.words': {} words for a vocabulary of {}", t.words_.size(), t.vocab_));
  return t;
}

}  // namespace stag::rt

namespace stag::rt {

namespace {

// One CSV record from `pos` (RFC 4180: "" is a quote inside quotes, which may hold newlines);
// `line` counts the newlines read.
std::vector<std::string> csv_record(std::string_view s, size_t& pos, int64_t& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (; pos < s.size(); ++pos) {
    char c = s[pos];
    if (quoted && c == '"' && pos + 1 < s.size() && s[pos + 1] == '"') fields.back() += s[++pos];
    else if (c == '"') quoted = !quoted;
    else if (!quoted && c == ',') fields.emplace_back();
    else if (!quoted && c == '\n') break;
    else if (c != '\r' || quoted) fields.back() += c;
    if (c == '\n') ++line;
  }
  ++pos;
  ++line;
  return fields;
}

int64_t column(const std::vector<std::string>& header, const char* want, const std::string& name) {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == want) return static_cast<int64_t>(i);
  throw Error(fmt::format("{}:1: the header names no '{}' column (it needs 'text' and 'label')", name, want));
}

// Only spaces, tabs and newlines: a text that tokenizes to nothing but [CLS].
bool blank(std::string_view s) { return s.find_first_not_of(" \t\r\n") == std::string_view::npos; }

}  // namespace

LabeledTexts parse_text_csv(std::string_view s, const std::string& name) {
  size_t pos = 0;
  int64_t line = 0;
  auto header = csv_record(s, pos, line);
  auto text_col = static_cast<size_t>(column(header, "text", name)), label_col = static_cast<size_t>(column(header, "label", name));
  LabeledTexts d;
  std::vector<std::string> names;
  while (pos < s.size()) {
    int64_t at = line + 1;
    auto r = csv_record(s, pos, line);
    if (r.size() == 1 && r[0].empty()) continue;  // a blank line
    if (r.size() <= std::max(text_col, label_col))
      throw Error(fmt::format("{}:{}: {} fields, the header has {}", name, at, r.size(), header.size()));
    if (blank(r[text_col])) throw Error(fmt::format("{}:{}: the row has no text", name, at));
    if (r[label_col].empty()) throw Error(fmt::format("{}:{}: the row has no label", name, at));
    d.texts.push_back(std::move(r[text_col]));
    names.push_back(std::move(r[label_col]));
  }
  if (d.texts.empty()) throw Error(fmt::format("{}: no rows after the header", name));
  d.labels = number_classes(names, d.classes);
  return d;
}

LabeledTexts read_text_csv(const fs::path& path) { return parse_text_csv(file_text(path), path.string()); }

}  // namespace stag::rt
