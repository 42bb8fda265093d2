// Batching, the prefetching iterator (same batches as the synchronous one) and exact resume.
#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "runtime/data/loader.h"
#include "runtime/data/split.h"

using namespace stag::rt;
using Catch::Matchers::Contains;

namespace {

// Image i is filled with the value i; its label is i % 10.
Dataset numbered(int64_t n, int64_t h = 4) {
  Dataset d{Tensor(DType::f32, {n, 1, h, h}), Tensor(DType::i64, {n})};
  auto x = d.features.values<float>();
  for (int64_t i = 0; i < n; ++i) {
    std::fill(x.begin() + i * h * h, x.begin() + (i + 1) * h * h, static_cast<float>(i));
    d.labels.values<int64_t>()[i] = i % 10;
  }
  return d;
}

bool same(const Batch& a, const Batch& b) {
  return a.epoch == b.epoch && a.index == b.index && a.size == b.size && a.indices == b.indices &&
         identical(a.features, b.features) && identical(a.labels, b.labels);
}

// Every batch of `epochs` epochs, with an end-of-epoch marker (an empty Batch) between epochs.
std::vector<Batch> drain(BatchIterator& it, int epochs) {
  std::vector<Batch> out;
  for (int e = 0; e < epochs; ++e) {
    while (auto b = it.next()) out.push_back(std::move(*b));
    out.emplace_back();
  }
  return out;
}

}  // namespace

TEST_CASE("batches cover the epoch in the shuffled order", "[loader]") {
  Dataset d = numbered(10);
  LoaderOptions o;
  o.batch_size = 3;
  BatchPlan plan(d, {}, o, 42);
  CHECK(plan.batches_per_epoch() == 3);  // drop_last: 10 / 3
  auto order = shuffled_indices(10, 42, 0);
  CHECK(plan.order(0) == order);
  Batch b = plan.make(0, 1);
  CHECK(b.features.shape() == Shape{3, 1, 4, 4});
  CHECK(b.indices == std::vector<int64_t>(order.begin() + 3, order.begin() + 6));
  for (int64_t r = 0; r < 3; ++r) {
    CHECK(b.features.at<float>({r, 0, 2, 3}) == static_cast<float>(b.indices[r]));
    CHECK(b.labels.values<int64_t>()[r] == b.indices[r] % 10);
  }
  CHECK_THROWS_WITH(plan.make(0, 3), Contains("batch 3 out of range"));

  o.drop_last = false;
  BatchPlan keep(d, {}, o, 42);
  CHECK(keep.batches_per_epoch() == 4);
  Batch last = keep.make(0, 3);
  CHECK(last.size == 1);
  CHECK(last.features.shape()[0] == 1);
  o.pad_last = true;
  BatchPlan pad(d, {}, o, 42);
  Batch padded = pad.make(0, 3);
  CHECK(padded.size == 1);
  CHECK(padded.features.shape()[0] == 3);
  CHECK(padded.features.at<float>({2, 0, 0, 0}) == 0.0f);
  CHECK(padded.labels.values<int64_t>()[2] == 0);

  o.shuffle = false;
  BatchPlan subset(d, {7, 2, 5, 1}, o, 1);
  CHECK(subset.make(0, 0).indices == std::vector<int64_t>{7, 2, 5});
  CHECK_THROWS_WITH(BatchPlan(d, {10}, o, 1), Contains("index 10 out of range"));
}

TEST_CASE("class-balanced draws give every class present the same chance, per seed and epoch", "[loader][balance]") {
  std::vector<int64_t> labels(900, 0);  // 90% class 0, 9% class 1, 1% class 3, no class 2
  labels.insert(labels.end(), 90, 1);
  labels.insert(labels.end(), 10, 3);
  auto draws = balanced_draws(labels, 7, 0);
  REQUIRE(draws.size() == labels.size());
  std::map<int64_t, int> count;
  std::set<int64_t> rare;
  for (int64_t i : draws) {
    ++count[labels[static_cast<size_t>(i)]];
    if (labels[static_cast<size_t>(i)] == 3) rare.insert(i);
  }
  CHECK(count.size() == 3);
  for (int64_t c : {0, 1, 3}) CHECK(count[c] == Approx(1000.0 / 3).margin(50));
  CHECK(rare.size() == 10);  // ~33 draws of 10 examples reach them all
  CHECK(balanced_draws(labels, 7, 0) == draws);
  CHECK(balanced_draws(labels, 7, 1) != draws);
  CHECK(balanced_draws(labels, 8, 0) != draws);
  CHECK_THROWS_WITH(balanced_draws({0, -1}, 7, 0), Contains("label -1 at example 1 is negative"));
}

