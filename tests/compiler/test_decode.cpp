// The catalog language models' decode steps (LoadOptions::decode: one token, the key/value cache
// or recurrent state carried between calls) against their full forward at batch 1, the oracle:
// the same logits at every position, so greedy decoding picks the full forward's argmax, and past
// the context a GPT slides its window as runtime/sample.h says.

#include <catch2/catch.hpp>

#include <algorithm>

#include "compiler/jit/jit_model.h"
#include "ir/random.h"
#include "runtime/sample.h"
#include "tests/compiler/catalog.h"

using namespace stag;

namespace {

std::unique_ptr<Graph> load(const std::string& model, bool decode, bool prefill = false) {
  LoadOptions options;
  options.batch = 1;
  options.decode = decode;
  options.prefill = prefill;
  return test::load_model_file(test::catalog_path(model), options);
}

// The decode step, the prefill and the full forward in one program, sharing randomly
// initialised parameters.
CompiledModel compile_lm(const std::string& model) {
  auto step = load(model, true), prefill = load(model, false, true), forward = load(model, false);
  CompiledModel c = compile_jit({{"decode", step.get()}, {"prefill", prefill.get()}, {"forward", forward.get()}});
  c.model->init(5);
  return c;
}

std::vector<int64_t> random_tokens(size_t n, int64_t vocab, int64_t stream) {
  std::vector<int64_t> t;
  for (size_t i = 0; i < n; ++i)
    t.push_back(static_cast<int64_t>(random_uniform01(9, stream, static_cast<int64_t>(i)) * static_cast<double>(vocab)));
  return t;
}

int64_t argmax(std::span<const float> z) { return std::max_element(z.begin(), z.end()) - z.begin(); }

// Feeds `tokens` one at a time; after each, the decode step's logits equal the full forward's at
// the last position of the decoder's window. Returns the window's final start.
int64_t check_against_forward(rt::Model& m, const std::vector<int64_t>& tokens, const std::string& prefill) {
  rt::Decoder d(m, "decode", prefill);
  for (size_t i = 0; i < tokens.size(); ++i) {
    auto z = d.step(tokens[i]);
    auto start = static_cast<size_t>(d.window_start());
    auto ref = rt::forward_last_logits(m, std::span<const int64_t>(tokens).subspan(start, i + 1 - start));
    INFO("position " << i << ", window from " << start);
    for (size_t v = 0; v < ref.size(); ++v) REQUIRE(z[v] == Approx(ref[v]).margin(2e-4));
    REQUIRE(argmax(z) == argmax(ref));
  }
  return d.window_start();
}

// Greedy decoding with the decode step draws, at every position, the full forward's argmax.
void check_greedy(rt::Model& m, size_t prompt_length, int64_t n) {
  rt::Decoder d(m);
  auto prompt = random_tokens(prompt_length, d.vocab(), 2);
  rt::SamplingOptions greedy;
  greedy.temperature = 0;
  auto drawn = rt::generate(d, prompt, n, greedy);
  std::vector<int64_t> seq = prompt;
  seq.insert(seq.end(), drawn.begin(), drawn.end());
  rt::Decoder replay(m);
  for (size_t i = 0; i + 1 < seq.size(); ++i) {
    replay.step(seq[i]);
    auto start = static_cast<size_t>(replay.window_start());
    if (i + 1 < prompt_length) continue;
    auto ref = rt::forward_last_logits(m, std::span<const int64_t>(seq).subspan(start, i + 1 - start));
    INFO("position " << i);
    REQUIRE(seq[i + 1] == argmax(ref));
  }
}

}  // namespace

TEST_CASE("gpt: the cached decode step equals the full forward and slides its window by T/2") {
  CompiledModel c = compile_lm("gpt");
  rt::Decoder d(*c.model);
  REQUIRE(d.context() == 64);
  // At token 64 the window restarts from tokens 32..63; at token 96 from 64..95: encoded by one
  // prefill call, or re-encoded a decode step a token.
  auto tokens = random_tokens(64 + 32 + 2, d.vocab(), 1);
  CHECK(check_against_forward(*c.model, tokens, "prefill") == 64);
  CHECK(check_against_forward(*c.model, tokens, "") == 64);
  check_greedy(*c.model, 5, 70);
}

TEST_CASE("lstm_lm and gru_lm and char_rnn: the decode step carries the full forward's state") {
  // Within char_rnn's 32 positions, which is as far as the full forward reaches.
  for (const char* model : {"lstm_lm", "gru_lm", "char_rnn"}) {
    INFO(model);
    CompiledModel c = compile_lm(model);
    rt::Decoder d(*c.model);
    CHECK(d.context() == 0);
    CHECK(check_against_forward(*c.model, random_tokens(32, d.vocab(), 1), "") == 0);
    check_greedy(*c.model, 3, 29);
  }
}
