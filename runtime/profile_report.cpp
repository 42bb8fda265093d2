// What the profiler shows: the perf-report-like tables and the Chrome trace.

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "runtime/profile.h"

namespace stag::rt {

namespace {

std::string clip(const std::string& s, size_t width) {
  return s.size() <= width ? s : s.substr(0, width - 3) + "...";
}

// A rate over `seconds`, or "-" for kernels that move no floats (copies of indices, counters).
std::string rate(double amount, double seconds) {
  if (amount <= 0 || seconds <= 0) return "-";
  return fmt::format("{:.2f}", amount / seconds / 1e9);
}

}  // namespace

std::string Profiler::report(int top) const {
  std::string out;
  for (size_t f = 0; f < functions_.size(); ++f) {
    const FunctionRow& fn = functions_[f];
    if (!fn.profiled || fn.calls == 0) continue;
    std::vector<const KernelRow*> rows;
    int64_t kernels_ns = 0;
    for (const auto& k : kernels_)
      if (k.function == static_cast<int>(f)) {
        rows.push_back(&k);
        kernels_ns += k.total_ns;
      }
    std::stable_sort(rows.begin(), rows.end(), [](const KernelRow* a, const KernelRow* b) { return a->total_ns > b->total_ns; });
    double fn_ms = static_cast<double>(fn.total_ns) / 1e6;
    out += fmt::format("profile of {}: {} call{}, {:.3f} ms a call on average; {} kernels, {:.1f}% of the time inside them\n",
                       fn.spec->name, fn.calls, fn.calls == 1 ? "" : "s", fn_ms / static_cast<double>(fn.calls), rows.size(),
                       100.0 * static_cast<double>(kernels_ns) / static_cast<double>(std::max<int64_t>(1, fn.total_ns)));
    size_t shown = std::min(rows.size(), static_cast<size_t>(std::max(0, top)));
    size_t name_w = 6, origin_w = 6;
    for (size_t i = 0; i < shown; ++i) {
      name_w = std::max(name_w, rows[i]->spec->name.size());
      origin_w = std::max(origin_w, std::min<size_t>(40, rows[i]->spec->origin.size()));
    }
    auto percent = [&](int64_t ns) { return 100.0 * static_cast<double>(ns) / static_cast<double>(std::max<int64_t>(1, fn.total_ns)); };
    out += fmt::format("  {:<{}}  {:<{}}  {:>8}  {:>10}  {:>6}  {:>10}  {:>12}  {:>8}  {:>8}\n", "kernel", name_w, "origin",
                       origin_w, "calls", "total ms", "%", "µs/call", "flop/call", "GFLOP/s", "GB/s");
    for (size_t i = 0; i < shown; ++i) {
      const KernelRow& k = *rows[i];
      double seconds = static_cast<double>(k.total_ns) / 1e9, calls = static_cast<double>(std::max<int64_t>(1, k.calls));
      out += fmt::format("  {:<{}}  {:<{}}  {:>8}  {:>10.3f}  {:>6.2f}  {:>10.1f}  {:>12.0f}  {:>8}  {:>8}\n", k.spec->name,
                         name_w, clip(k.spec->origin, origin_w), origin_w, k.calls, seconds * 1e3, percent(k.total_ns),
                         seconds * 1e6 / calls, k.spec->flops, rate(k.spec->flops * static_cast<double>(k.calls), seconds),
                         rate(k.spec->bytes * static_cast<double>(k.calls), seconds));
    }
    if (shown < rows.size()) {
      int64_t calls = 0, ns = 0;
      double flops = 0, bytes = 0;
      for (size_t i = shown; i < rows.size(); ++i) {
        calls += rows[i]->calls, ns += rows[i]->total_ns;
        flops += rows[i]->spec->flops * static_cast<double>(rows[i]->calls);
        bytes += rows[i]->spec->bytes * static_cast<double>(rows[i]->calls);
      }
      // Per call here means per call of any of them: the rest as one average kernel.
      double seconds = static_cast<double>(ns) / 1e9, n = static_cast<double>(std::max<int64_t>(1, calls));
      out += fmt::format("  {:<{}}  {:>8}  {:>10.3f}  {:>6.2f}  {:>10.1f}  {:>12.0f}  {:>8}  {:>8}\n",
                         fmt::format("({} more kernels)", rows.size() - shown), name_w + 2 + origin_w, calls, seconds * 1e3,
                         percent(ns), seconds * 1e6 / n, flops / n, rate(flops, seconds), rate(bytes, seconds));
    }
  }
  return out;
}

std::string Profiler::trace_json() const {
  using nlohmann::json;
  json events = json::array();
  auto us = [](int64_t ns) { return static_cast<double>(ns) / 1e3; };
  for (size_t f = 0; f < functions_.size(); ++f) {
    const FunctionRow& fn = functions_[f];
    if (!fn.profiled || fn.calls == 0) continue;
    int tid = static_cast<int>(f) + 1;
    events.push_back({{"ph", "M"}, {"pid", 1}, {"tid", tid}, {"name", "thread_name"},
                      {"args", {{"name", fn.spec->name + " (last call)"}}}});
    events.push_back({{"ph", "X"}, {"pid", 1}, {"tid", tid}, {"name", fn.spec->name}, {"cat", "function"},
                      {"ts", us(fn.last_start_ns)}, {"dur", us(fn.last_ns)},
                      {"args", {{"calls", fn.calls}, {"total_ms", static_cast<double>(fn.total_ns) / 1e6}}}});
    for (const auto& k : kernels_) {
      if (k.function != static_cast<int>(f) || k.calls == 0) continue;
      double seconds = static_cast<double>(k.total_ns) / 1e9, calls = static_cast<double>(k.calls);
      json args = {{"origin", k.spec->origin}, {"calls", k.calls}, {"total_ms", seconds * 1e3},
                   {"flops_per_call", k.spec->flops}, {"bytes_per_call", k.spec->bytes}};
      if (seconds > 0) {
        args["gflops"] = k.spec->flops * calls / seconds / 1e9;
        args["gbytes_per_s"] = k.spec->bytes * calls / seconds / 1e9;
      }
      events.push_back({{"ph", "X"}, {"pid", 1}, {"tid", tid}, {"name", k.spec->name}, {"cat", "kernel"},
                        {"ts", us(k.last_start_ns)}, {"dur", us(k.last_ns)}, {"args", args}});
    }
  }
  json trace = {{"traceEvents", events}, {"displayTimeUnit", "ns"},
                {"otherData", {{"model", manifest_.model}}}};
  return trace.dump(1);
}

}  // namespace stag::rt
