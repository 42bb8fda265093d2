// Randomly damaged .npy and safetensors files either load or throw Error: never crash, hang or
// throw anything else (run under ASan/UBSan to make "never crash" mean something).
#include <catch2/catch.hpp>

#include <random>

#include "runtime/npy.h"
#include "runtime/safetensors.h"
#include "test_util.h"

using namespace stag::rt;
using namespace stag::rt::test;

namespace {

template <class Decode>
void mutate_and_decode(const std::vector<std::byte>& good, Decode decode, uint32_t seed) {
  std::mt19937 rng(seed);
  int loaded = 0, refused = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<std::byte> b = good;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 4) {
        case 0:  // overwrite a byte, mostly in the header where the structure lives
          if (!b.empty()) b[rng() % std::min<size_t>(b.size(), 160)] = static_cast<std::byte>(rng());
          break;
        case 1:  // overwrite with a structural character
          if (!b.empty()) b[rng() % std::min<size_t>(b.size(), 160)] = static_cast<std::byte>("{}[](),:'\"-0123456789 \n"[rng() % 23]);
          break;
        case 2:  // truncate
          b.resize(rng() % (b.size() + 1));
          break;
        case 3:  // append
          b.push_back(static_cast<std::byte>(rng()));
          break;
      }
    }
    try {
      decode(b);
      ++loaded;
    } catch (const Error&) {
      ++refused;
    }
  }
  CHECK(refused > 0);
  CHECK(loaded + refused == 3000);
}

}  // namespace

TEST_CASE("damaged .npy files load or throw Error", "[npy][mutation]") {
  Tensor t = Tensor::from<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  mutate_and_decode(encode_npy(t), [](const std::vector<std::byte>& b) { decode_npy(b); }, 1);
  mutate_and_decode(read_bytes(fixture("np_v3_i32_3.npy")),
                    [](const std::vector<std::byte>& b) { decode_npy(b); }, 2);
  Tensor flags = Tensor::from<bool>({4}, {true, false, true, true});
  mutate_and_decode(encode_npy(flags), [](const std::vector<std::byte>& b) { decode_npy(b); }, 3);
}

TEST_CASE("damaged safetensors files load or throw Error", "[safetensors][mutation]") {
  mutate_and_decode(read_bytes(fixture("reference.safetensors")),
                    [](const std::vector<std::byte>& b) { decode_safetensors(b); }, 4);
  mutate_and_decode(read_bytes(fixture("half.safetensors")),
                    [](const std::vector<std::byte>& b) { decode_safetensors(b); }, 5);
}
