// Peak loops: twelve independent accumulators (more than an FMA's latency times its throughput
// on these cores), each function compiled for its ISA with GCC's target attribute and called
// only where CPUID has it.

#include "tools/peak.h"

#include <immintrin.h>

#include <chrono>
#include <thread>

#include "compiler/target/host.h"

namespace stag::cli {

namespace {

constexpr int64_t kIters = 20'000'000;

__attribute__((target("avx512f"))) float fma512(int64_t n) {
  __m512 a[12], x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(0.9999999f);
  for (auto& v : a) v = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; ++i)
    for (auto& v : a) v = _mm512_fmadd_ps(x, y, v);
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f,avx512bf16"))) float dpbf16(int64_t n) {
  __m512 a[12];
  __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3f80);
  for (auto& v : a) v = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; ++i)
    for (auto& v : a) v = _mm512_dpbf16_ps(v, x, y);
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) float fma256(int64_t n) {
  __m256 a[12], x = _mm256_set1_ps(1.0000001f), y = _mm256_set1_ps(0.9999999f);
  for (auto& v : a) v = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; ++i)
    for (auto& v : a) v = _mm256_fmadd_ps(x, y, v);
  __m256 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

struct Loop {
  const char* unit;
  Isa needs;
  float (*run)(int64_t);
  double flops_per_iter;  // 12 accumulators x lanes x 2 (a multiply and an add; a bf16 pair: 4)
};

const Loop kLoops[] = {
    {"f32 FMA (avx2, 8 lanes)", Isa::avx2, fma256, 12 * 8 * 2},
    {"f32 FMA (avx512, 16 lanes)", Isa::avx512, fma512, 12 * 16 * 2},
    {"bf16 VDPBF16PS (avx512bf16, 32 products)", Isa::avx512bf16, dpbf16, 12 * 16 * 4},
};

volatile float sink;

double gflops(const Loop& l, int threads) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back([&] { sink = l.run(kIters); });
  for (auto& t : pool) t.join();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return l.flops_per_iter * static_cast<double>(kIters) * threads / s / 1e9;
}

}  // namespace

std::vector<Peak> measure_peaks(int threads) {
  std::vector<Peak> out;
  for (const Loop& l : kLoops) {
    if (detected_isa() < l.needs) continue;
    l.run(kIters / 20);  // wakes the unit up (AVX-512 clocks, the OS's lazy state)
    for (int t : {1, threads})
      if (t == 1 || threads > 1) out.push_back({l.unit, t, gflops(l, t)});
  }
  return out;
}

}  // namespace stag::cli
