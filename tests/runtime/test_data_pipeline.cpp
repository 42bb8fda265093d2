// Seeded shuffles, splits, k-fold, normalisation and augmentation.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>
#include <set>

#include "runtime/data/augment.h"
#include "runtime/data/normalize.h"
#include "runtime/data/rng.h"
#include "runtime/data/split.h"
#include "runtime/trainer.h"

using namespace stag::rt;
using Catch::Matchers::Contains;

TEST_CASE("splitmix64 matches the reference implementation", "[rng]") {
  // Vigna's splitmix64.c seeded with 0.
  Rng r(0);
  CHECK(r.next() == 0xe220a8397b1dcdafull);
  CHECK(r.next() == 0x6e789e6aa1b965f4ull);
  CHECK(r.next() == 0x06c45d188009454full);
  Rng b(123);
  for (int i = 0; i < 1000; ++i) {
    uint64_t v = b.below(7);
    REQUIRE(v < 7);
    double u = b.uniform01();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
  }
}

TEST_CASE("shuffles are deterministic and match an independent implementation", "[shuffle]") {
  // Numbers from fixtures/shuffle_reference.py (a Python implementation of rng.h / split.h).
  CHECK(shuffled_indices(10, 42, 0) == std::vector<int64_t>{2, 5, 0, 9, 3, 6, 4, 1, 8, 7});
  CHECK(shuffled_indices(10, 42, 1) == std::vector<int64_t>{5, 7, 6, 9, 1, 8, 4, 2, 0, 3});
  auto big = shuffled_indices(60000, 7, 3);
  CHECK(std::vector<int64_t>(big.begin(), big.begin() + 8) ==
        std::vector<int64_t>{47670, 22519, 39220, 33824, 8015, 53439, 40351, 32698});
  CHECK(shuffled_indices(60000, 7, 3) == big);
  CHECK(shuffled_indices(60000, 8, 3) != big);
  CHECK(shuffled_indices(60000, 7, 4) != big);
  std::sort(big.begin(), big.end());
  std::vector<int64_t> iota(60000);
  std::iota(iota.begin(), iota.end(), int64_t{0});
  CHECK(big == iota);
  CHECK(shuffled_indices(0, 1, 1).empty());
  CHECK(shuffled_indices(1, 1, 1) == std::vector<int64_t>{0});
}

TEST_CASE("train/validation split is disjoint, complete and seeded", "[split]") {
  Split s = train_validation_split(101, 0.2, 5);
  CHECK(s.validation.size() == 20);
  CHECK(s.train.size() == 81);
  std::set<int64_t> all(s.train.begin(), s.train.end());
  for (int64_t v : s.validation) CHECK(all.insert(v).second);
  CHECK(all.size() == 101);
  CHECK(*all.rbegin() == 100);
  CHECK(std::is_sorted(s.train.begin(), s.train.end()));
  CHECK(train_validation_split(101, 0.2, 5).validation == s.validation);
  CHECK(train_validation_split(101, 0.2, 6).validation != s.validation);
  CHECK(train_validation_split(10, 0.0, 1).validation.empty());
  CHECK_THROWS_WITH(train_validation_split(10, 1.0, 1), Contains("[0, 1)"));
}

TEST_CASE("k-fold validates on each index exactly once", "[split]") {
  for (int64_t k : {2, 3, 5, 10}) {
    auto folds = kfold(23, k, 9);
    REQUIRE(static_cast<int64_t>(folds.size()) == k);
    std::vector<int> seen(23);
    for (int64_t i = 0; i < k; ++i) {
      const Split& f = folds[i];
      // scikit-learn's KFold sizes: the first 23 % k folds one larger.
      CHECK(static_cast<int64_t>(f.validation.size()) == 23 / k + (i < 23 % k ? 1 : 0));
      CHECK(f.train.size() + f.validation.size() == 23);
      std::set<int64_t> tr(f.train.begin(), f.train.end());
      for (int64_t v : f.validation) {
        ++seen[v];
        CHECK(tr.count(v) == 0);
      }
    }
    CHECK(seen == std::vector<int>(23, 1));
  }
  CHECK_THROWS_WITH(kfold(5, 1, 0), Contains("k must be in [2, 5]"));
  CHECK_THROWS(kfold(5, 6, 0));
}

