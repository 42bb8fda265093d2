// The split points' runtime side: buckets staged in one buffer each and all-reduced through the
// process's Collective.

#include "runtime/exchange.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/error.h"
#include "runtime/trainer.h"

namespace {
stag::rt::BucketExchange* g_active = nullptr;
}  // namespace

extern "C" void stag_exchange(int64_t op, int64_t bucket, float* const* buffers, const int64_t* counts, int64_t n) {
  if (!g_active) return;
  std::span<float* const> bufs(buffers, static_cast<size_t>(n));
  std::span<const int64_t> sizes(counts, static_cast<size_t>(n));
  if (op == 0) g_active->start(static_cast<int>(bucket), bufs, sizes);
  else g_active->wait(static_cast<int>(bucket), bufs, sizes);
}

namespace stag::rt {

BucketExchange::BucketExchange(const Collective& dp) : dp_(dp) {
  if (g_active) throw Error("only one bucket exchange can be active at a time");
  g_active = this;
}

BucketExchange::~BucketExchange() { g_active = nullptr; }

void BucketExchange::start(int bucket, std::span<float* const> buffers, std::span<const int64_t> counts) {
  if (static_cast<size_t>(bucket) >= staged_.size()) staged_.resize(static_cast<size_t>(bucket) + 1);
  Staged& st = staged_[static_cast<size_t>(bucket)];
  std::span<const float> send;
  if (buffers.size() == 1 && bucket != 0) {
    send = {buffers[0], static_cast<size_t>(counts[0])};
  } else {
    st.values.clear();
    for (size_t i = 0; i < buffers.size(); ++i) st.values.insert(st.values.end(), buffers[i], buffers[i] + counts[i]);
    if (bucket == 0) st.values.push_back(rider);
    send = st.values;
  }
  st.sum.resize(send.size());
  dp_.start_sum(bucket, send, st.sum);
}

void BucketExchange::wait(int bucket, std::span<float* const> buffers, std::span<const int64_t> counts) {
  if (static_cast<size_t>(bucket) >= staged_.size()) throw Error(fmt::format("bucket {} was waited for but never started", bucket));
  dp_.finish_sum(bucket);
  const std::vector<float>& sum = staged_[static_cast<size_t>(bucket)].sum;
  // As Collective::average: the sum times 1/ranks, so that both forms agree bit for bit.
  float scale = 1.0f / static_cast<float>(dp_.ranks);
  const float* at = sum.data();
  for (size_t i = 0; i < buffers.size(); ++i) {
    std::transform(at, at + counts[i], buffers[i], [scale](float x) { return x * scale; });
    at += counts[i];
  }
  if (bucket == 0) rider = sum.back() * scale;
}

}  // namespace stag::rt
