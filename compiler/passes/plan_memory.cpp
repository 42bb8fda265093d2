// Memory planning: every temporary gets an offset in one workspace arena, so that buffers
// whose lifetimes (first to last kernel touching them) do not overlap share bytes. A kernel
// never writes over an operand it reads (in place): with equal pointers LLVM's runtime alias
// check fails and the kernel runs its scalar loop (a dropout mask ran 7x slower so).

#include <algorithm>

#include "compiler/passes/pass.h"

namespace stag {

namespace {

constexpr int64_t kAlign = 64;  // a cache line, and the widest vector load
int64_t aligned(int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

}  // namespace

bool plan_memory(kir::Program& p, PassCounters& c) {
  int64_t before = p.workspace_bytes, peak = 0;
  for (size_t f = 0; f < p.functions.size(); ++f) {
    std::vector<kir::Interval> live = kir::live_intervals(p, static_cast<int>(f));
    // Largest first: big buffers placed early leave holes the small ones fill.
    std::stable_sort(live.begin(), live.end(), [&](const kir::Interval& a, const kir::Interval& b) {
      return p.buffers[a.buffer].bytes() > p.buffers[b.buffer].bytes();
    });
    std::vector<const kir::Interval*> placed;
    for (const auto& iv : live) {
      kir::Buffer& buf = p.buffers[iv.buffer];
      int64_t size = aligned(buf.bytes());
      std::vector<std::pair<int64_t, int64_t>> taken;  // [begin, end) of buffers live at the same time
      for (const auto* q : placed) {
        if (q->last < iv.first || iv.last < q->first) continue;
        const kir::Buffer& other = p.buffers[q->buffer];
        taken.emplace_back(other.offset, other.offset + aligned(other.bytes()));
      }
      auto fits = [&](int64_t at) {
        return std::none_of(taken.begin(), taken.end(), [&](const auto& t) { return at < t.second && t.first < at + size; });
      };
      std::vector<int64_t> candidates = {0};
      for (const auto& t : taken) candidates.push_back(t.second);
      std::sort(candidates.begin(), candidates.end());
      int64_t at = *std::find_if(candidates.begin(), candidates.end(), fits);
      buf.offset = at;
      peak = std::max(peak, at + size);
      placed.push_back(&iv);
    }
  }
  // Temporaries no kernel touches take no space.
  for (auto& b : p.buffers)
    if (b.kind == kir::BufKind::Temp && b.offset + b.bytes() > peak) b.offset = 0;
  p.workspace_bytes = peak;
  c.add("workspace bytes before planning", before);
  c.add("workspace bytes after planning (peak)", peak);
  return peak != before;
}

}  // namespace stag
