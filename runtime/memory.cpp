// What the machine can still give this process, what a compiled model needs, and the check.
#include "runtime/memory.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "runtime/model.h"

namespace stag::rt {

namespace {

std::string_view trim(std::string_view s) {
  const char* space = " \t\r\n";
  auto b = s.find_first_not_of(space);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(space) - b + 1);
}

/// A non-negative decimal integer and nothing else.
std::optional<int64_t> parse_count(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

std::optional<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return text.str();
}

/// "/a/b" -> {"/a/b", "/a", "/"}: a cgroup's limit holds for all its descendants.
std::vector<std::string> self_and_ancestors(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path.empty() || path[0] != '/') path = "/" + path;
  std::vector<std::string> out;
  for (;;) {
    out.push_back(path);
    if (path == "/") return out;
    auto slash = path.rfind('/');
    path = slash == 0 ? "/" : path.substr(0, slash);
  }
}

std::string join(const std::string& root, const std::string& dir, const char* file) {
  return dir == "/" ? fmt::format("{}/{}", root, file) : fmt::format("{}{}/{}", root, dir, file);
}

bool has_memory_controller(std::string_view controllers) {
  while (!controllers.empty()) {
    auto comma = controllers.find(',');
    if (controllers.substr(0, comma) == "memory") return true;
    if (comma == std::string_view::npos) break;
    controllers.remove_prefix(comma + 1);
  }
  return false;
}

void add_files(std::vector<CgroupFiles>& out, const std::string& root, const std::string& path, const char* limit,
               const char* usage, const char* cache_key) {
  for (const auto& dir : self_and_ancestors(path))
    out.push_back({join(root, dir, limit), join(root, dir, usage), join(root, dir, "memory.stat"), cache_key});
}

double buffer_bytes(const BufferSpec& b) {
  double n = static_cast<double>(dtype_size(b.dtype));
  for (int64_t d : b.shape) n *= static_cast<double>(d);
  return n;
}

double buffers_bytes(const std::vector<BufferSpec>& buffers) {
  double sum = 0;
  for (const auto& b : buffers) sum += buffer_bytes(b);
  return sum;
}

}  // namespace

std::string format_bytes(double bytes) {
  if (bytes < 1000) return fmt::format("{:.0f} bytes", bytes);
  const char* units[] = {"KB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
  size_t u = 0;
  bytes /= 1000;
  // Round first, so that 999.96 KB reads 1.0 MB rather than 1000.0 KB.
  while (bytes >= 999.95 && u + 1 < std::size(units)) bytes /= 1000, ++u;
  return fmt::format("{:.1f} {}", bytes, units[u]);
}

std::optional<int64_t> meminfo_available(std::string_view meminfo) {
  constexpr std::string_view key = "MemAvailable:";
  for (size_t at = 0; at < meminfo.size();) {
    size_t eol = std::min(meminfo.find('\n', at), meminfo.size());
    std::string_view line = meminfo.substr(at, eol - at);
    at = eol + 1;
    if (!line.starts_with(key)) continue;
    line = trim(line.substr(key.size()));
    if (!line.ends_with("kB")) return std::nullopt;
    auto kb = parse_count(trim(line.substr(0, line.size() - 2)));
    if (!kb || *kb > INT64_MAX / 1024) return std::nullopt;
    return *kb * 1024;
  }
  return std::nullopt;
}

std::optional<int64_t> cgroup_bytes(std::string_view text) { return parse_count(trim(text)); }

std::optional<int64_t> cgroup_stat(std::string_view stat, std::string_view key) {
  for (size_t at = 0; at < stat.size();) {
    size_t eol = std::min(stat.find('\n', at), stat.size());
    std::string_view line = stat.substr(at, eol - at);
    at = eol + 1;
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ' ')
      return parse_count(trim(line.substr(key.size())));
  }
  return std::nullopt;
}

