// The profiler's counters and the C entry points profiling builds call.

#include "runtime/profile.h"

#include <fmt/format.h>

#include <chrono>

#include "runtime/error.h"

namespace {

stag::rt::Profiler* g_active = nullptr;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

extern "C" {
void stag_profile_enter(int64_t function) {
  if (g_active) g_active->enter(function);
}
void stag_profile_leave(int64_t function) {
  if (g_active) g_active->leave(function);
}
void stag_profile_begin(int64_t kernel) {
  if (g_active) g_active->begin(kernel);
}
void stag_profile_end(int64_t kernel) {
  if (g_active) g_active->end(kernel);
}
}

namespace stag::rt {

Profiler::Profiler(const Manifest& m, const std::vector<std::string>& functions) : manifest_(m) {
  if (g_active) throw Error("only one profiler can be active at a time");
  for (size_t f = 0; f < manifest_.functions.size(); ++f) {
    const FunctionSpec& spec = manifest_.functions[f];
    FunctionRow row{&spec};
    for (const auto& name : functions) row.profiled |= name == spec.name;
    if (row.profiled && spec.kernels.empty())
      throw Error(fmt::format("model {}: function '{}' has no kernel table to profile", manifest_.model, spec.name));
    functions_.push_back(row);
    for (const auto& k : spec.kernels) kernels_.push_back({&k, static_cast<int>(f)});
  }
  origin_ns_ = now_ns();
  g_active = this;
}

Profiler::~Profiler() { g_active = nullptr; }

// Functions do not nest and kernels do not nest, so one start time of each kind suffices. A
// call abandoned by an exception leaves a start that the next call overwrites.
void Profiler::enter(int64_t) {
  function_start_ns_ = now_ns();
}

void Profiler::leave(int64_t function) {
  int64_t end = now_ns();
  if (function < 0 || static_cast<size_t>(function) >= functions_.size()) return;
  FunctionRow& row = functions_[static_cast<size_t>(function)];
  if (!row.profiled) return;
  ++row.calls;
  row.last_start_ns = function_start_ns_ - origin_ns_;
  row.last_ns = end - function_start_ns_;
  row.total_ns += row.last_ns;
}

void Profiler::begin(int64_t) {
  kernel_start_ns_ = now_ns();
}

void Profiler::end(int64_t kernel) {
  int64_t end = now_ns();
  if (kernel < 0 || static_cast<size_t>(kernel) >= kernels_.size()) return;
  KernelRow& row = kernels_[static_cast<size_t>(kernel)];
  if (!functions_[static_cast<size_t>(row.function)].profiled) return;
  ++row.calls;
  row.last_start_ns = kernel_start_ns_ - origin_ns_;
  row.last_ns = end - kernel_start_ns_;
  row.total_ns += row.last_ns;
}

}  // namespace stag::rt
