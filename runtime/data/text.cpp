// Text corpora, the byte vocabulary and language-model sequences.
#include "runtime/data/text.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "runtime/data/gzip.h"
#include "runtime/error.h"
#include "runtime/io.h"

namespace stag::rt {

namespace fs = std::filesystem;

std::vector<fs::path> text_corpus_files(const fs::path& path) {
  std::error_code ec;
  auto st = fs::status(path, ec);
  if (ec || !fs::exists(st))
    throw Error(fmt::format("{}: no such file or directory", path.string()));
  if (!fs::is_directory(st)) return {path};
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(path)) {
    std::string name = e.path().filename().string();
    if (e.is_symlink() || !e.is_regular_file() || name.starts_with(".") || name.ends_with(".dat"))
      continue;
    files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw Error(fmt::format("{}: no text files in the directory", path.string()));
  return files;
}

std::string read_text_corpus(const fs::path& path) {
  std::string text;
  for (const auto& f : text_corpus_files(path)) {
    auto b = read_file_bytes(f);
    text.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  if (text.empty()) throw Error(fmt::format("{}: the text is empty", path.string()));
  return text;
}

Vocabulary::Vocabulary(std::vector<uint8_t> symbols) : symbols_(std::move(symbols)) {
  std::sort(symbols_.begin(), symbols_.end());
  if (std::adjacent_find(symbols_.begin(), symbols_.end()) != symbols_.end())
    throw Error("Vocabulary: duplicate symbols");
  reindex();
}

void Vocabulary::reindex() {
  std::fill(std::begin(index_), std::end(index_), int16_t{-1});
  for (size_t i = 0; i < symbols_.size(); ++i) index_[symbols_[i]] = static_cast<int16_t>(i);
}

Vocabulary Vocabulary::build(std::string_view text) {
  bool seen[256] = {};
  for (char c : text) seen[static_cast<uint8_t>(c)] = true;
  std::vector<uint8_t> s;
  for (int i = 0; i < 256; ++i)
    if (seen[i]) s.push_back(static_cast<uint8_t>(i));
  return Vocabulary(std::move(s));
}

int64_t Vocabulary::id(uint8_t c) const {
  if (index_[c] < 0)
    throw Error(fmt::format("byte 0x{:02x} is not in the vocabulary of {} symbols", c, size()));
  return index_[c];
}

std::vector<int64_t> Vocabulary::encode(std::string_view text) const {
  std::vector<int64_t> out(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<uint8_t>(text[i]);
    if (index_[c] < 0)
      throw Error(fmt::format("byte 0x{:02x} at offset {} is not in the vocabulary of {} symbols",
                              c, i, size()));
    out[i] = index_[c];
  }
  return out;
}

std::string Vocabulary::decode(std::span<const int64_t> ids) const {
  std::string out;
  out.reserve(ids.size());
  for (int64_t id : ids) {
    if (id < 0 || id >= size())
      throw Error(
          fmt::format("token id {} out of range for a vocabulary of {} symbols", id, size()));
    out.push_back(static_cast<char>(symbols_[id]));
  }
  return out;
}

static constexpr std::string_view kVocabMagic = "stag-vocabulary bytes 1";

void Vocabulary::save(const fs::path& path) const {
  std::string s = fmt::format("{}\n", kVocabMagic);
  for (uint8_t c : symbols_) s += fmt::format("{}\n", c);
  AtomicFileWriter out(path);
  out.write(s);
  out.commit();
}

Vocabulary Vocabulary::load(const fs::path& path) {
  auto b = read_file_bytes(path);
  std::string_view text(reinterpret_cast<const char*>(b.data()), b.size());
  std::string name = path.string();
  std::vector<uint8_t> syms;
  size_t pos = 0;
  int line = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos)
      throw Error(fmt::format("{}:{}: vocabulary file does not end in a newline", name, line + 1));
    std::string_view l = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line;
    if (line == 1) {
      if (l != kVocabMagic)
        throw Error(fmt::format("{}:1: not a stag vocabulary (expected '{}')", name, kVocabMagic));
      continue;
    }
    unsigned v = 0;
    auto [end, ec] = std::from_chars(l.data(), l.data() + l.size(), v);
    if (l.empty() || ec != std::errc() || end != l.data() + l.size() || v > 255)
      throw Error(fmt::format("{}:{}: '{}' is not a byte value 0..255", name, line, l));
    if (!syms.empty() && v <= syms.back())
      throw Error(fmt::format("{}:{}: byte values must be strictly increasing", name, line));
    syms.push_back(static_cast<uint8_t>(v));
  }
  if (line == 0) throw Error(fmt::format("{}: empty vocabulary file", name));
  return Vocabulary(std::move(syms));
}

