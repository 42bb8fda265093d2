// The all-reduce's means, exact to the bit, under mpirun at any process count: every rank
// averages buffers whose sizes straddle the ring's blocks, chunks and the two-process swap and the
// shared memory's slots, one at a time (Collective::average) and several in flight at once
// (start_average, finish_average), the first through shared memory and the rest by the ring.
// The values are small integers, so every partial sum is exact whatever the ring's order and the
// mean is the exact sum times 1/ranks, rounded once: each rank checks every element against it.
//   mpirun -np N stag_ring_check [--messages]   (exit 0: all equal; 1: the first difference is printed)
// --messages: no shared memory, every buffer by the ring, as across machines.
#include <fmt/format.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include "runtime/dist/dist.h"

namespace {

float value(int rank, size_t i) { return static_cast<float>(static_cast<int>((i * 7 + static_cast<size_t>(rank) * 13) % 101) - 50); }

std::vector<float> filled(int rank, size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = value(rank, i);
  return v;
}

// The first element of `got` that is not the mean, or -1.
int64_t first_wrong(const std::vector<float>& got, int ranks) {
  float scale = 1.0f / static_cast<float>(ranks);
  for (size_t i = 0; i < got.size(); ++i) {
    float sum = 0;
    for (int r = 0; r < ranks; ++r) sum += value(r, i);
    if (got[i] != sum * scale) return static_cast<int64_t>(i);
  }
  return -1;
}

bool check(const std::vector<float>& got, const stag::rt::Collective& dp, const char* how) {
  int64_t i = first_wrong(got, dp.ranks);
  if (i < 0) return true;
  fmt::print(stderr, "rank {}: {} floats averaged {}: element {} is {}\n", dp.rank, got.size(), how, i, got[static_cast<size_t>(i)]);
  return false;
}

// Around 2^k and 2^k ± 1 for the chunk and swap sizes, odd sizes for blocks of unequal length.
const std::vector<size_t> kSizes = {1, 2, 3, 15, 16, 17, 1000, 8191, 8192, 8193, 16383, 16384, 16385, 32767, 32768, 32769,
                                    65535, 65536, 65537, 131071, 131072, 131073, 3 * 65536 + 5, 1 << 20, (1 << 22) + 3};

// Values whose sum depends on the order of the additions (magnitudes 2^-10 to 2^20, both signs):
// the ranks must still agree to the bit, and shared memory must add in the ring's order.
float rough(int rank, size_t i) {
  auto h = static_cast<uint32_t>((i + 1) * 2654435761u ^ static_cast<uint32_t>(rank + 1) * 40503u);
  return std::ldexp(static_cast<float>(h % 1000003) / 1000003.0f - 0.5f, static_cast<int>(h % 31) - 10);
}

uint64_t hash(const std::vector<float>& v) {
  uint64_t h = 1469598103934665603u;
  for (float x : v) h = (h ^ std::bit_cast<uint32_t>(x)) * 1099511628211u;
  return h;
}

// Bucket 0 goes through shared memory (when there is any), bucket 99 by the ring: the same
// buffer both ways must give the same bits, and every rank the same bits.
bool check_order(const stag::rt::Collective& dp, size_t n) {
  std::vector<float> a(n), b(n);
  for (size_t i = 0; i < n; ++i) a[i] = b[i] = rough(dp.rank, i);
  dp.start_average(0, a);
  dp.start_average(99, b);
  dp.finish_average(0);
  dp.finish_average(99);
  bool same = a == b;
  for (uint64_t other : dp.gather(hash(a))) same = same && other == hash(a);
  if (!same) fmt::print(stderr, "rank {}: {} floats of rough values: shared memory and ring, or the ranks, differ\n", dp.rank, n);
  return same;
}

}  // namespace

int main(int argc, char** argv) {
  bool messages = argc > 1 && std::string_view(argv[1]) == "--messages";
  stag::dist::Session session(60, !messages);
  const stag::rt::Collective& dp = session.collective();
  bool ok = true;
  for (size_t n : kSizes) {
    std::vector<float> v = filled(dp.rank, n);
    dp.average(v);
    ok = check(v, dp, "alone") && ok;
  }
  // Every size in flight at once, as buckets: started in order, finished in order.
  std::vector<std::vector<float>> all;
  for (size_t n : kSizes) all.push_back(filled(dp.rank, n));
  for (size_t b = 0; b < all.size(); ++b) dp.start_average(static_cast<int>(b), all[b]);
  for (size_t b = 0; b < all.size(); ++b) dp.finish_average(static_cast<int>(b));
  for (const auto& v : all) ok = check(v, dp, "in flight together") && ok;
  for (size_t n : {size_t{17}, size_t{16385}, size_t{131073}, size_t{1} << 20}) ok = check_order(dp, n) && ok;
  if (ok && dp.rank == 0) fmt::print("{} processes{}: {} sizes averaged exactly, alone and together\n", dp.ranks, messages ? " (messages only)" : "", kSizes.size());
  return ok ? 0 : 1;
}
