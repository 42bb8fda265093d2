// The split points' runtime side: the buckets laid out side by side in one block, each averaged
// in place through the process's Collective.

#include "runtime/exchange.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <sstream>

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

namespace {

constexpr size_t kAlign = kTensorAlignment / sizeof(float);

size_t aligned(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

const BufferSpec& output_of(const std::vector<FunctionSpec>& functions, const std::string& function, const std::string& name) {
  for (const auto& f : functions)
    if (f.name == function)
      for (const auto& o : f.outputs)
        if (o.name == name) {
          if (o.dtype != DType::f32) throw Error(fmt::format("data parallelism averages f32 values; {} is {}", name, dtype_name(o.dtype)));
          return o;
        }
  throw Error(fmt::format("a bucket holds '{}', which {} does not output", name, function));
}

int64_t numel(const BufferSpec& b) {
  int64_t n = 1;
  for (int64_t d : b.shape) n *= d;
  return n;
}

}  // namespace

std::vector<BucketSpec> bucket_specs(const Manifest& m) {
  std::vector<BucketSpec> out;
  for (size_t b = 0;; ++b) {
    auto it = m.attrs.find(fmt::format("dp.bucket.{}", b));
    if (it == m.attrs.end()) return out;
    std::istringstream words(nlohmann::json::parse(it->second).get<std::string>());
    BucketSpec spec;
    words >> spec.function;
    for (std::string v; words >> v;) spec.values.push_back(v);
    out.push_back(std::move(spec));
  }
}

BucketExchange::BucketExchange(const Collective& dp, std::vector<BucketSpec> buckets, const std::vector<FunctionSpec>& functions)
    : dp_(dp), buckets_(std::move(buckets)) {
  size_t at = 0;
  for (const BucketSpec& b : buckets_) {
    Placed& p = placed_.emplace_back();
    p.begin = at;
    for (const auto& name : b.values) {
      p.offsets.push_back(at);
      at = aligned(at + static_cast<size_t>(numel(output_of(functions, b.function, name))));
      if (name == "loss") p.rider = static_cast<int64_t>(at), at += kAlign;
    }
    p.end = at;
  }
  block_ = Tensor(DType::f32, {static_cast<int64_t>(at)});
  if (g_active) throw Error("only one bucket exchange can be active at a time");
  g_active = this;
}

BucketExchange::~BucketExchange() { g_active = nullptr; }

std::vector<Tensor> BucketExchange::outputs(const FunctionSpec& f) {
  std::vector<Tensor> out;
  for (const auto& o : f.outputs) out.push_back(Tensor::uninitialized(o.dtype, o.shape));
  float* block = block_.values<float>().data();
  for (size_t b = 0; b < buckets_.size(); ++b) {
    if (buckets_[b].function != f.name) continue;
    for (size_t v = 0; v < buckets_[b].values.size(); ++v) {
      auto o = std::find_if(f.outputs.begin(), f.outputs.end(), [&](const BufferSpec& s) { return s.name == buckets_[b].values[v]; });
      out[static_cast<size_t>(o - f.outputs.begin())] = Tensor::view(o->dtype, o->shape, block + placed_[b].offsets[v]);
    }
  }
  return out;
}

bool BucketExchange::holds(const Placed& p, const float* at) const {
  const float* block = block_.values<float>().data();
  return std::any_of(p.offsets.begin(), p.offsets.end(), [&](size_t o) { return block + o == at; });
}

void BucketExchange::start(int bucket, std::span<float* const> buffers, std::span<const int64_t>) {
  if (bucket < 0 || static_cast<size_t>(bucket) >= placed_.size()) throw Error(fmt::format("bucket {} is not in the program's manifest", bucket));
  const Placed& p = placed_[static_cast<size_t>(bucket)];
  float* block = block_.values<float>().data();
  for (size_t i = 0; i < buffers.size(); ++i)
    if (i >= p.offsets.size() || buffers[i] != block + p.offsets[i])
      throw Error(fmt::format("bucket {}'s values are not in the exchange's block: run {} into BucketExchange::outputs", bucket,
                              buckets_[static_cast<size_t>(bucket)].function));
  if (p.rider >= 0) block[p.rider] = rider;
  dp_.start_average(bucket, std::span<float>(block + p.begin, p.end - p.begin));
}

void BucketExchange::wait(int bucket, std::span<float* const> buffers, std::span<const int64_t>) {
  if (bucket < 0 || static_cast<size_t>(bucket) >= placed_.size()) throw Error(fmt::format("bucket {} is not in the program's manifest", bucket));
  const Placed& p = placed_[static_cast<size_t>(bucket)];
  for (float* b : buffers)
    if (!holds(p, b)) throw Error(fmt::format("bucket {} is awaited for a value outside the exchange's block", bucket));
  dp_.finish_average(bucket);
  if (p.rider >= 0) rider = block_.values<float>()[static_cast<size_t>(p.rider)];
}

}  // namespace stag::rt
