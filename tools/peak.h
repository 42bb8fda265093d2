#pragma once
/// The host's arithmetic peaks, by loops of independent multiply-adds on every vector unit the
/// CPU has: the bar `stag bench --matmul` figures are read against.

#include <string>
#include <vector>

namespace stag::cli {

struct Peak {
  std::string unit;  ///< "f32 FMA (avx512)", "bf16 VDPBF16PS", ...
  int threads = 1;
  double gflops = 0;
};

/// Each unit the host has, on 1 and on `threads` threads.
std::vector<Peak> measure_peaks(int threads);

}  // namespace stag::cli
