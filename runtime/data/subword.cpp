// SentencePiece subword models for classifiers, and the choice of tokenizer by setting.
#include "runtime/data/subword.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include "runtime/data/sentencepiece_abi.h"
#include "runtime/error.h"

namespace stag::rt {

namespace {

// Throws the module's error message (and frees it), prefixed by what failed.
void check(char* error, std::string_view what) {
  if (!error) return;
  std::string text(error);
  std::free(error);
  throw Error(fmt::format("{}: {}", what, text));
}

// Takes ownership of a malloc'ed buffer from the module.
template <typename T>
std::unique_ptr<T, decltype(&std::free)> owned(T* data) {
  return {data, &std::free};
}

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int64_t setting_size(const std::string& setting, size_t colon) {
  return parse_int(setting.substr(colon + 1), "tokenizer");
}

}  // namespace

SubwordTable SubwordTable::train(const std::vector<std::string>& texts, const std::vector<int64_t>& indices, int64_t vocab,
                                 uint64_t seed) {
  std::vector<const char*> chosen;
  std::vector<size_t> lengths;
  for (int64_t i : indices) {
    chosen.push_back(texts[static_cast<size_t>(i)].data());
    lengths.push_back(texts[static_cast<size_t>(i)].size());
  }
  char* model = nullptr;
  size_t len = 0;
  check(sentencepiece_api().train(chosen.data(), lengths.data(), chosen.size(), vocab, static_cast<unsigned>(seed), &model,
                                  &len),
        fmt::format("sentencepiece:{}", vocab));
  return from_proto(std::string(owned(model).get(), len));
}

SubwordTable SubwordTable::from_proto(std::string proto) {
  const auto& api = sentencepiece_api();
  void* handle = nullptr;
  check(api.load(proto.data(), proto.size(), &handle), "the sentencepiece model does not load");
  SubwordTable t;
  t.sp_ = std::shared_ptr<void>(handle, api.release);
  t.proto_ = std::move(proto);
  return t;
}

SubwordTable SubwordTable::restore(const StateMap& state) {
  return from_proto(base64_decode(state_get(state, "tokenizer.model")));
}

int64_t SubwordTable::vocab() const { return sentencepiece_api().piece_size(sp_.get()); }

std::vector<int64_t> SubwordTable::pieces(std::string_view text) const {
  int* ids = nullptr;
  size_t n = 0;
  check(sentencepiece_api().encode(sp_.get(), text.data(), text.size(), &ids, &n), "sentencepiece");
  auto held = owned(ids);
  return {ids, ids + n};
}

std::string SubwordTable::decode(const std::vector<int64_t>& ids) const {
  std::vector<int> narrow(ids.begin(), ids.end());
  char* text = nullptr;
  size_t len = 0;
  check(sentencepiece_api().decode(sp_.get(), narrow.data(), narrow.size(), &text, &len), "sentencepiece");
  return std::string(owned(text).get(), len);
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