TEST_CASE("a class-balanced loader draws within its subset and needs class labels", "[loader][balance]") {
  Dataset d = numbered(100);  // label i % 10
  LoaderOptions o;
  o.batch_size = 10;
  o.balance_classes = true;
  std::vector<int64_t> subset{1, 2, 3, 11, 21, 31, 41, 51, 61, 71};  // class 1 seven times, 2 and 3 once
  BatchPlan plan(d, subset, o, 5);
  CHECK(plan.order(0) == plan.order(0));
  std::map<int64_t, int> count;
  for (int64_t e = 0; e < 30; ++e)
    for (int64_t i : plan.order(e)) {
      CHECK(std::find(subset.begin(), subset.end(), i) != subset.end());
      ++count[i % 10];
    }
  for (int64_t c : {1, 2, 3}) CHECK(count[c] == Approx(100).margin(30));
  Dataset lm{Tensor(DType::i64, {4, 8}), Tensor(DType::i64, {4, 8})};
  CHECK_THROWS_WITH(BatchPlan(lm, {}, o, 5), Contains("needs one class label per example, the labels are i64[4,8]"));
}

TEST_CASE("the prefetching iterator yields exactly the synchronous batches", "[loader]") {
  Dataset d = numbered(50);
  LoaderOptions o;
  o.batch_size = 8;
  o.drop_last = false;
  o.augment.crop_padding = 1;
  o.augment.horizontal_flip = true;
  BatchIterator sync(d, {}, o, 7, 0);
  auto want = drain(sync, 3);
  REQUIRE(want.size() == 3 * 8);  // 7 batches + 1 marker per epoch
  for (int depth : {1, 2}) {
    BatchIterator pre(d, {}, o, 7, depth);
    std::vector<Batch> got;
    for (int e = 0; e < 3; ++e) {
      while (auto b = pre.next()) {
        // A slow step: the producer runs ahead and waits on the bounded queue.
        if (b->index % 3 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        got.push_back(std::move(*b));
      }
      got.emplace_back();
    }
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) CHECK(same(got[i], want[i]));
  }
  // Different epochs are different orders; every example appears once per epoch.
  CHECK(want[0].indices != want[8].indices);
  std::multiset<int64_t> ep;
  for (int i = 0; i < 7; ++i) ep.insert(want[i].indices.begin(), want[i].indices.end());
  CHECK(ep.size() == 50);
  CHECK(std::set<int64_t>(ep.begin(), ep.end()).size() == 50);
}

