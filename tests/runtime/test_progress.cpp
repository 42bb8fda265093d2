// Progress output in plain-line and terminal modes, and the JSON-lines epoch log.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "runtime/progress.h"
#include "test_util.h"

using namespace stag::rt;
using namespace stag::rt::test;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

// A FILE* whose contents can be read back.
struct Capture {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  ~Capture() {
    if (f) std::fclose(f);
    std::free(buf);
  }
  std::string text() {
    std::fflush(f);
    return std::string(buf, len);
  }
};

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

}  // namespace

TEST_CASE("durations format as mm:ss or h:mm:ss", "[progress]") {
  CHECK(format_duration(0) == "00:00");
  CHECK(format_duration(61.4) == "01:01");
  CHECK(format_duration(3725) == "1:02:05");
  CHECK(format_duration(-1) == "--:--");
  CHECK(format_duration(INFINITY) == "--:--");
}

TEST_CASE("not a terminal: a plain line every 10% and at the end", "[progress]") {
  Capture cap;
  double now = 100;
  ProgressOptions o;  // terminal = false
  o.percent_step = 25;
  ProgressBar bar(cap.f, "epoch 1/3", 1000, o, [&] { return now; });
  for (int64_t done = 100; done < 1000; done += 100) {
    now += 1;  // 100 examples a second
    bar.update(done, 2.0 - static_cast<double>(done) / 1000);
  }
  now += 1;
  bar.update(1000, 1.0);
  bar.finish("val_acc 0.9");
  bar.update(1000, 1.0);  // ignored after finish
  auto lines = lines_of(cap.text());
  // 25%, 50%, 75% crossed at 300, 500, 800 examples, then the final line.
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == "epoch 1/3  30% 300/1000 loss 1.7000 100 ex/s ETA 00:07");
  CHECK(lines[1] == "epoch 1/3  50% 500/1000 loss 1.5000 100 ex/s ETA 00:05");
  CHECK(lines[2] == "epoch 1/3  80% 800/1000 loss 1.2000 100 ex/s ETA 00:02");
  CHECK(lines[3] == "epoch 1/3 100% 1000/1000 loss 1.0000 100 ex/s elapsed 00:10  val_acc 0.9");
  CHECK(cap.text().find('\r') == std::string::npos);
}

TEST_CASE("terminal mode redraws one line at most every 0.1 s", "[progress]") {
  Capture cap;
  double now = 0;
  ProgressOptions o;
  o.terminal = true;
  o.bar_width = 10;
  ProgressBar bar(cap.f, "e1", 100, o, [&] { return now; });
  for (int64_t done = 1; done <= 100; ++done) {
    now += 0.01;  // 100 updates over one second -> about 10 redraws
    bar.update(done, 0.5);
  }
  bar.finish();
  std::string t = cap.text();
  auto redraws = std::count(t.begin(), t.end(), '\r');
  CHECK(redraws >= 9);
  CHECK(redraws <= 12);
  CHECK(std::count(t.begin(), t.end(), '\n') == 1);
  CHECK_THAT(t, Contains("\r[==========] e1 100% 100/100 loss 0.5000 100 ex/s elapsed 00:01"));
  CHECK_THAT(t, Contains("\r[=====>    ] e1  5"));
  CHECK(progress_options_for(cap.f).terminal == false);
}

TEST_CASE("the JSON-lines log has one object per epoch", "[progress]") {
  TempDir dir;
  auto path = dir / "log.jsonl";
  {
    JsonLinesWriter w(path);
    w.write({{"epoch", int64_t{1}}, {"loss", 0.5}, {"lr", 0.1}, {"note", std::string("a\"b")}});
    w.write({{"epoch", int64_t{2}}, {"loss", NAN}});
  }
  {
    JsonLinesWriter w(path);  // appends, as a resumed run does
    w.write({{"epoch", int64_t{3}}});
  }
  auto lines = lines_of(
      std::string(reinterpret_cast<const char*>(read_bytes(path).data()), read_bytes(path).size()));
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == R"({"epoch":1,"loss":0.5,"lr":0.1,"note":"a\"b"})");
  CHECK(lines[1] == R"({"epoch":2,"loss":null})");
  CHECK(lines[2] == R"({"epoch":3})");
  {
    JsonLinesWriter w(path, true);
    w.write({{"x", 1.25}});
  }
  CHECK(read_bytes(path).size() == std::string(R"({"x":1.25})"
                                               "\n")
                                       .size());
  CHECK_THROWS_WITH(JsonLinesWriter(dir / "no/such/dir/log"), Contains("cannot open the log"));
}
