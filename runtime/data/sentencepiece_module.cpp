// The SentencePiece module: SentencePiece's trainer and processor behind the C interface of
// sentencepiece_abi.h, built as its own shared object so its protobuf stays inside it.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/data/sentencepiece_abi.h"

namespace {

// The training texts one at a time, newlines as spaces (SentencePiece reads a sentence a line).
class Sentences : public sentencepiece::SentenceIterator {
 public:
  Sentences(const char* const* texts, const size_t* lengths, size_t n) : texts_(texts), lengths_(lengths), n_(n) { load(); }
  bool done() const override { return at_ >= n_; }
  void Next() override {
    ++at_;
    load();
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void load() {
    if (done()) return;
    value_.assign(texts_[at_], lengths_[at_]);
    std::replace(value_.begin(), value_.end(), '\n', ' ');
  }
  const char* const* texts_;
  const size_t* lengths_;
  size_t n_;
  size_t at_ = 0;
  std::string value_;
};

template <typename T>
T* copy_out(const T* data, size_t n) {
  auto* out = static_cast<T*>(std::malloc(std::max<size_t>(1, n * sizeof(T))));
  if (out && n) std::memcpy(out, data, n * sizeof(T));
  return out;
}

char* message(const std::string& text) { return copy_out(text.c_str(), text.size() + 1); }

char* failure(const sentencepiece::util::Status& status) { return status.ok() ? nullptr : message(status.ToString()); }

const sentencepiece::SentencePieceProcessor& processor(const void* handle) {
  return *static_cast<const sentencepiece::SentencePieceProcessor*>(handle);
}

char* train(const char* const* texts, const size_t* lengths, size_t n, int64_t vocab, unsigned seed, char** model,
            size_t* model_len) try {
  // One thread and a fixed seed: SentencePiece's unigram trainer is then deterministic.
  sentencepiece::SetRandomGeneratorSeed(seed);
  std::unordered_map<std::string, std::string> args = {
      {"model_type", "unigram"}, {"vocab_size", std::to_string(vocab)}, {"pad_id", "0"}, {"bos_id", "1"},
      {"unk_id", "2"}, {"eos_id", "-1"}, {"num_threads", "1"}, {"minloglevel", "2"}, {"hard_vocab_limit", "true"}};
  Sentences sentences(texts, lengths, n);
  std::string proto;
  if (char* error = failure(sentencepiece::SentencePieceTrainer::Train(args, &sentences, &proto))) return error;
  *model = copy_out(proto.data(), proto.size());
  *model_len = proto.size();
  return nullptr;
} catch (const std::exception& e) {
  return message(e.what());
}

char* load(const char* model, size_t len, void** handle) try {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  if (char* error = failure(sp->LoadFromSerializedProto(std::string_view(model, len)))) return error;
  *handle = sp.release();
  return nullptr;
} catch (const std::exception& e) {
  return message(e.what());
}

void release(void* handle) { delete static_cast<sentencepiece::SentencePieceProcessor*>(handle); }

int64_t piece_size(const void* handle) { return processor(handle).GetPieceSize(); }

char* encode(const void* handle, const char* text, size_t len, int** ids, size_t* n) try {
  std::vector<int> out;
  if (char* error = failure(processor(handle).Encode(std::string_view(text, len), &out))) return error;
  *ids = copy_out(out.data(), out.size());
  *n = out.size();
  return nullptr;
} catch (const std::exception& e) {
  return message(e.what());
}

char* decode(const void* handle, const int* ids, size_t n, char** text, size_t* len) try {
  std::string out;
  if (char* error = failure(processor(handle).Decode(std::vector<int>(ids, ids + n), &out))) return error;
  *text = copy_out(out.data(), out.size());
  *len = out.size();
  return nullptr;
} catch (const std::exception& e) {
  return message(e.what());
}

constexpr StagSentencePieceApi kApi = {kStagSentencePieceAbi, train, load, release, piece_size, encode, decode};

}  // namespace

extern "C" __attribute__((visibility("default"))) const StagSentencePieceApi* stag_sentencepiece_api() { return &kApi; }