TEST_CASE("the next batches are assembled in the background, up to the queue bound", "[loader]") {
  Dataset d = numbered(40);
  LoaderOptions o;
  o.batch_size = 4;
  BatchIterator it(d, {}, o, 3, 2);
  auto wait_ready = [&](int64_t n) {
    for (int i = 0; i < 2000 && it.ready() < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return it.ready();
  };
  // Nothing was asked for yet, and two batches are ready; never more than two.
  CHECK(wait_ready(2) == 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(it.ready() == 2);
  REQUIRE(it.next());
  CHECK(wait_ready(2) == 2);
  BatchIterator sync(d, {}, o, 3, 0);
  CHECK(sync.ready() == 0);
}

TEST_CASE("a saved loader state resumes exactly", "[loader]") {
  Dataset d = numbered(40);
  LoaderOptions o;
  o.batch_size = 6;
  o.augment.max_rotation_degrees = 5;
  BatchIterator full(d, {}, o, 11, 2);
  auto want = drain(full, 3);  // 6 batches + marker per epoch
  for (int stop_after : {0, 4, 6, 7, 10, 13}) {
    BatchIterator a(d, {}, o, 11, 2);
    for (int i = 0; i < stop_after; ++i) {
      auto b = a.next();
      if (b)
        REQUIRE(same(*b, want[i]));
      else
        REQUIRE(want[i].features.numel() == 0);
    }
    // Through checkpoint metadata and into a fresh iterator with a different seed.
    StateMap saved = a.state().save();
    BatchIterator b(d, {}, o, 999, 1);
    b.restore(LoaderState::restore(saved));
    CHECK(b.state() == a.state());
    for (size_t i = stop_after; i < want.size(); ++i) {
      auto got = b.next();
      if (want[i].features.numel() == 0)
        REQUIRE(!got);
      else
        REQUIRE((got && same(*got, want[i])));
    }
  }
  BatchIterator c(d, {}, o, 11, 2);
  CHECK_THROWS_WITH(c.restore({11, 0, 7}), Contains("cannot resume at epoch 0 batch 7"));
  StateMap bad = {{"loader.seed", "1"}, {"loader.epoch", "x"}, {"loader.position", "0"}};
  CHECK_THROWS_WITH(LoaderState::restore(bad), Contains("'loader.epoch'"));
}

TEST_CASE("errors while assembling a batch reach the consumer", "[loader]") {
  // Token sequences cannot be augmented: the plan refuses up front.
  Dataset tokens{Tensor(DType::i64, {4, 3}), Tensor(DType::i64, {4, 3})};
  LoaderOptions o;
  o.batch_size = 2;
  BatchIterator it(tokens, {}, o, 1, 2);
  auto b = it.next();
  REQUIRE(b);
  CHECK(b->labels.shape() == Shape{2, 3});
  o.augment.horizontal_flip = true;
  CHECK_THROWS_WITH(BatchIterator(tokens, {}, o, 1, 2), Contains("augmentation needs f32 images"));
  Dataset mismatched{Tensor(DType::f32, {4, 2}), Tensor(DType::i64, {3})};
  o.augment = {};
  CHECK_THROWS_WITH(BatchIterator(mismatched, {}, o, 1, 2),
                    Contains("4 feature rows but 3 labels"));
}

// Byte images (as IDX files load) become f32 per batch: the batches are bit for bit those of the
// f32 features they stand for, shuffled, padded, augmented or as a subset.
TEST_CASE("byte images make the same batches as their f32 features", "[loader]") {
  int64_t n = 23, h = 5;
  ByteImages im{{n, 1, h, h}, {}};
  im.data.resize(static_cast<size_t>(n * h * h));
  for (size_t i = 0; i < im.data.size(); ++i) im.data[i] = static_cast<uint8_t>((i * 37 + 11) % 256);
  Tensor labels(DType::i64, {n});
  for (int64_t i = 0; i < n; ++i) labels.values<int64_t>()[i] = i % 10;
  Dataset bytes{Tensor(), labels.clone(), im};
  Dataset floats{byte_images_to_f32(im), labels.clone()};
  CHECK(bytes.size() == n);
  CHECK(bytes.feature_type_string() == "f32[23,1,5,5]");
  for (size_t i = 0; i < im.data.size(); ++i)
    REQUIRE(floats.features.values<float>()[i] == static_cast<float>(im.data[i]) / 255.0f);

  LoaderOptions o;
  o.batch_size = 4;
  std::vector<LoaderOptions> variants(4, o);
  variants[1].drop_last = false;
  variants[1].pad_last = true;
  variants[1].shuffle = false;
  variants[2].augment.crop_padding = 1;
  variants[2].augment.horizontal_flip = true;
  variants[2].augment.max_rotation_degrees = 10;
  variants[3].drop_last = false;
  for (const auto& opts : variants) {
    for (std::vector<int64_t> subset : {std::vector<int64_t>{}, std::vector<int64_t>{3, 17, 0, 9, 22, 5}}) {
      BatchPlan a(bytes, subset, opts, 5), b(floats, subset, opts, 5);
      REQUIRE(a.batches_per_epoch() == b.batches_per_epoch());
      for (int64_t e = 0; e < 2; ++e)
        for (int64_t i = 0; i < a.batches_per_epoch(); ++i) CHECK(same(a.make(e, i), b.make(e, i)));
    }
  }
  Dataset sub = subset(bytes, std::vector<int64_t>{4, 1});
  REQUIRE(sub.images);
  CHECK(sub.feature_shape() == Shape{2, 1, h, h});
  CHECK(std::equal(sub.images->data.begin(), sub.images->data.begin() + h * h, im.data.begin() + 4 * h * h));
  CHECK(sub.labels.values<int64_t>()[1] == 1);
  Dataset copy{Tensor(), labels.clone(), im};
  materialize_features(copy);
  CHECK(!copy.images);
  CHECK(identical(copy.features, floats.features));
  Tensor wrong(DType::f32, {2, 1, h, h + 1});
  CHECK_THROWS_WITH(gather_features(bytes, std::vector<int64_t>{0}, wrong), Contains("do not fit"));
  Tensor dst(DType::f32, {1, 1, h, h});
  CHECK_THROWS_WITH(gather_features(bytes, std::vector<int64_t>{n}, dst), Contains("row 23 out of range"));
  Dataset short_images{Tensor(), labels.clone(), ByteImages{{n, 1, h, h}, {}}};
  CHECK_THROWS_WITH(BatchPlan(short_images, {}, o, 1), Contains("0 bytes of images"));
}
