#pragma once
/// Subword tokens for classifiers: a SentencePiece unigram model (the library T5- and
/// LLaMA-style models use) trained on the training split, and the tokenizer settings
/// ("words:N", "sentencepiece:N") that choose between it and the word table.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/data/topics.h"

namespace stag::rt {

/// A unigram SentencePiece model whose ids are 0 padding, 1 [CLS] (SentencePiece's BOS), 2
/// unknown, then pieces. Trained on one thread from a seed, so the same texts and seed give the
/// same model, byte for byte.
class SubwordTable : public TextTokenizer {
 public:
  /// Trains on texts[i] for i in `indices` (newlines read as spaces). Throws Error when
  /// SentencePiece fails, e.g. when the texts cannot fill `vocab` pieces.
  static SubwordTable train(const std::vector<std::string>& texts, const std::vector<int64_t>& indices, int64_t vocab,
                            uint64_t seed);
  /// From a serialized model proto; throws Error when it does not load.
  static SubwordTable from_proto(std::string proto);
  /// The model saved in `state` ("tokenizer.model": the proto in base64).
  static SubwordTable restore(const StateMap& state);

  int64_t vocab() const override;
  std::vector<int64_t> encode(std::string_view text, int64_t T) const override;
  StateMap save() const override;
  /// The pieces of a text, without [CLS] or padding, and the text back from them.
  std::vector<int64_t> pieces(std::string_view text) const;
  std::string decode(const std::vector<int64_t>& ids) const;
  const std::string& proto() const { return proto_; }

 private:
  std::string proto_;
  std::shared_ptr<void> sp_;  // a model of the SentencePiece module (sentencepiece_abi.h)
};

/// The tokenizer a setting names — "words:VOCAB" (WordTable) or "sentencepiece:VOCAB" — built on
/// texts[i] for i in `indices`. Throws Error for another setting.
std::unique_ptr<TextTokenizer> make_tokenizer(const std::string& setting, const std::vector<std::string>& texts,
                                              const std::vector<int64_t>& indices, uint64_t seed);
/// The tokenizer saved in checkpoint metadata; throws Error when there is none.
std::unique_ptr<TextTokenizer> restore_tokenizer(const StateMap& state);

/// Base64 (RFC 4648, with padding), for binary data in text metadata.
std::string base64_encode(std::string_view bytes);
/// Throws Error for a character outside the alphabet or a bad length.
std::string base64_decode(std::string_view text);

}  // namespace stag::rt
