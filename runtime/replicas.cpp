// The host side of a data-parallel step shared by the training loops: rows, averages, votes and
// replica hashes.

#include "runtime/replicas.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <csignal>

#include "runtime/error.h"

namespace stag::rt {

Tensor rows_of(const Tensor& t, int64_t start, int64_t count) {
  Shape shape = t.shape();
  int64_t row = t.nbytes() / shape[0];
  shape[0] = count;
  Tensor out = Tensor::uninitialized(t.dtype(), shape);
  std::copy_n(t.bytes().begin() + start * row, count * row, out.bytes().begin());
  return out;
}

float stop_vote(int signal) { return signal == SIGTERM ? 1024.f : signal != 0 ? 1.f : 0.f; }

int agreed_stop(float mean, int ranks) {
  long votes = std::lround(static_cast<double>(mean) * ranks);
  return votes >= 1024 ? SIGTERM : votes > 0 ? SIGINT : 0;
}

float average_over_ranks(const Collective& dp, std::span<Tensor* const> shared, float rider, std::vector<float>& buffer) {
  size_t n = 0;
  for (Tensor* t : shared) {
    if (t->dtype() != DType::f32) throw Error(fmt::format("data parallelism averages f32 gradients; one is {}", t->type_string()));
    n += static_cast<size_t>(t->numel());
  }
  buffer.resize(n + 1);
  float* at = buffer.data();
  for (Tensor* t : shared) at = std::copy(t->values<float>().begin(), t->values<float>().end(), at);
  *at = rider;
  dp.average(buffer);
  at = buffer.data();
  for (Tensor* t : shared) {
    auto v = t->values<float>();
    std::copy_n(at, v.size(), v.begin());
    at += v.size();
  }
  return buffer.back();
}

namespace {

// BatchNorm's running statistics: per process under data parallelism (as DDP's batch statistics
// without SyncBatchNorm), so not part of what the replicas share.
bool per_process(const std::string& name) { return name.ends_with(".running_mean") || name.ends_with(".running_var"); }

}  // namespace

uint64_t params_hash(Model& model) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < model.params().size(); ++i) {
    if (per_process(model.manifest().params[i].name)) continue;
    for (std::byte c : model.params()[i].bytes()) h = (h ^ static_cast<uint64_t>(c)) * 0x100000001b3ULL;
  }
  return h;
}

void check_replicas(const Collective& dp, Model& model, int64_t step) {
  auto hashes = dp.gather(params_hash(model));
  for (size_t r = 1; r < hashes.size(); ++r)
    if (hashes[r] != hashes[0])
      throw Error(fmt::format("step {}: the replicas differ (--check-replicas): rank 0's parameters hash to {:016x}, "
                              "rank {}'s to {:016x}", step, hashes[0], r, hashes[r]));
}

}  // namespace stag::rt
