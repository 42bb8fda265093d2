#pragma once
/// Text classification data: labelled texts (the fortunes' topics, or a CSV file of text and
/// label), a split fixed by a hash of each text, and a word table that turns a text into the
/// fixed-length token ids a classifier's input [B, T] takes.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/state_map.h"
#include "runtime/tensor.h"

namespace stag::rt {

/// Texts with class ids; classes[id] names each class.
struct LabeledTexts {
  std::vector<std::string> texts;
  std::vector<int64_t> labels;
  std::vector<std::string> classes;
};

/// The entries of a fortune file: the text between lines holding only '%', trimmed of blank
/// lines at either end; empty entries are dropped.
std::vector<std::string> split_fortunes(std::string_view file_text);

/// Every fortune in `dir` labelled with its file's name (the topic), classes in name order. Files
/// as read_text_corpus reads them; a file with fewer than `min_entries` fortunes is left out
/// (fortunes' ascii-art, magic, pratchett and translate-me: too few to learn or score a topic).
LabeledTexts read_fortune_topics(const std::filesystem::path& dir, int64_t min_entries = 50);

/// A CSV file with a header row naming a `text` and a `label` column (any others are ignored);
/// fields may be quoted ("..." with "" for a quote, newlines allowed inside). Labels are class
/// names, numbered in sorted order. A row without text (empty or blanks only), without a label, or with too few fields
/// is an Error naming the file and line.
LabeledTexts read_text_csv(const std::filesystem::path& path);
/// The same from text in memory; messages name `name`.
LabeledTexts parse_text_csv(std::string_view text, const std::string& name);

/// Which part of the fixed split a text belongs to: by the FNV-1a hash of its bytes, 10% test,
/// 10% validation, 80% train. It depends on the text alone, so it never changes between runs,
/// machines or seeds, and a text found twice is never on both sides.
enum class Part { train, validation, test };
Part part_of(std::string_view text);

/// What turns a classifier's texts into ids: a word table or a subword model (subword.h).
class TextTokenizer {
 public:
  virtual ~TextTokenizer() = default;
  /// Ids below this.
  virtual int64_t vocab() const = 0;
  /// [CLS] (id 1), then the text's token ids, truncated or padded with 0 to T ids.
  virtual std::vector<int64_t> encode(std::string_view text, int64_t T) const = 0;
  /// The checkpoint metadata: "tokenizer" (its setting, e.g. "words:2048") and what it needs.
  virtual StateMap save() const = 0;
};

/// Word tokens for classifiers: ids 0 (padding), 1 ([CLS], first in every sequence, whose
/// encoding a BERT-style pooler reads), 2 (a word not in the table), then words by falling
/// frequency in the texts the table was built from (ties alphabetical). A word is a run of
/// letters, digits, apostrophes or non-ASCII bytes, lower-cased.
class WordTable : public TextTokenizer {
 public:
  static constexpr int64_t kPad = 0, kCls = 1, kUnknown = 2;
  /// The `vocab - 3` most frequent words of texts[i] for i in `indices`.
  static WordTable build(const std::vector<std::string>& texts, const std::vector<int64_t>& indices, int64_t vocab);
  int64_t vocab() const override { return vocab_; }
  /// [CLS], then the ids of the text's words, truncated or padded with kPad to T ids.
  std::vector<int64_t> encode(std::string_view text, int64_t T) const override;
  /// The checkpoint metadata: "tokenizer" = "words:VOCAB" and "tokenizer.words" (the words in id
  /// order from id 3, space-separated).
  StateMap save() const override;
  /// The table saved in `state`; throws Error when it has none or it is malformed.
  static WordTable restore(const StateMap& state);

 private:
  int64_t vocab_ = 3;
  std::vector<std::string> words_;
  std::unordered_map<std::string, int64_t> index_;
  void add(std::string word);
};

/// The words of a text as WordTable reads them.
std::vector<std::string> words_of(std::string_view text);

/// Token ids i64 [N, T] of the texts (encode(text, T) for each): a classifier's features.
template <class Tokenizer>
Tensor encode_texts(const Tokenizer& tok, const std::vector<std::string>& texts, int64_t T) {
  Tensor out = Tensor::uninitialized(DType::i64, {static_cast<int64_t>(texts.size()), T});
  auto v = out.values<int64_t>();
  for (size_t i = 0; i < texts.size(); ++i) {
    auto ids = tok.encode(texts[i], T);
    std::copy(ids.begin(), ids.end(), v.begin() + static_cast<ptrdiff_t>(i) * T);
  }
  return out;
}

}  // namespace stag::rt
