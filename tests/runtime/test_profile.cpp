// The profiler as compiled code drives it, through the C entry points: what is counted, what is
// ignored, and the shape of the report and the trace. Times are never asserted.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <sstream>

#include "runtime/error.h"
#include "runtime/profile.h"

using namespace stag::rt;
using Catch::Matchers::Contains;

namespace {

// init (one kernel), forward (three): kernel ids 0 | 1, 2, 3.
Manifest two_functions() {
  Manifest m;
  m.model = "toy";
  m.functions.push_back({"init", {}, {}, {{"k0_fill", "%w = parameter", 0, 64}}});
  m.functions.push_back({"forward", {}, {}, {{"k0_matmul", "%0 = matmul", 2e6, 12e6}, {"k1_relu", "%1 = relu", 0, 8e3},
                                             {"k2_add", "%2 = add", 1e3, 12e3}}});
  return m;
}

void call(int64_t function, const std::vector<int64_t>& kernels) {
  stag_profile_enter(function);
  for (int64_t k : kernels) {
    stag_profile_begin(k);
    stag_profile_end(k);
  }
  stag_profile_leave(function);
}

// The data rows of a report: lines after the column header.
std::vector<std::string> rows(const std::string& report) {
  std::vector<std::string> out;
  std::istringstream in(report);
  bool on = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("  kernel ", 0) == 0) on = true;
    else if (on) out.push_back(line);
  }
  return out;
}

}  // namespace

TEST_CASE("profile: counts the named functions' kernels and ignores the rest") {
  Manifest m = two_functions();
  Profiler p(m, {"forward"});
  call(0, {0});
  for (int i = 0; i < 3; ++i) call(1, {1, 2, 3});
  std::string report = p.report();
  CHECK_THAT(report, Contains("profile of forward: 3 calls, "));
  CHECK(report.find("profile of init") == std::string::npos);
  auto r = rows(report);
  REQUIRE(r.size() == 3);
  for (const char* name : {"k0_matmul", "k1_relu", "k2_add"}) {
    bool found = false;
    for (const auto& line : r) found |= line.find(name) != std::string::npos;
    CHECK(found);
  }
  // The static flops a call are printed exactly; a kernel without flops shows no rate.
  for (const auto& line : r) {
    if (line.find("k0_matmul") != std::string::npos) CHECK_THAT(line, Contains(" 2000000 "));
    if (line.find("k1_relu") != std::string::npos) CHECK_THAT(line, Contains(" - "));
  }
}

TEST_CASE("profile: the rest beyond --profile-top is one line") {
  Manifest m = two_functions();
  Profiler p(m, {"forward"});
  call(1, {1, 2, 3});
  auto r = rows(p.report(1));
  REQUIRE(r.size() == 2);
  CHECK_THAT(r[1], Contains("(2 more kernels)"));
}

TEST_CASE("profile: one profiler at a time, and none after it is gone") {
  Manifest m = two_functions();
  {
    Profiler p(m, {"forward"});
    CHECK_THROWS_AS(Profiler(m, {"forward"}), Error);
  }
  call(1, {1, 2, 3});  // no active profiler: ignored, no crash
  Profiler q(m, {"forward"});
  CHECK(q.report().empty());
}

TEST_CASE("profile: a function without a kernel table cannot be profiled") {
  Manifest m = two_functions();
  m.functions[1].kernels.clear();
  CHECK_THROWS_AS(Profiler(m, {"forward"}), Error);
}

TEST_CASE("profile: the trace has the function and its kernels as complete events") {
  Manifest m = two_functions();
  Profiler p(m, {"forward"});
  call(1, {1, 2, 3});
  call(1, {1, 2, 3});
  auto j = nlohmann::json::parse(p.trace_json());
  int functions = 0, kernels = 0;
  for (const auto& e : j.at("traceEvents")) {
    if (e.at("ph") != "X") continue;
    if (e.at("cat") == "function") ++functions;
    if (e.at("cat") == "kernel") {
      ++kernels;
      CHECK(e.at("args").at("calls") == 2);
    }
  }
  CHECK(functions == 1);
  CHECK(kernels == 3);
}
