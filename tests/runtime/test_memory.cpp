// Available memory from /proc/meminfo and the cgroup files, what a manifest needs, the check.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <map>

#include "runtime/memory.h"
#include "runtime/model.h"

using namespace stag::rt;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;

namespace {

// A fake file system: paths not in the map cannot be read.
ReadFile files(std::map<std::string, std::string> contents) {
  return [contents](const std::string& path) -> std::optional<std::string> {
    auto it = contents.find(path);
    if (it == contents.end()) return std::nullopt;
    return it->second;
  };
}

const char* kMeminfo =
    "MemTotal:       24683744 kB\n"
    "MemFree:         1250000 kB\n"
    "MemAvailable:   22360000 kB\n"
    "Buffers:          150000 kB\n";

}  // namespace

TEST_CASE("bytes print in decimal units", "[memory]") {
  CHECK(format_bytes(0) == "0 bytes");
  CHECK(format_bytes(999) == "999 bytes");
  CHECK(format_bytes(1000) == "1.0 KB");
  CHECK(format_bytes(409600) == "409.6 KB");
  CHECK(format_bytes(999960) == "1.0 MB");
  CHECK(format_bytes(80e9) == "80.0 GB");
  CHECK(format_bytes(3298534883328.0) == "3.3 TB");
  CHECK(format_bytes(1e30) == "1000000.0 YB");
}

TEST_CASE("MemAvailable is read from /proc/meminfo in bytes", "[memory]") {
  CHECK(meminfo_available(kMeminfo) == int64_t{22360000} * 1024);
  CHECK(meminfo_available("MemAvailable: 7 kB") == 7168);  // last line without a newline
  CHECK(!meminfo_available("MemTotal: 100 kB\nMemFree: 50 kB\n"));  // kernels before 3.14
  CHECK(!meminfo_available("MemAvailable: lots kB\n"));
  CHECK(!meminfo_available("MemAvailable: 100 MB\n"));
  CHECK(!meminfo_available("MemAvailable: -5 kB\n"));
  CHECK(!meminfo_available("MemAvailable: 99999999999999999999 kB\n"));
  CHECK(!meminfo_available(""));
}

TEST_CASE("cgroup byte counts: max is no limit, garbage is unknown", "[memory]") {
  CHECK(cgroup_bytes("8589934592\n") == 8589934592);
  CHECK(!cgroup_bytes("max\n"));
  CHECK(!cgroup_bytes(""));
  CHECK(!cgroup_bytes("12 bytes"));
  CHECK(cgroup_room(std::string("1000\n"), std::string("300\n")) == 700);
  CHECK(cgroup_room(std::string("1000"), std::string("1500")) == 0);  // over the limit already
  CHECK(!cgroup_room(std::string("max\n"), std::string("300\n")));
  CHECK(!cgroup_room(std::string("1000"), std::nullopt));
  CHECK(!cgroup_room(std::nullopt, std::string("1")));
}

TEST_CASE("a cgroup's inactive page cache is room, as the kernel reclaims it first", "[memory]") {
  const char* stat = "anon 500\nfile 400\nactive_file 150\ninactive_file 250\n";
  CHECK(cgroup_stat(stat, "inactive_file") == 250);
  CHECK(cgroup_stat(stat, "file") == 400);  // a whole key, not a key's suffix
  CHECK(!cgroup_stat(stat, "total_inactive_file"));
  CHECK(!cgroup_stat("inactive_file lots\n", "inactive_file"));
  CHECK(cgroup_room(std::string("1000"), std::string("900"), std::string(stat), "inactive_file") == 350);
  CHECK(cgroup_room(std::string("1000"), std::string("900"), std::string("anon 1\n"), "inactive_file") == 100);
  CHECK(cgroup_room(std::string("1000"), std::string("900"), std::nullopt, "inactive_file") == 100);
  // A cache larger than the usage (the two are read at different moments) frees no more than the usage.
  CHECK(cgroup_room(std::string("1000"), std::string("100"), std::string("inactive_file 5000\n"), "inactive_file") == 1000);
}

TEST_CASE("the cgroup files of a process and its ancestors", "[memory]") {
  auto v2 = cgroup_memory_files("0::/user.slice/job\n");
  REQUIRE(v2.size() == 6);
  CHECK(v2[0].limit == "/sys/fs/cgroup/user.slice/job/memory.max");
  CHECK(v2[0].usage == "/sys/fs/cgroup/user.slice/job/memory.current");
  CHECK(v2[0].stat == "/sys/fs/cgroup/user.slice/job/memory.stat");
  CHECK(v2[0].stat_key == "inactive_file");
  CHECK(v2[1].limit == "/sys/fs/cgroup/user.slice/memory.max");
  CHECK(v2[2].limit == "/sys/fs/cgroup/memory.max");
  CHECK(v2[3].limit == "/sys/fs/cgroup/unified/user.slice/job/memory.max");

  auto v1 = cgroup_memory_files("5:devices:/\n4:cpu,memory:/docker/abc\n0::/\n");
  REQUIRE(v1.size() == 5);
  CHECK(v1[0].limit == "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes");
  CHECK(v1[0].usage == "/sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes");
  CHECK(v1[0].stat == "/sys/fs/cgroup/memory/docker/abc/memory.stat");
  CHECK(v1[0].stat_key == "total_inactive_file");
  CHECK(v1[2].limit == "/sys/fs/cgroup/memory/memory.limit_in_bytes");
  CHECK(v1[3].limit == "/sys/fs/cgroup/memory.max");

  CHECK(cgroup_memory_files("").empty());
  CHECK(cgroup_memory_files("garbage\n3:memoryx:/a\n").empty());
}

