// SentencePiece subword models for classifiers, and the choice of tokenizer by setting.
#include "runtime/data/subword.h"

#include <fmt/format.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>

#include "runtime/error.h"

namespace stag::rt {

namespace {

// The training texts one at a time, newlines as spaces (SentencePiece reads a sentence a line).
class Sentences : public sentencepiece::SentenceIterator {
 public:
  Sentences(const std::vector<std::string>& texts, const std::vector<int64_t>& indices) : texts_(texts), indices_(indices) {
    load();
  }
  bool done() const override { return at_ >= indices_.size(); }
  void Next() override {
    ++at_;
    load();
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void load() {
    if (done()) return;
    value_ = texts_[static_cast<size_t>(indices_[at_])];
    std::replace(value_.begin(), value_.end(), '\n', ' ');
  }
  const std::vector<std::string>& texts_;
  const std::vector<int64_t>& indices_;
  size_t at_ = 0;
  std::string value_;
};

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int64_t setting_size(const std::string& setting, size_t colon) {
  return parse_int(setting.substr(colon + 1), "tokenizer");
}

}  // namespace

SubwordTable SubwordTable::train(const std::vector<std::string>& texts, const std::vector<int64_t>& indices, int64_t vocab,
                                 uint64_t seed) {
  // One thread and a fixed seed: SentencePiece's unigram trainer is then deterministic.
  sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned>(seed));
  std::unordered_map<std::string, std::string> args = {
      {"model_type", "unigram"}, {"vocab_size", std::to_string(vocab)}, {"pad_id", "0"}, {"bos_id", "1"},
      {"unk_id", "2"}, {"eos_id", "-1"}, {"num_threads", "1"}, {"minloglevel", "2"}, {"hard_vocab_limit", "true"}};
  Sentences sentences(texts, indices);
  std::string proto;
  auto status = sentencepiece::SentencePieceTrainer::Train(args, &sentences, &proto);
  if (!status.ok()) throw Error(fmt::format("sentencepiece:{}: {}", vocab, status.ToString()));
  return from_proto(std::move(proto));
}

SubwordTable SubwordTable::from_proto(std::string proto) {
  SubwordTable t;
  t.sp_ = std::make_shared<sentencepiece::SentencePieceProcessor>();
  auto status = t.sp_->LoadFromSerializedProto(proto);
  if (!status.ok()) throw Error(fmt::format("the sentencepiece model does not load: {}", status.ToString()));
  t.proto_ = std::move(proto);
  return t;
}

SubwordTable SubwordTable::restore(const StateMap& state) {
  return from_proto(base64_decode(state_get(state, "tokenizer.model")));
}

int64_t SubwordTable::vocab() const { return sp_->GetPieceSize(); }

std::vector<int64_t> SubwordTable::pieces(std::string_view text) const {
  std::vector<int> ids;
  auto status = sp_->Encode(text, &ids);
  if (!status.ok()) throw Error(fmt::format("sentencepiece: {}", status.ToString()));
  return {ids.begin(), ids.end()};
}

std::string SubwordTable::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  auto status = sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &out);
  if (!status.ok()) throw Error(fmt::format("sentencepiece: {}", status.ToString()));
  return out;
}

std::vector<int64_t> SubwordTable::encode(std::string_view text, int64_t T) const {
  std::vector<int64_t> ids{1};
  auto p = pieces(text);
  ids.insert(ids.end(), p.begin(), p.begin() + std::min<ptrdiff_t>(static_cast<ptrdiff_t>(p.size()), T - 1));
  ids.resize(static_cast<size_t>(T), 0);
  return ids;
}

StateMap SubwordTable::save() const {
  return {{"tokenizer", fmt::format("sentencepiece:{}", vocab())}, {"tokenizer.model", base64_encode(proto_)}};
}

std::unique_ptr<TextTokenizer> make_tokenizer(const std::string& setting, const std::vector<std::string>& texts,
                                              const std::vector<int64_t>& indices, uint64_t seed) {
  size_t colon = setting.find(':');
  std::string kind = setting.substr(0, colon);
  if (colon != std::string::npos && kind == "words")
    return std::make_unique<WordTable>(WordTable::build(texts, indices, setting_size(setting, colon)));
  if (colon != std::string::npos && kind == "sentencepiece")
    return std::make_unique<SubwordTable>(SubwordTable::train(texts, indices, setting_size(setting, colon), seed));
  throw Error(fmt::format("tokenizer '{}': expected words:VOCAB_SIZE or sentencepiece:VOCAB_SIZE", setting));
}

std::unique_ptr<TextTokenizer> restore_tokenizer(const StateMap& state) {
  auto it = state.find("tokenizer");
  if (it != state.end() && it->second.starts_with("sentencepiece:"))
    return std::make_unique<SubwordTable>(SubwordTable::restore(state));
  return std::make_unique<WordTable>(WordTable::restore(state));  // its error says there is none
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t n = 0;
    size_t len = std::min<size_t>(3, bytes.size() - i);
    for (size_t j = 0; j < 3; ++j) n = n << 8 | (j < len ? static_cast<unsigned char>(bytes[i + j]) : 0u);
    for (size_t j = 0; j < 4; ++j) out += j <= len ? kAlphabet[n >> (18 - 6 * j) & 63] : '=';
  }
  return out;
}

std::string base64_decode(std::string_view text) {
  if (text.size() % 4) throw Error(fmt::format("base64: length {} is not a multiple of 4", text.size()));
  std::string out;
  for (size_t i = 0; i < text.size(); i += 4) {
    uint32_t n = 0;
    int pad = 0;
    for (size_t j = 0; j < 4; ++j) {
      size_t v = text[i + j] == '=' ? (++pad, 0) : kAlphabet.find(text[i + j]);
      if (v == std::string_view::npos) throw Error(fmt::format("base64: '{}' at {} is not in the alphabet", text[i + j], i + j));
      n = n << 6 | static_cast<uint32_t>(v);
    }
    for (int j = 0; j < 3 - pad; ++j) out += static_cast<char>(n >> (16 - 8 * j) & 255);
  }
  return out;
}

}  // namespace stag::rt