TEST_CASE("normalisation fits on the training rows and applies to all", "[normalize]") {
  // [4 rows, 2 channels, 2 pixels]; channel 0 of rows 0-1: 1 2 3 4 -> mean 2.5, std sqrt(1.25).
  Tensor x =
      Tensor::from<float>({4, 2, 2}, {1, 2, 10, 10, 3, 4, 10, 10, 100, 100, 5, 5, 7, 7, 7, 7});
  std::vector<int64_t> train = {0, 1};
  Normalizer n = Normalizer::fit(x, train);
  REQUIRE(n.mean.size() == 2);
  CHECK(n.mean[0] == 2.5);
  CHECK(n.std[0] == Approx(std::sqrt(1.25)));
  CHECK(n.mean[1] == 10.0);
  CHECK(n.std[1] == 1.0);  // constant channel: std 1, not a division by zero
  n.apply(x);
  CHECK(x.at<float>({0, 0, 0}) == Approx((1 - 2.5) / std::sqrt(1.25)));
  CHECK(x.at<float>({2, 0, 0}) == Approx((100 - 2.5) / std::sqrt(1.25)));  // not refitted on row 2
  CHECK(x.at<float>({0, 1, 1}) == 0.0f);
  Normalizer all = Normalizer::fit(Tensor::from<float>({2, 1}, {1, 3}), {}, false);
  CHECK(all.mean == std::vector<double>{2.0});
  CHECK(all.std == std::vector<double>{1.0});
  Normalizer back = Normalizer::restore(n.save());
  CHECK(back.mean == n.mean);
  CHECK(back.std == n.std);
  std::vector<int64_t> bad_rows = {4};
  CHECK_THROWS_WITH(Normalizer::fit(x, bad_rows), Contains("row 4 out of range"));
  Tensor wrong(DType::f32, {1, 3});
  CHECK_THROWS_WITH(n.apply(wrong), Contains("statistics for 2 channels"));
}

namespace {

Tensor ramp_images(int64_t n, int64_t c, int64_t h, int64_t w) {
  Tensor t(DType::f32, {n, c, h, w});
  auto v = t.values<float>();
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 97) / 97.0f + 0.01f;
  return t;
}

}  // namespace

TEST_CASE("augmentation primitives: flips, shifts, identity", "[augment]") {
  const int64_t C = 2, H = 5, W = 7;
  Tensor img = ramp_images(1, C, H, W);
  const float* in = img.values<float>().data();
  std::vector<float> a(C * H * W), b(C * H * W);
  AugmentParams flip;
  flip.flip = true;
  augment_image(in, a.data(), C, H, W, flip);
  CHECK(a[0] == in[W - 1]);
  augment_image(a.data(), b.data(), C, H, W, flip);
  CHECK(std::equal(b.begin(), b.end(), in));  // flip twice = identity
  AugmentParams none;
  augment_image(in, a.data(), C, H, W, none);
  CHECK(std::equal(a.begin(), a.end(), in));  // crop with zero shift = identity
  AugmentParams shift;
  shift.dx = 2;
  shift.dy = -1;
  augment_image(in, a.data(), C, H, W, shift);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        int64_t sy = y - 1, sx = x + 2;
        float want = (sy < 0 || sx >= W) ? 0.0f : in[(c * H + sy) * W + sx];
        REQUIRE(a[(c * H + y) * W + x] == want);
      }
  // A quarter turn of a square image moves pixels exactly (bilinear at integer points).
  Tensor sq = ramp_images(1, 1, 4, 4);
  const float* s = sq.values<float>().data();
  std::vector<float> r(16), r4(16), tmp(16);
  AugmentParams quarter;
  quarter.angle_degrees = 90;
  augment_image(s, r.data(), 1, 4, 4, quarter);
  // Counter-clockwise as displayed: the top-right pixel goes to the top-left.
  CHECK(r[0] == Approx(s[3]).margin(1e-5));
  CHECK(r[3] == Approx(s[15]).margin(1e-5));
  tmp = r;
  for (int i = 0; i < 3; ++i) {
    augment_image(tmp.data(), r4.data(), 1, 4, 4, quarter);
    tmp = r4;
  }
  for (int i = 0; i < 16; ++i) CHECK(r4[i] == Approx(s[i]).margin(1e-5));
  // Scaling by 2 about the centre: the centre pixels sample the centre region.
  AugmentParams zoom;
  zoom.scale = 2;
  Tensor one = ramp_images(1, 1, 3, 3);
  std::vector<float> z(9);
  augment_image(one.values<float>().data(), z.data(), 1, 3, 3, zoom);
  CHECK(z[4] == Approx(one.values<float>()[4]));
  CHECK(z[0] == Approx((one.values<float>()[0] + one.values<float>()[1] + one.values<float>()[3] +
                        one.values<float>()[4]) /
                       4));
}

