// `stag plot`'s parts: reading logs, grouping keys into panels, round ticks, smoothing, SVG text.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "runtime/error.h"
#include "tools/plot.h"

using namespace stag::plot;
using Catch::Matchers::Contains;

namespace {

// A log file under /tmp, removed at scope exit.
struct TempLog {
  std::string path;
  explicit TempLog(const std::string& text) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "stag-plot-XXXXXX").string();
    int fd = mkstemp(tmpl.data());
    REQUIRE(fd >= 0);
    close(fd);
    path = tmpl;
    std::ofstream(path) << text;
  }
  ~TempLog() { std::filesystem::remove(path); }
};

std::vector<std::string> titles(const std::vector<Panel>& panels) {
  std::vector<std::string> out;
  for (const auto& p : panels) out.push_back(p.title + (p.per_step ? " /step" : " /epoch"));
  return out;
}

}  // namespace

TEST_CASE("ticks are round numbers enclosing the data", "[plot]") {
  CHECK(nice_ticks(0.31, 2.3, 5, false) == std::vector<double>{0, 0.5, 1, 1.5, 2, 2.5});
  CHECK(nice_ticks(1, 4, 6, true) == std::vector<double>{1, 2, 3, 4});
  CHECK(nice_ticks(1, 300, 6, true) == std::vector<double>{0, 50, 100, 150, 200, 250, 300});
  CHECK(nice_ticks(3, 3, 6, true) == std::vector<double>{2, 3, 4});  // one epoch
  auto lr = nice_ticks(0.001, 0.001, 5, false);                      // a constant
  CHECK(lr.front() < 0.001);
  CHECK(lr.back() > 0.001);
  CHECK(lr.size() <= 8);
  CHECK_THROWS_AS(nice_ticks(-1e308, 1e308, 5, false), stag::rt::Error);
}

TEST_CASE("smoothing is TensorBoard's debiased moving average", "[plot]") {
  CHECK(smooth({2, 2, 2}, 0.9) == std::vector<double>{2, 2, 2});  // debiased: no pull towards 0
  auto s = smooth({0, 10}, 0.5);
  CHECK(s[0] == 0);
  CHECK(s[1] == Approx(5 / 0.75));
  CHECK(smooth({3, 1, 4}, 0) == std::vector<double>{3, 1, 4});
}

TEST_CASE("a training log's keys become panels", "[plot]") {
  TempLog log(R"({"event":"step","step":1,"epoch":1,"loss":2.5}
{"event":"step","step":2,"epoch":1,"loss":1.5}

{"event":"epoch","epoch":1,"step":2,"train_loss":2.0,"lr":0.001,"seconds":1.5,"val_loss":1.8,"val_accuracy":0.5,"val_auc":null}
{"event":"test","loss":1.7,"accuracy":0.55}
)");
  RunLog r = read_run_log(log.path);
  REQUIRE(r.step.size() == 1);
  CHECK(r.step[0].points == std::map<double, double>{{1, 2.5}, {2, 1.5}});
  CHECK(r.test == std::vector<std::pair<std::string, double>>{{"loss", 1.7}, {"accuracy", 0.55}});
  auto panels = make_panels(r);
  CHECK(titles(panels) == std::vector<std::string>{"loss /step", "train_loss, val_loss /epoch", "lr /epoch", "val_accuracy /epoch"});
  CHECK(panels[1].y_label == "loss");
  CHECK(panels[1].x_label == "epoch");
}

TEST_CASE("a GAN log groups its losses and accuracies, repeated steps keep the last value", "[plot]") {
  TempLog log(R"({"event":"step","step":1,"loss_d":1.4,"loss_g":0.7,"d_real_accuracy":0.5,"d_fake_accuracy":0.4,"lr":0.0002}
{"event":"step","step":2,"loss_d":1.3,"loss_g":0.8,"d_real_accuracy":0.6,"d_fake_accuracy":0.5,"lr":0.0002}
{"event":"step","step":2,"loss_d":1.0,"loss_g":0.9,"d_real_accuracy":0.7,"d_fake_accuracy":0.6,"lr":0.0002}
{"event":"epoch","epoch":1,"fid":80.5,"classifier_score":4.5,"val_accuracy":0.9,"val_auc":0.95}
{"event":"sample","path":"e1.png"}
)");
  auto panels = make_panels(read_run_log(log.path));
  CHECK(titles(panels) == std::vector<std::string>{"loss_d, loss_g /step", "d_real_accuracy, d_fake_accuracy /step",
                                                    "fid /epoch", "classifier_score /epoch", "val_accuracy /epoch", "val_auc /epoch"});
  CHECK(panels[0].y_label == "loss");
  CHECK(panels[1].y_label == "accuracy");
  CHECK(panels[0].series[0].points == std::map<double, double>{{1, 1.4}, {2, 1.0}});
}

TEST_CASE("bad logs are errors naming the file and line", "[plot]") {
  TempLog bad("{\"event\":\"step\",\"step\":1,\"loss\":1}\n[1, 2]\n");
  CHECK_THROWS_WITH(read_run_log(bad.path), Contains(bad.path + ":2: not a JSON object"));
  TempLog truncated("{\"event\":\"step\",\"step\":1,\"loss\":1}\n\n{\"event\":\"step\",\"st");
  CHECK_THROWS_WITH(read_run_log(truncated.path), Contains(truncated.path + ":3:"));
  TempLog empty("{\"event\":\"test\",\"loss\":1}\n{\"event\":\"step\",\"step\":1,\"note\":\"x\"}\n");
  CHECK_THROWS_WITH(read_run_log(empty.path), Contains("no numbers to plot"));
  CHECK_THROWS_WITH(read_run_log(empty.path + ".missing"), Contains(".missing: cannot open"));
}

TEST_CASE("the SVG escapes names and draws every panel", "[plot]") {
  Series s{"a<b&c", {{1, 0.5}, {2, 0.25}, {3, 0.125}}};
  std::vector<Panel> panels = {{"a<b&c", "step", "a<b&c", true, {s}}, {"a<b&c", "epoch", "a<b&c", false, {s}}};
  std::string svg = render_svg(panels, {"run \"1\"", "", 0.6});
  CHECK_THAT(svg, Contains("a&lt;b&amp;c") && Contains("run &quot;1&quot;") && Contains("smoothed (0.6)"));
  CHECK(svg.find("a<b") == std::string::npos);
  size_t polylines = 0;
  for (size_t at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) ++polylines;
  CHECK(polylines == 3);  // raw + smoothed, and the epoch curve
  CHECK(svg.find("<circle") != std::string::npos);
}
