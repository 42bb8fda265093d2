// Bad input never crashes, hangs or allocates without bound: every prefix of every catalog
// model and a few hundred deterministic mutations compile in-process to errors (or, for valid
// text, a graph), each quickly.

#include <catch2/catch.hpp>

#include <ctime>
#include <cstdint>

#include "helpers.h"

using namespace stag;
using namespace stag::test;

namespace {

// A fixed-seed generator, so a failure reproduces.
struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  size_t below(size_t n) { return n ? static_cast<size_t>(next() % n) : 0; }
};

// Compiles `text` and checks the outcome is consistent and fast.
#ifdef STAG_SANITIZED
constexpr double kCompileSeconds = 5.0;  // ASan and UBSan slow the frontend several times over
#else
constexpr double kCompileSeconds = 1.0;
#endif
void survive(const std::string& text, bool training = false) {
  // CPU time, not wall time: the machine running the tests may be busy with other work.
  std::clock_t start = std::clock();
  LoadOptions opts;
  opts.training = training;
  auto c = compile(text, opts);
  double secs = static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC;
  // A graph and no errors, or errors and no graph.
  if (c.graph) REQUIRE(c.errors.empty());
  else REQUIRE(c.errors.find("error: ") != std::string::npos);
  INFO(text.substr(0, 200));
  REQUIRE(secs < kCompileSeconds);
}

std::string mutate(const std::string& src, Rng& rng) {
  std::string s = src;
  int edits = 1 + static_cast<int>(rng.below(4));
  for (int e = 0; e < edits && !s.empty(); ++e) {
    size_t at = rng.below(s.size());
    switch (rng.below(8)) {
      case 0: s[at] = static_cast<char>(s[at] ^ (1 << rng.below(8))); break;  // bit flip
      case 1: s.erase(at, 1 + rng.below(20)); break;                          // deletion
      case 2: s.insert(at, s.substr(rng.below(s.size()), 1 + rng.below(80))); break;  // duplication
      case 3:                                                                 // random bytes
        for (size_t i = 0; i < 1 + rng.below(16); ++i) s.insert(s.begin() + static_cast<long>(at), static_cast<char>(rng.next()));
        break;
      case 4: s = s.substr(0, at) + std::to_string(rng.next()) + s.substr(at); break;  // absurd number
      case 5: {                                                               // swap a digit run
        static const char* nums[] = {"0", "-1", "99999999999", "1e308", "1e999", "9223372036854775807", "16777217"};
        size_t d = s.find_first_of("0123456789", at);
        if (d != std::string::npos) s.replace(d, 1, nums[rng.below(7)]);
        break;
      }
      case 6: {  // a word swapped for a keyword, layer, op or name: mutations that parse
        static const char* words[] = {"Linear", "Conv2d", "ConvTranspose2d", "LSTM", "GRU", "RNN", "MultiheadAttention",
                                      "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Embedding", "Dropout", "Sequential",
                                      "repeat 3", "layer", "param", "init", "const", "forward", "return", "output",
                                      "loss =", "metric", "B", "x", "y", "relu", "split", "batch_norm", "concat",
                                      "dropout", "iota", "true", "None", "f32[B]", "i64", "[1, 2]", "0", "-1", "7",
                                      "1e9", "0.5", "\"s\"", ",", "=", "@", "//", "frozen", "train", "block",
                                      "if true {", "if x {", "else", "and", "not", "}"};
        size_t start = s.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", at);
        if (start == std::string::npos) break;
        size_t end = s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.", start);
        s.replace(start, (end == std::string::npos ? s.size() : end) - start, words[rng.below(std::size(words))]);
        break;
      }
      default: s.insert(s.begin() + static_cast<long>(at), rng.below(2) ? '(' : '{'); break;  // unbalanced nesting
    }
  }
  return s;
}

}  // namespace

TEST_CASE("every prefix of every catalog model ends in errors or a graph", "[bad-input]") {
  for (const auto& p : catalog()) {
    std::string text = read_file(p);
    INFO(p);
    for (size_t n = 0; n <= text.size(); ++n) survive(text.substr(0, n), n % 2 == 1);
  }
}

TEST_CASE("a few hundred mutated models end in errors or a graph", "[bad-input]") {
  Rng rng{0x5eed5eedULL};
  auto files = catalog();
  for (int i = 0; i < 600; ++i) {
    std::string src = read_file(files[rng.below(files.size())]);
    survive(mutate(src, rng), i % 2 == 1);
  }
}

TEST_CASE("pathological inputs are reported, not crashed on", "[bad-input]") {
  std::string head = "model m {\n  batch 4\n  input x: f32[B, 8]\n";
  std::vector<std::string> cases = {
      std::string(100000, '('),
      // A failed layer inside a Sequential must end the chain (this once crashed in BatchNorm2d).
      "model m {\n  batch 2\n  input img: f32[B, 3, 8, 8]\n  layer s = Sequential(Conv2d(3, 4, 3, stride=0), BatchNorm2d(4))\n"
      "  forward { output y = s(img) }\n}\n",
      head + "  forward {\n    y = " + std::string(5000, '(') + "x" + std::string(5000, ')') + "\n  }\n}\n",
      head + "  forward {\n    y = " + std::string(10000, '-') + "x\n  }\n}\n",
      head + "  layer l = repeat 1000000 Linear(8, 8)\n  forward { output y = l(x) }\n}\n",
      head + "  layer l = repeat 1024 Sequential(repeat 1024 ReLU())\n  forward { output y = l(x) }\n}\n",
      head + "  layer l = Linear(16777216, 16777216)\n  forward { output y = l(x) }\n}\n",
      head + "  const N = 9223372036854775807\n  const M = N * N\n  forward { output y = x }\n}\n",
      head + "  const N = 99999999999999999999999\n  forward { output y = x }\n}\n",
      "model m {\n  batch 1073741824\n  input x: f32[B, B, B, B, B, B, B, B]\n  forward { output y = x }\n}\n",
      "block A() { layer b = A()\n forward(x) { return b(x) } }\n" + head + "  layer a = A()\n  forward { output y = a(x) }\n}\n",
      "block A() { layer b = B2()\n forward(x) { return b(x) } }\nblock B2() { layer a = A()\n forward(x) { return a(x) } }\n" +
          head + "  layer a = A()\n  forward { output y = a(x) }\n}\n",
      std::string("\x00\xff\xfe\x01model\x00", 10),
      head + "  forward {\n    y = \"unterminated\n  }\n}\n",
      head,
      "",
  };
  // A chain of blocks each holding two of the next: 2^40 layers if nothing stopped it.
  std::string chain;
  for (int i = 0; i < 40; ++i)
    chain += "block C" + std::to_string(i) + "() { layer a = C" + std::to_string(i + 1) + "()\n layer b = C" +
             std::to_string(i + 1) + "()\n forward(x) { return b(a(x)) } }\n";
  chain += "block C40() { layer l = ReLU()\n forward(x) { return l(x) } }\n";
  cases.push_back(chain + head + "  layer c = C0()\n  forward { output y = c(x) }\n}\n");
  for (const auto& text : cases) {
    auto c = compile(text);
    INFO(text.substr(0, 300));
    CHECK_FALSE(c.graph);
    CHECK(c.errors.find("error: ") != std::string::npos);
  }
  for (const auto& text : cases) survive(text, true);
}