TEST_CASE("augmentation is reproducible per (seed, epoch, example)", "[augment]") {
  AugmentOptions o;
  o.crop_padding = 2;
  o.horizontal_flip = true;
  o.max_rotation_degrees = 10;
  o.min_scale = 0.9;
  o.max_scale = 1.1;
  std::set<std::tuple<int64_t, int64_t, bool>> seen;
  for (uint64_t ex = 0; ex < 200; ++ex) {
    AugmentParams p = draw_augment(o, 3, 1, ex);
    AugmentParams q = draw_augment(o, 3, 1, ex);
    CHECK((p.dx == q.dx && p.dy == q.dy && p.flip == q.flip && p.angle_degrees == q.angle_degrees &&
           p.scale == q.scale));
    REQUIRE(std::abs(p.dx) <= 2);
    REQUIRE(std::abs(p.dy) <= 2);
    REQUIRE(std::abs(p.angle_degrees) <= 10);
    REQUIRE(p.scale >= 0.9);
    REQUIRE(p.scale <= 1.1);
    seen.insert({p.dx, p.dy, p.flip});
  }
  CHECK(seen.size() > 30);  // the draws vary (25 shifts x 2 flips possible)
  AugmentParams e1 = draw_augment(o, 3, 2, 0), e0 = draw_augment(o, 3, 1, 0);
  CHECK(e1.angle_degrees != e0.angle_degrees);
  CHECK(draw_augment(o, 4, 1, 0).angle_degrees != e0.angle_degrees);

  // A batch: row order does not matter, only the example id.
  Tensor a = ramp_images(3, 1, 8, 8), b = ramp_images(3, 1, 8, 8);
  std::vector<int64_t> ids = {5, 9, 11};
  augment_batch(a, ids, o, 3, 1);
  augment_batch(b, ids, o, 3, 1);
  CHECK(identical(a, b));
  Tensor fresh = ramp_images(3, 1, 8, 8);
  Tensor single = Tensor::from<float>({1, 1, 8, 8}, fresh.values<float>().subspan(64, 64));
  std::vector<int64_t> one_id = {9};
  augment_batch(single, one_id, o, 3, 1);
  CHECK(std::equal(single.values<float>().begin(), single.values<float>().end(),
                   a.values<float>().begin() + 64));
  AugmentOptions identity;
  Tensor c = ramp_images(3, 1, 8, 8), d = ramp_images(3, 1, 8, 8);
  augment_batch(c, ids, identity, 3, 1);
  CHECK(identical(c, d));
  Tensor flat(DType::f32, {2, 3});
  CHECK_THROWS_WITH(augment_batch(flat, ids, o, 0, 0), Contains("expected f32 [B,C,H,W]"));
}

// `stag train` reads the data set on another thread while the model compiles; train() takes it
// (errors included) only for the source it was going to read. What needs the model (text, whose
// tokens depend on its vocabulary) or is not a data set is left to train().
TEST_CASE("example data sets preload in the background, text does not", "[preload]") {
  CHECK(preload_data("fortunes") == nullptr);
  CHECK(preload_data("/usr/share/games/fortunes") == nullptr);
  CHECK(preload_data("notes.txt") == nullptr);
  CHECK(preload_data("no such data") == nullptr);
  // A missing file is not an error here: it is thrown by train(), when the data is taken. A
  // preload that is never taken is waited for and dropped.
  auto missing = preload_data("/nonexistent/data.csv");
  REQUIRE(missing != nullptr);
  CHECK(missing->source() == "/nonexistent/data.csv");
  CHECK(preload_data("x.npy,y.npy") != nullptr);
}