TEST_CASE("available memory is the least of MemAvailable and every cgroup's room", "[memory]") {
  // Unknown everywhere: nothing is checked.
  CHECK(!available_memory(files({})));
  CHECK(available_memory(files({{"/proc/meminfo", kMeminfo}})) == int64_t{22360000} * 1024);

  // cgroup v2: the parent's limit is the tighter one; the child's "max" means no limit of its own.
  auto v2 = files({{"/proc/meminfo", kMeminfo},
                   {"/proc/self/cgroup", "0::/a/b\n"},
                   {"/sys/fs/cgroup/a/b/memory.max", "max\n"},
                   {"/sys/fs/cgroup/a/b/memory.current", "100\n"},
                   {"/sys/fs/cgroup/a/memory.max", "4000000000\n"},
                   {"/sys/fs/cgroup/a/memory.current", "1000000000\n"},
                   {"/sys/fs/cgroup/a/memory.stat", "anon 600000000\ninactive_file 300000000\n"}});
  CHECK(available_memory(v2) == 3300000000);

  // cgroup v1, where "no limit" is a huge number: MemAvailable decides.
  auto v1 = files({{"/proc/meminfo", kMeminfo},
                   {"/proc/self/cgroup", "4:memory:/job\n"},
                   {"/sys/fs/cgroup/memory/job/memory.limit_in_bytes", "9223372036854771712\n"},
                   {"/sys/fs/cgroup/memory/job/memory.usage_in_bytes", "84209664\n"}});
  CHECK(available_memory(v1) == int64_t{22360000} * 1024);

  // A limit with no readable meminfo still counts.
  auto only_cgroup = files({{"/proc/self/cgroup", "4:memory:/\n"},
                            {"/sys/fs/cgroup/memory/memory.limit_in_bytes", "2048"},
                            {"/sys/fs/cgroup/memory/memory.usage_in_bytes", "48"}});
  CHECK(available_memory(only_cgroup) == 2000);
}

TEST_CASE("this machine's available memory is known", "[memory]") {
  unsetenv("STAG_MEMORY_AVAILABLE");
  auto real = available_memory();
  REQUIRE(real);
  CHECK(*real > 0);
  setenv("STAG_MEMORY_AVAILABLE", "12345", 1);
  CHECK(available_memory() == 12345);
  setenv("STAG_MEMORY_AVAILABLE", "", 1);  // the measured amount again, which moves: not 12345
  auto measured = available_memory();
  REQUIRE(measured);
  CHECK(*measured != 12345);
  setenv("STAG_MEMORY_AVAILABLE", "12 GB", 1);
  CHECK_THROWS_WITH(available_memory(), Equals("STAG_MEMORY_AVAILABLE must be a number of bytes, got '12 GB'"));
  unsetenv("STAG_MEMORY_AVAILABLE");
}

TEST_CASE("a manifest's need: parameters, optimizer state, workspace, the largest function's buffers", "[memory]") {
  Manifest m;
  m.model = "big";
  m.params = {{"fc.weight", DType::f32, {100000, 200000}, true},
              {"fc.bias", DType::f32, {100000}, true},
              {"optim.exp_avg.fc.bias", DType::f32, {100000}, false},
              {"optim.step", DType::i64, {}, false}};
  m.workspace_bytes = 1200000;
  m.functions = {{"init", {{"seed", DType::i64, {}}}, {}, {}},
                 {"forward", {{"x", DType::f32, {8, 200000}}}, {{"y", DType::f32, {8, 100000}}}, {}}};
  MemoryNeed need = memory_need(m);
  CHECK(need.parameters == 80000400000.0);
  CHECK(need.optimizer_state == 400008.0);
  CHECK(need.workspace == 1200000.0);
  CHECK(need.inputs_outputs == 9600000.0);

  CHECK_NOTHROW(check_memory(need, std::nullopt, "big"));
  CHECK_NOTHROW(check_memory(need, int64_t{100} * 1000 * 1000 * 1000, "big"));
  CHECK_THROWS_WITH(check_memory(need, int64_t{22900000000}, "big"),
                    Equals("model big needs 80.0 GB (parameters 80.0 GB, optimizer state 400.0 KB, workspace 1.2 MB, "
                           "inputs and outputs 9.6 MB); 22.9 GB are available"));
  CHECK_THROWS_AS(check_memory(need, 0, "big"), MemoryError);
}

TEST_CASE("sizes past int64 still add up and fail the check", "[memory]") {
  Manifest m;
  m.model = "huge";
  m.params = {{"w", DType::f64, {int64_t{1} << 40, int64_t{1} << 40}, true}};
  MemoryNeed need = memory_need(m);
  CHECK(need.parameters > 9.6e24);
  CHECK_THROWS_WITH(check_memory(need, INT64_MAX, "huge"), Contains("model huge needs 9.7 YB"));
}
