// Sampling a language model's next token: temperature, top-k and top-p as in transformers'
// logits warpers, and a counter-based generator so that a seed repeats.

#include <catch2/catch.hpp>

#include <cmath>

#include "runtime/sample.h"

using namespace stag::rt;

namespace {

std::vector<float> logits_of(std::vector<double> probs) {
  std::vector<float> z;
  for (double p : probs) z.push_back(static_cast<float>(std::log(p)));
  return z;
}

SamplingOptions with(double temperature, int64_t top_k, double top_p) {
  SamplingOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  return o;
}

}  // namespace

TEST_CASE("temperature 0 is the argmax (the first of ties)") {
  std::vector<float> z{0.5f, 2.f, 2.f, -1.f};
  for (uint64_t c = 0; c < 5; ++c) CHECK(sample_token(z, with(0, 0, 1), c) == 1);
}

TEST_CASE("temperature divides the logits before the softmax") {
  auto p = sampling_distribution(logits_of({1.0 / 3, 2.0 / 3}), with(0.5, 0, 1));
  CHECK(p[0] == Approx(1.0 / 5));  // (1/3)^2 : (2/3)^2 = 1 : 4
  CHECK(p[1] == Approx(4.0 / 5));
}

TEST_CASE("top-k keeps the k most likely and their ties") {
  auto p = sampling_distribution(logits_of({0.1, 0.4, 0.2, 0.3}), with(1, 2, 1));
  CHECK(p[0] == 0);
  CHECK(p[2] == 0);
  CHECK(p[1] == Approx(4.0 / 7));
  auto tied = sampling_distribution(logits_of({0.1, 0.3, 0.3, 0.3}), with(1, 1, 1));
  CHECK(tied[0] == 0);
  CHECK(tied[1] == Approx(1.0 / 3));
}

TEST_CASE("top-p drops the least likely tokens whose total is at most 1 - p") {
  auto p = sampling_distribution(logits_of({0.05, 0.5, 0.15, 0.3}), with(1, 0, 0.75));
  CHECK(p[0] == 0);
  CHECK(p[2] == 0);
  CHECK(p[1] == Approx(0.625));
  CHECK(p[3] == Approx(0.375));
  auto q = sampling_distribution(logits_of({0.05, 0.5, 0.15, 0.3}), with(1, 0, 0.9));
  CHECK(q[0] == 0);
  CHECK(q[2] == Approx(0.15 / 0.95));
  auto one = sampling_distribution(logits_of({0.05, 0.5, 0.15, 0.3}), with(1, 0, 0.01));
  CHECK(one[1] == 1);  // the most likely token always stays
}

TEST_CASE("top-k applies before top-p") {
  // After top-2 the pair is 0.5 : 0.3 -> 0.625, 0.375; top-p 0.5 then keeps the first alone.
  auto p = sampling_distribution(logits_of({0.05, 0.5, 0.15, 0.3}), with(1, 2, 0.5));
  CHECK(p[1] == 1);
}

TEST_CASE("a seed repeats its draws and draws follow the distribution") {
  auto z = logits_of({0.1, 0.2, 0.3, 0.4});
  SamplingOptions o = with(1, 0, 1);
  o.seed = 42;
  std::vector<int64_t> count(4, 0);
  const int n = 20000;
  for (int c = 0; c < n; ++c) {
    int64_t t = sample_token(z, o, static_cast<uint64_t>(c));
    CHECK(t == sample_token(z, o, static_cast<uint64_t>(c)));
    ++count[static_cast<size_t>(t)];
  }
  for (size_t i = 0; i < 4; ++i) CHECK(static_cast<double>(count[i]) / n == Approx(0.1 * static_cast<double>(i + 1)).margin(0.015));
  o.seed = 43;
  int same = 0;
  for (int c = 0; c < 100; ++c) same += sample_token(z, o, static_cast<uint64_t>(c)) == sample_token(z, with(1, 0, 1), static_cast<uint64_t>(c));
  CHECK(same < 60);
}
