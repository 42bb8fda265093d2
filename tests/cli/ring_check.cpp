// The ring all-reduce's means, exact to the bit, under mpirun at any process count: every rank
// averages buffers whose sizes straddle the ring's blocks, chunks and the two-process swap, one at
// a time (Collective::average) and several in flight at once (start_average, finish_average).
// The values are small integers, so every partial sum is exact whatever the ring's order and the
// mean is the exact sum times 1/ranks, rounded once: each rank checks every element against it.
//   mpirun -np N stag_ring_check      (exit 0: all equal; 1: the first difference is printed)
#include <fmt/format.h>

#include <cstdint>
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

}  // namespace

int main() {
  stag::dist::Session session(60);
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
  if (ok && dp.rank == 0) fmt::print("{} processes: {} sizes averaged exactly, alone and together\n", dp.ranks, kSizes.size());
  return ok ? 0 : 1;
}
