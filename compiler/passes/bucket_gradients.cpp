// Data-parallel split points: the gradients grouped into buckets in the order the backward
// computes them, each bucket's all-reduce started right after its last gradient (so it travels
// while the rest of the backward runs) and waited for in update just before its first read.
// Runs on each pair of functions `gradients` and `update` (a GAN's `d_` and `g_` pairs too) of a
// program whose attribute dp.bucket_bytes is positive (train_step.h, build_split_train_step);
// other programs pass through unchanged. The buckets are numbered across the program, and each
// is recorded in the attribute dp.bucket.N ("FUNCTION VALUE ...") for the runtime, which lays a
// bucket's values out side by side and averages them in place (runtime/exchange.h).

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "compiler/passes/pass.h"

namespace stag {

namespace {

using kir::Exchange;
using kir::Kernel;

int function_index(const kir::Program& p, const std::string& name) {
  for (size_t f = 0; f < p.functions.size(); ++f)
    if (p.functions[f].name == name) return static_cast<int>(f);
  return -1;
}

int64_t bucket_bytes(const kir::Program& p) {
  for (const auto& [key, value] : p.attrs)
    if (key == "dp.bucket_bytes" && std::holds_alternative<int64_t>(value)) return std::get<int64_t>(value);
  return 0;
}

// What the processes average: the loss and every gradient, and in a GAN's steps the other f32
// scalars (D's accuracies and mean probabilities), which the GAN trainer logs averaged.
bool exchanged(const kir::Buffer& b, bool gan) {
  return b.name == "loss" || b.name.starts_with("grad.") || (gan && b.type.dtype == DType::f32 && b.type.rank() == 0);
}

// The buffers of function `f` of `kind` that are exchanged, by name.
std::map<std::string, int> exchanged_buffers(const kir::Program& p, int f, kir::BufKind kind, bool gan) {
  std::map<std::string, int> out;
  for (size_t i = 0; i < p.buffers.size(); ++i)
    if (p.buffers[i].function == f && p.buffers[i].kind == kind && exchanged(p.buffers[i], gan)) out[p.buffers[i].name] = static_cast<int>(i);
  return out;
}

// The position just before (`before`) or just after kernel k, moved out of the loop around it
// if any: a split point never runs inside a loop.
int position(const kir::Function& fn, int k, bool before) {
  for (const auto& l : fn.loops)
    if (l.first <= k && k < l.last) return before ? l.first : l.last;
  return before ? k : k + 1;
}

// For every buffer of `ids`, the position after the last kernel writing or reading it (0 when
// none does): the all-reduce runs in place, so nothing may touch the value once it started.
std::vector<int> ready_at(const kir::Function& fn, const std::vector<int>& ids) {
  std::vector<int> at(ids.size(), 0);
  for (size_t k = 0; k < fn.kernels.size(); ++k) {
    auto a = kir::accesses(fn.kernels[k]);
    for (size_t i = 0; i < ids.size(); ++i)
      if (std::find(a.writes.begin(), a.writes.end(), ids[i]) != a.writes.end() ||
          std::find(a.reads.begin(), a.reads.end(), ids[i]) != a.reads.end())
        at[i] = position(fn, static_cast<int>(k), false);
  }
  return at;
}

// Kernels inserted before the kernels at the given positions (the end: size()), in the order
// given among equal positions; the loops keep spanning the same kernels.
void insert_kernels(kir::Function& fn, std::vector<std::pair<int, Kernel>> inserts) {
  std::stable_sort(inserts.begin(), inserts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Kernel> out;
  std::vector<int> moved(fn.kernels.size() + 1);
  size_t next = 0;
  for (size_t k = 0; k <= fn.kernels.size(); ++k) {
    for (; next < inserts.size() && inserts[next].first == static_cast<int>(k); ++next) out.push_back(std::move(inserts[next].second));
    moved[k] = static_cast<int>(out.size());
    if (k < fn.kernels.size()) out.push_back(std::move(fn.kernels[k]));
  }
  for (auto& l : fn.loops) l.first = moved[static_cast<size_t>(l.first)], l.last = moved[static_cast<size_t>(l.last - 1)] + 1;
  fn.kernels = std::move(out);
}

struct Bucket {
  std::vector<std::string> names;  ///< in the order the backward finishes them
  int ready = 0;                   ///< the gradients' kernel position after the last of them
};

// The first bucket's limit, as DDP's: the last layers' gradients start their all-reduce early
// even when the whole model fits in one bucket of `limit`.
constexpr int64_t kFirstBucketBytes = 1 << 20;

// Buckets of at most `limit` bytes (a larger gradient alone), filled in production order.
std::vector<Bucket> fill_buckets(const kir::Program& p, const std::map<std::string, int>& outs, const kir::Function& fn, int64_t limit) {
  std::vector<std::string> names;
  std::vector<int> ids;
  for (const auto& [name, id] : outs) names.push_back(name), ids.push_back(id);
  std::vector<int> ready = ready_at(fn, ids);
  std::vector<size_t> order(ids.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  // The loss first: it rides in bucket 0, which carries the stop vote too.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::pair(names[a] != "loss", ready[a]) < std::pair(names[b] != "loss", ready[b]);
  });
  std::vector<Bucket> buckets;
  int64_t bytes = 0;
  for (size_t i : order) {
    int64_t size = p.buffers[static_cast<size_t>(ids[i])].bytes();
    int64_t room = buckets.size() == 1 ? std::min(limit, kFirstBucketBytes) : limit;
    if (buckets.empty() || (bytes > 0 && bytes + size > room)) buckets.emplace_back(), bytes = 0;
    buckets.back().names.push_back(names[i]);
    buckets.back().ready = std::max(buckets.back().ready, ready[i]);
    bytes += size;
  }
  return buckets;
}

Kernel split_point(Exchange::Op op, int bucket, std::vector<int> buffers, std::string origin) {
  Kernel k;
  k.name = fmt::format("exchange.{}.b{}", op == Exchange::Op::start ? "start" : "wait", bucket);
  k.origin = std::move(origin);
  k.exchange = Exchange{op, bucket, std::move(buffers)};
  return k;
}

// Where update first reads any of `ids` (before it), or its end.
int first_read(const kir::Function& fn, const std::vector<int>& ids) {
  for (size_t k = 0; k < fn.kernels.size(); ++k) {
    auto a = kir::accesses(fn.kernels[k]);
    for (int id : ids)
      if (std::find(a.reads.begin(), a.reads.end(), id) != a.reads.end()) return position(fn, static_cast<int>(k), true);
  }
  return static_cast<int>(fn.kernels.size());
}

std::string kernel_name(const kir::Function& fn, int at) {
  return at < static_cast<int>(fn.kernels.size()) ? fn.kernels[static_cast<size_t>(at)].name : "the end";
}

// The buckets of one pair of functions, numbered from `first`; how many it made.
int bucket_pair(kir::Program& p, int g, int u, int64_t limit, int first, PassCounters& c) {
  bool gan = p.functions[static_cast<size_t>(g)].name != "gradients";
  auto outs = exchanged_buffers(p, g, kir::BufKind::Output, gan), ins = exchanged_buffers(p, u, kir::BufKind::Input, false);
  for (const auto& [name, id] : outs)
    if (p.buffers[static_cast<size_t>(id)].type.dtype != DType::f32) return 0;  // the trainer says why
  for (const auto& [name, id] : ins)
    if (!outs.contains(name)) return 0;
  kir::Function &gf = p.functions[static_cast<size_t>(g)], &uf = p.functions[static_cast<size_t>(u)];
  std::vector<Bucket> buckets = fill_buckets(p, outs, gf, limit);
  std::vector<std::pair<int, Kernel>> starts, waits;
  for (size_t b = 0; b < buckets.size(); ++b) {
    int number = first + static_cast<int>(b);
    std::vector<int> out_ids, in_ids;
    for (const auto& n : buckets[b].names) {
      out_ids.push_back(outs.at(n));
      if (ins.contains(n)) in_ids.push_back(ins.at(n));
    }
    int after = buckets[b].ready;
    std::string when = after > 0 ? "after kernel " + gf.kernels[static_cast<size_t>(after - 1)].name : "at the start";
    starts.emplace_back(after, split_point(Exchange::Op::start, number, out_ids, "all-reduce started " + when));
    // A bucket update never reads (a GAN's accuracies) is awaited at update's end.
    int before = first_read(uf, in_ids);
    waits.emplace_back(before, split_point(Exchange::Op::wait, number, in_ids, "awaited before " + kernel_name(uf, before)));
    std::string record = gf.name;
    for (const auto& n : buckets[b].names) record += " " + n;
    p.attrs.emplace_back(fmt::format("dp.bucket.{}", number), record);
    c.add("buckets");
    c.add("values exchanged", static_cast<int64_t>(out_ids.size()));
  }
  insert_kernels(gf, std::move(starts));
  insert_kernels(uf, std::move(waits));
  return static_cast<int>(buckets.size());
}

}  // namespace

bool bucket_gradients(kir::Program& p, PassCounters& c) {
  int64_t limit = bucket_bytes(p);
  if (limit <= 0) return false;
  int made = 0;
  for (const char* prefix : {"", "d_", "g_"}) {
    int g = function_index(p, std::string(prefix) + "gradients"), u = function_index(p, std::string(prefix) + "update");
    if (g >= 0 && u >= 0) made += bucket_pair(p, g, u, limit, made, c);
  }
  if (made == 0) return false;
  p.attrs.emplace_back("dp.buckets", static_cast<int64_t>(made));
  return true;
}

}  // namespace stag
