#pragma once
/// Memory as a user error: how much the machine can still give this process (MemAvailable and
/// the cgroup limits), how much a compiled model needs, and a clear failure when the second is
/// larger, before anything big is allocated.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.h"

namespace stag::rt {

struct Manifest;

/// A model that does not fit in the memory there is, or a bad STAG_MEMORY_AVAILABLE: the
/// user's to fix, so the command exits 1 with the message.
class MemoryError : public Error {
 public:
  using Error::Error;
};

/// "0 bytes", "512 bytes", "400.0 KB", "80.0 GB": decimal units, one decimal, as `df -H`.
std::string format_bytes(double bytes);

/// MemAvailable of /proc/meminfo's text, in bytes; nullopt when the line is missing or bad.
std::optional<int64_t> meminfo_available(std::string_view meminfo);
/// A cgroup byte count (memory.max, memory.current, memory.limit_in_bytes, ...): nullopt for
/// "max" (no limit) or text that is not a number.
std::optional<int64_t> cgroup_bytes(std::string_view text);
/// The value of `key` in a memory.stat file ("inactive_file 123"); nullopt when absent.
std::optional<int64_t> cgroup_stat(std::string_view stat, std::string_view key);
/// What one cgroup can still give, never negative: limit - usage, where the usage leaves out the
/// inactive page cache the kernel reclaims before it kills (`stat`'s `stat_key`, when readable),
/// as the container runtimes' "working set" does. nullopt when limit or usage is absent or unlimited.
std::optional<int64_t> cgroup_room(std::optional<std::string> limit, std::optional<std::string> usage,
                                   std::optional<std::string> stat = std::nullopt, std::string_view stat_key = {});

/// A limit file, its usage file and its memory.stat, as absolute paths, and the stat's key of
/// the reclaimable page cache.
struct CgroupFiles {
  std::string limit, usage, stat, stat_key;
};
/// The cgroup files that bound this process, from the text of /proc/self/cgroup: its own cgroup
/// and every ancestor up to the mount's root, for v2 (memory.max, memory.current; also under
/// the hybrid layout's unified/; inactive_file) and v1 (memory.limit_in_bytes,
/// memory.usage_in_bytes; total_inactive_file).
std::vector<CgroupFiles> cgroup_memory_files(std::string_view proc_self_cgroup);

/// Reads a whole small file; nullopt when it cannot be read.
using ReadFile = std::function<std::optional<std::string>(const std::string& path)>;
/// The least of MemAvailable and every cgroup's room, reading files through `read`; nullopt
/// when none of them is known (then nothing is checked).
std::optional<int64_t> available_memory(const ReadFile& read);
/// The same for this process, unless STAG_MEMORY_AVAILABLE (bytes; empty is unset) says otherwise,
/// as tests do.
/// Throws MemoryError when that variable is not a number of bytes.
std::optional<int64_t> available_memory();

/// Whether a parameter is optimizer state: the trainer's non-trainable optim.* buffers.
bool is_optimizer_state(std::string_view param);

/// What a compiled model holds while it runs, in bytes (double, so that no sum overflows).
struct MemoryNeed {
  double parameters = 0;
  double optimizer_state = 0;  ///< the non-trainable parameters named optim.*
  double workspace = 0;
  double inputs_outputs = 0;  ///< of the function that needs most of them

  double total() const { return parameters + optimizer_state + workspace + inputs_outputs; }
  /// "parameters 80.0 GB, optimizer state 0 bytes, workspace 1.2 MB, inputs and outputs 4.8 MB"
  std::string parts() const;
};

MemoryNeed memory_need(const Manifest& m);
/// Throws MemoryError naming `model`, what it needs and what is available, when `need` does not
/// fit in `available` (a nullopt `available` is unknown, and fits).
void check_memory(const MemoryNeed& need, std::optional<int64_t> available, const std::string& model);

}  // namespace stag::rt
