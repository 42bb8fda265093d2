#pragma once
/// Text for character-level language models: a corpus from a file or a directory, a byte
/// vocabulary, and (input, target) sequences.
///
/// "Characters" are bytes: the vocabulary is the sorted set of distinct bytes in the corpus. That
/// is exact for ASCII text, never fails on mixed encodings (the fortunes corpus has Latin-1 and
/// UTF-8 files), and a model that sees UTF-8 bytes learns to emit valid sequences anyway.

#include <array>
#include <cstdint>
#include <optional>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/data/dataset.h"
#include "runtime/state_map.h"

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

/// A character model's token table: id i is the byte bytes[i]. Built from the corpus for a model
/// with `vocab` ids: its distinct bytes when they fit, else the vocab-1 most frequent (ties by
/// value, kept in byte order) and one id, `other`, shared by every remaining byte. It depends on
/// the text alone, and travels in checkpoints so that sampling needs no corpus.
struct CharTable {
  std::vector<uint8_t> bytes;
  int64_t other = -1;  ///< the shared id of the rarest bytes; -1 when every byte has its own
  int64_t vocab = 0;   ///< the model's vocabulary size

  static CharTable build(std::string_view text, int64_t vocab);
  /// The id of byte c: its own, else `other`, else none.
  std::optional<int64_t> id(uint8_t c) const;
  /// Token ids for training: bytes without an id of their own take `other`.
  std::vector<int64_t> encode(std::string_view text) const;
  /// The checkpoint metadata: "vocab.size", "vocab.bytes" (decimal byte values in id order),
  /// "vocab.other".
  StateMap save() const;
  /// The table saved in `state`; nullopt when it has none. Throws Error when malformed.
  static std::optional<CharTable> restore(const StateMap& state);

 private:
  std::array<int16_t, 256> index_ = {};
  void reindex();
};

/// The mean validation loss (nats per token) of a character bigram model counted on the training
/// examples' (input, next) pairs with add-one (Laplace) smoothing: P(b | a) = (n(a, b) + 1) /
/// (n(a) + vocab). The baseline a language model must beat. `d` holds make_sequences' examples.
double bigram_loss(const Dataset& d, std::span<const int64_t> train, std::span<const int64_t> validation,
                   int64_t vocab);

}  // namespace stag::rt