std::optional<int64_t> cgroup_room(std::optional<std::string> limit, std::optional<std::string> usage,
                                   std::optional<std::string> stat, std::string_view stat_key) {
  if (!limit || !usage) return std::nullopt;
  auto l = cgroup_bytes(*limit), u = cgroup_bytes(*usage);
  if (!l || !u) return std::nullopt;
  int64_t used = *u;
  if (auto cache = stat ? cgroup_stat(*stat, stat_key) : std::nullopt) used -= std::min(*cache, used);
  return std::max<int64_t>(0, *l - used);
}

std::vector<CgroupFiles> cgroup_memory_files(std::string_view proc_self_cgroup) {
  std::vector<CgroupFiles> out;
  std::istringstream lines{std::string(proc_self_cgroup)};
  for (std::string line; std::getline(lines, line);) {
    // hierarchy-ID:controller-list:cgroup-path (man 7 cgroups)
    auto c1 = line.find(':'), c2 = line.find(':', c1 == std::string::npos ? c1 : c1 + 1);
    if (c1 == std::string::npos || c2 == std::string::npos) continue;
    std::string id = line.substr(0, c1), controllers = line.substr(c1 + 1, c2 - c1 - 1), path = line.substr(c2 + 1);
    if (id == "0" && controllers.empty()) {
      add_files(out, "/sys/fs/cgroup", path, "memory.max", "memory.current", "inactive_file");
      add_files(out, "/sys/fs/cgroup/unified", path, "memory.max", "memory.current", "inactive_file");
    } else if (has_memory_controller(controllers)) {
      add_files(out, "/sys/fs/cgroup/memory", path, "memory.limit_in_bytes", "memory.usage_in_bytes",
                "total_inactive_file");
    }
  }
  return out;
}

std::optional<int64_t> available_memory(const ReadFile& read) {
  std::optional<int64_t> least;
  auto consider = [&](std::optional<int64_t> v) {
    if (v) least = least ? std::min(*least, *v) : *v;
  };
  if (auto meminfo = read("/proc/meminfo")) consider(meminfo_available(*meminfo));
  if (auto self = read("/proc/self/cgroup"))
    for (const auto& f : cgroup_memory_files(*self)) consider(cgroup_room(read(f.limit), read(f.usage), read(f.stat), f.stat_key));
  return least;
}

std::optional<int64_t> available_memory() {
  const char* fake = std::getenv("STAG_MEMORY_AVAILABLE");
  if (fake && *fake) {  // set but empty is unset, as shells clear a variable
    auto bytes = parse_count(trim(fake));
    if (!bytes) throw MemoryError(fmt::format("STAG_MEMORY_AVAILABLE must be a number of bytes, got '{}'", fake));
    return bytes;
  }
  return available_memory(read_small_file);
}

std::string MemoryNeed::parts() const {
  return fmt::format("parameters {}, optimizer state {}, workspace {}, inputs and outputs {}", format_bytes(parameters),
                     format_bytes(optimizer_state), format_bytes(workspace), format_bytes(inputs_outputs));
}

bool is_optimizer_state(std::string_view param) { return param.starts_with("optim."); }

MemoryNeed memory_need(const Manifest& m) {
  MemoryNeed need;
  for (const auto& p : m.params)
    (is_optimizer_state(p.name) ? need.optimizer_state : need.parameters) += buffer_bytes(p);
  need.workspace = static_cast<double>(m.workspace_bytes);
  for (const auto& f : m.functions)
    need.inputs_outputs = std::max(need.inputs_outputs, buffers_bytes(f.inputs) + buffers_bytes(f.outputs));
  return need;
}

void check_memory(const MemoryNeed& need, std::optional<int64_t> available, const std::string& model) {
  if (!available || need.total() <= static_cast<double>(*available)) return;
  throw MemoryError(fmt::format("model {} needs {} ({}); {} are available", model, format_bytes(need.total()),
                                need.parts(), format_bytes(static_cast<double>(*available))));
}

}  // namespace stag::rt
