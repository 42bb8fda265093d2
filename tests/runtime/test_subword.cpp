// The SentencePiece subword tokenizer: round trip, determinism for a seed, checkpoint metadata,
// the choice of tokenizer by setting, and base64.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "runtime/data/subword.h"
#include "runtime/error.h"

using namespace stag::rt;
using Catch::Matchers::Contains;

namespace {

// Sentences with enough distinct words for a small unigram model.
std::vector<std::string> corpus() {
  const char* animals[] = {"cat", "dog", "horse", "parrot", "goldfish", "hamster", "rabbit", "tortoise"};
  const char* verbs[] = {"sleeps", "jumps", "purrs", "barks", "swims", "eats carrots", "runs away", "sings"};
  std::vector<std::string> out;
  for (int i = 0; i < 400; ++i)
    out.push_back(fmt::format("the {} number {}\nquietly {} today", animals[i % 8], i, verbs[(i * 3 + i / 8) % 8]));
  return out;
}

std::vector<int64_t> all(size_t n) {
  std::vector<int64_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<int64_t>(i);
  return v;
}

}  // namespace

TEST_CASE("a sentencepiece model reads text back and keeps padding, [CLS] and unknown ids", "[subword]") {
  auto texts = corpus();
  SubwordTable t = SubwordTable::train(texts, all(texts.size()), 80, 7);
  CHECK(t.vocab() == 80);
  std::string s = "the hamster number 12 quietly swims today";
  auto p = t.pieces(s);
  CHECK(t.decode(p) == s);
  CHECK(p.size() < s.size());  // some pieces longer than a character: it learned subwords
  for (int64_t id : p) CHECK(id >= 3);
  auto ids = t.encode(s, 40);
  CHECK(ids[0] == 1);
  CHECK(std::vector<int64_t>(ids.begin() + 1, ids.begin() + 1 + static_cast<ptrdiff_t>(p.size())) == p);
  CHECK(ids.back() == 0);
  CHECK(t.encode(s, 3).size() == 3);
  auto unseen = t.pieces("zzz");  // a letter it never saw: unknown
  CHECK(std::find(unseen.begin(), unseen.end(), 2) != unseen.end());
}

TEST_CASE("sentencepiece training is deterministic for a seed and survives a checkpoint", "[subword]") {
  auto texts = corpus();
  SubwordTable a = SubwordTable::train(texts, all(texts.size()), 60, 3);
  SubwordTable b = SubwordTable::train(texts, all(texts.size()), 60, 3);
  CHECK(a.proto() == b.proto());
  SubwordTable half = SubwordTable::train(texts, all(200), 60, 3);
  CHECK(half.proto() != a.proto());  // the training texts are what it learns from
  StateMap saved = a.save();
  CHECK(saved.at("tokenizer") == "sentencepiece:60");
  auto back = restore_tokenizer(saved);
  CHECK(back->encode("the dog runs away", 16) == a.encode("the dog runs away", 16));
}

TEST_CASE("tokenizer settings choose words or sentencepiece, bad ones are errors", "[subword]") {
  auto texts = corpus();
  CHECK(make_tokenizer("words:50", texts, all(10), 0)->save().at("tokenizer") == "words:50");
  CHECK(make_tokenizer("sentencepiece:90", texts, all(texts.size()), 0)->vocab() == 90);
  CHECK_THROWS_WITH(make_tokenizer("bpe:90", texts, all(10), 0), Contains("expected words:VOCAB_SIZE or sentencepiece"));
  CHECK_THROWS_WITH(make_tokenizer("sentencepiece:100000", texts, all(10), 0), Contains("sentencepiece:100000"));
  CHECK_THROWS_WITH(restore_tokenizer({}), Contains("no word tokenizer"));
  CHECK_THROWS_WITH(restore_tokenizer({{"tokenizer", "sentencepiece:90"}, {"tokenizer.model", "AAAA"}}), Contains("does not load"));
}

TEST_CASE("base64 round trip and errors", "[subword]") {
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) CHECK(base64_decode(base64_encode(s)) == s);
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK_THROWS_WITH(base64_decode("abc"), Contains("multiple of 4"));
  CHECK_THROWS_WITH(base64_decode("ab!="), Contains("not in the alphabet"));
}