Dataset make_sequences(std::span<const int64_t> tokens, int64_t T, int64_t stride) {
  if (T < 1) throw Error(fmt::format("sequence length must be >= 1, got {}", T));
  if (stride == 0) stride = T;
  if (stride < 1) throw Error(fmt::format("sequence stride must be >= 1, got {}", stride));
  auto n = static_cast<int64_t>(tokens.size());
  // Window i needs tokens up to i*stride + T inclusive (the last target).
  int64_t m = n < T + 1 ? 0 : (n - T - 1) / stride + 1;
  Tensor x = Tensor::uninitialized(DType::i64, {m, T});
  Tensor y = Tensor::uninitialized(DType::i64, {m, T});
  auto xv = x.values<int64_t>();
  auto yv = y.values<int64_t>();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t t = 0; t < T; ++t) {
      xv[i * T + t] = tokens[i * stride + t];
      yv[i * T + t] = tokens[i * stride + t + 1];
    }
  return {std::move(x), std::move(y)};
}

CharTable CharTable::build(std::string_view text, int64_t vocab) {
  std::array<int64_t, 256> count{};
  for (unsigned char c : text) ++count[c];
  CharTable t;
  t.vocab = vocab;
  for (int b = 0; b < 256; ++b)
    if (count[b] > 0) t.bytes.push_back(static_cast<uint8_t>(b));
  if (static_cast<int64_t>(t.bytes.size()) > vocab) {
    std::stable_sort(t.bytes.begin(), t.bytes.end(), [&](uint8_t a, uint8_t b) { return count[a] > count[b]; });
    t.bytes.resize(static_cast<size_t>(vocab - 1));
    std::sort(t.bytes.begin(), t.bytes.end());
    t.other = vocab - 1;
  }
  t.reindex();
  return t;
}

void CharTable::reindex() {
  index_.fill(-1);
  for (size_t i = 0; i < bytes.size(); ++i) index_[bytes[i]] = static_cast<int16_t>(i);
}

std::optional<int64_t> CharTable::id(uint8_t c) const {
  if (index_[c] >= 0) return index_[c];
  if (other >= 0) return other;
  return std::nullopt;
}

std::vector<int64_t> CharTable::encode(std::string_view text) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  // A byte the table lacks cannot occur in the text it was built from; vocab-1 keeps ids in range.
  for (unsigned char c : text) ids.push_back(id(c).value_or(vocab - 1));
  return ids;
}

StateMap CharTable::save() const {
  std::vector<int> values(bytes.begin(), bytes.end());
  return {{"vocab.size", std::to_string(vocab)}, {"vocab.bytes", fmt::format("{}", fmt::join(values, " "))},
          {"vocab.other", std::to_string(other)}};
}

std::optional<CharTable> CharTable::restore(const StateMap& state) {
  if (!state.count("vocab.bytes")) return std::nullopt;
  CharTable t;
  t.vocab = parse_int(state_get(state, "vocab.size"), "vocab.size");
  t.other = parse_int(state_get(state, "vocab.other"), "vocab.other");
  const std::string& text = state.at("vocab.bytes");
  for (size_t i = 0; i < text.size();) {
    size_t end = std::min(text.find(' ', i), text.size());
    int64_t b = parse_int(text.substr(i, end - i), "vocab.bytes");
    if (b < 0 || b > 255) throw Error(fmt::format("saved state 'vocab.bytes': {} is not a byte", b));
    t.bytes.push_back(static_cast<uint8_t>(b));
    i = end + 1;
  }
  if (static_cast<int64_t>(t.bytes.size()) > t.vocab || t.other >= t.vocab)
    throw Error(fmt::format("saved state 'vocab.bytes': {} symbols for a vocabulary of {}", t.bytes.size(), t.vocab));
  t.reindex();
  return t;
}

double bigram_loss(const Dataset& d, std::span<const int64_t> train, std::span<const int64_t> validation,
                   int64_t vocab) {
  auto x = d.features.values<int64_t>(), y = d.labels.values<int64_t>();
  int64_t T = d.features.shape()[1];
  auto v = static_cast<size_t>(vocab);
  std::vector<double> pair(v * v, 0), row(v, 0);
  for (int64_t i : train)
    for (int64_t t = i * T; t < (i + 1) * T; ++t) {
      pair[static_cast<size_t>(x[t]) * v + static_cast<size_t>(y[t])] += 1;
      row[static_cast<size_t>(x[t])] += 1;
    }
  double nll = 0;
  int64_t n = 0;
  for (int64_t i : validation)
    for (int64_t t = i * T; t < (i + 1) * T; ++t, ++n) {
      auto a = static_cast<size_t>(x[t]), b = static_cast<size_t>(y[t]);
      nll -= std::log((pair[a * v + b] + 1) / (row[a] + static_cast<double>(vocab)));
    }
  return n ? nll / static_cast<double>(n) : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace stag::rt
