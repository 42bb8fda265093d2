#pragma once
/// Text for character-level language models: a corpus from a file or a directory, a byte
/// vocabulary, and (input, target) sequences.
///
/// "Characters" are bytes: the vocabulary is the sorted set of distinct bytes in the corpus. That
/// is exact for ASCII text, never fails on mixed encodings (the fortunes corpus has Latin-1 and
/// UTF-8 files), and a model that sees UTF-8 bytes learns to emit valid sequences anyway.

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/data/dataset.h"

namespace stag::rt {

/// Where the Debian package `fortunes` installs its corpus.
inline constexpr const char* kFortunesDir = "/usr/share/games/fortunes";

/// The text of a file, or of every regular file in a directory (not recursive) concatenated in
/// byte order of their names. Skipped in a directory: symbolic links (fortunes' `*.u8` names are
/// links to files already read; following them would count the text twice), names starting with
/// '.', and `*.dat` files (fortune's binary indexes). Throws Error when the path is missing or
/// nothing is left.
std::string read_text_corpus(const std::filesystem::path& path);

/// The files read_text_corpus would read, in order.
std::vector<std::filesystem::path> text_corpus_files(const std::filesystem::path& path);

/// Sorted distinct bytes; token id i is symbols[i].
class Vocabulary {
 public:
  Vocabulary() { reindex(); }
  /// From explicit symbols; they must be distinct (they are sorted here).
  explicit Vocabulary(std::vector<uint8_t> symbols);
  /// The distinct bytes of `text`.
  static Vocabulary build(std::string_view text);

  int64_t size() const { return static_cast<int64_t>(symbols_.size()); }
  const std::vector<uint8_t>& symbols() const { return symbols_; }
  /// The id of byte c; throws Error when it is not in the vocabulary.
  int64_t id(uint8_t c) const;
  bool contains(uint8_t c) const { return index_[c] >= 0; }
  /// Token ids of `text`; throws Error naming the first byte (and its offset) not in the
  /// vocabulary.
  std::vector<int64_t> encode(std::string_view text) const;
  /// The text of token ids; throws Error for an id out of range.
  std::string decode(std::span<const int64_t> ids) const;

  /// Saves as text: the line "stag-vocabulary bytes 1", then the byte values in decimal, one a
  /// line. Written atomically; the training run saves it and evaluation loads it, so both map
  /// bytes to the same ids whatever text they read.
  void save(const std::filesystem::path& path) const;
  /// Loads a saved vocabulary; throws Error naming the file and line for anything malformed.
  static Vocabulary load(const std::filesystem::path& path);

  bool operator==(const Vocabulary& o) const { return symbols_ == o.symbols_; }

 private:
  std::vector<uint8_t> symbols_;
  int16_t index_[256] = {};
  void reindex();
};

/// Language-model examples from a token stream: example i has inputs
/// tokens[i*stride, i*stride + T) and targets tokens[i*stride + 1, i*stride + T + 1) (the next
/// token at each position). features and labels are both i64 [M, T], M = number of full windows
/// (the tail that does not fill one is dropped). stride defaults to T (no overlap).
Dataset make_sequences(std::span<const int64_t> tokens, int64_t T, int64_t stride = 0);

}  // namespace stag::rt
