// Character language models' data and validation: the character table checkpoints carry, the
// bigram baseline, and per-token loss, perplexity, bits and accuracy.

#include <catch2/catch.hpp>

#include <cmath>

#include "runtime/data/text.h"
#include "runtime/metrics.h"

using namespace stag::rt;

TEST_CASE("the character table gives bytes their ids and round-trips through metadata") {
  CharTable t = CharTable::build("hello world", 96);
  CHECK(t.bytes == std::vector<uint8_t>{' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w'});
  CHECK(t.other == -1);
  CHECK(t.id('l') == 4);
  CHECK(!t.id('z'));
  auto back = CharTable::restore(t.save());
  REQUIRE(back);
  CHECK(back->bytes == t.bytes);
  CHECK(back->vocab == 96);
  CHECK(back->encode("world") == t.encode("world"));
  CHECK(!CharTable::restore({{"step", "3"}}));
  StateMap bad = t.save();
  bad["vocab.bytes"] = "32 300";
  CHECK_THROWS_WITH(CharTable::restore(bad), Catch::Contains("not a byte"));
}

TEST_CASE("a corpus with more bytes than the vocabulary shares one id among the rarest") {
  CharTable t = CharTable::build("aaaabbbcd", 3);  // a, b keep ids; c and d share id 2
  CHECK(t.bytes == std::vector<uint8_t>{'a', 'b'});
  CHECK(t.other == 2);
  CHECK(t.encode("abcd") == std::vector<int64_t>{0, 1, 2, 2});
  CHECK(CharTable::restore(t.save())->id('d') == 2);
}

TEST_CASE("the bigram baseline is add-one smoothed counts of the training pairs") {
  std::vector<int64_t> tokens{0, 1, 0, 1, 0, 1, 0, 1, 0};
  Dataset d = make_sequences(tokens, 2);  // four examples, each x = [0, 1], y = [1, 0]
  std::vector<int64_t> train{0, 1, 2}, validation{3};
  CHECK(bigram_loss(d, train, validation, 2) == Approx(-std::log(4.0 / 5)));  // (3 + 1) / (3 + 2)
  CHECK(bigram_loss(d, train, validation, 3) == Approx(-std::log(4.0 / 6)));
}

TEST_CASE("per-token metrics: loss in nats with perplexity bits and accuracy") {
  TokenAccumulator acc;
  std::vector<float> z{0.f, std::log(3.f), std::log(3.f), 0.f};
  acc.add(z, std::vector<int64_t>{1, 1}, 2);
  Metrics m = acc.compute();
  CHECK(m.per_token);
  CHECK(m.count == 2);
  CHECK(m.loss == Approx((-std::log(0.75) - std::log(0.25)) / 2));
  CHECK(m.accuracy == Approx(0.5));
  CHECK(m.perplexity() == Approx(std::exp(m.loss)));
  CHECK(m.bits() == Approx(m.loss / std::log(2.0)));
  CHECK_THROWS(acc.add(z, std::vector<int64_t>{2, 0}, 2));
}
