// PNG pictures: libpng round trips, the exact pixels of image grids, and errors that name the file.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "runtime/image.h"
#include "test_util.h"

using namespace stag::rt;
using namespace stag::rt::test;
using Catch::Matchers::Contains;

namespace {

// Every byte value somewhere, in a pattern where neighbours differ.
std::vector<uint8_t> pattern(int64_t n) {
  std::vector<uint8_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = static_cast<uint8_t>((i * 37 + i / 256) & 255);
  return p;
}

uint8_t pixel(const Image& g, int64_t x, int64_t y, int ch = 0) {
  return g.pixels.at(static_cast<size_t>((y * g.width + x) * g.channels + ch));
}

}  // namespace

TEST_CASE("PNG round trip through libpng, gray and RGB", "[image]") {
  TempDir dir;
  for (int channels : {1, 3}) {
    int64_t w = 37, h = 11;
    auto pixels = pattern(w * h * channels);
    std::string path = dir / (channels == 1 ? "gray.png" : "rgb.png");
    write_png(path, pixels.data(), w, h, channels);
    Image back = read_png(path);
    CHECK(back.width == w);
    CHECK(back.height == h);
    CHECK(back.channels == channels);
    CHECK(back.pixels == pixels);
  }
  CHECK(dir.entries() == std::vector<std::string>{"gray.png", "rgb.png"});  // no temporary left
}

TEST_CASE("an image grid maps values, clamps, and pads like make_grid", "[image]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Three 2x2 gray images in rows of two, one pixel of padding: a 7x7 picture.
  Tensor images = Tensor::from<float>({3, 1, 2, 2}, {-1, 0, 1, 2,  -5, 0.5f, nan, -0.999f,  0.25f, 0.25f, 0.25f, 0.25f});
  Image g = image_grid(images, {.columns = 2, .low = -1, .high = 1, .padding = 1});
  REQUIRE(g.width == 7);
  REQUIRE(g.height == 7);
  REQUIRE(g.channels == 1);
  // floor(255 * (v + 1) / 2 + 0.5), clamped to [-1, 1]; NaN is black.
  CHECK(pixel(g, 1, 1) == 0);
  CHECK(pixel(g, 2, 1) == 128);
  CHECK(pixel(g, 1, 2) == 255);
  CHECK(pixel(g, 2, 2) == 255);
  CHECK(pixel(g, 4, 1) == 0);
  CHECK(pixel(g, 5, 1) == 191);
  CHECK(pixel(g, 4, 2) == 0);
  CHECK(pixel(g, 5, 2) == 0);    // -0.999 -> 0.1275 + 0.5
  CHECK(pixel(g, 1, 4) == 159);  // 0.25 -> 159.875
  CHECK(pixel(g, 2, 5) == 159);
  // Padding rows and columns, and the empty fourth cell, are black.
  int64_t lit = 0;
  for (int64_t y = 0; y < 7; ++y)
    for (int64_t x = 0; x < 7; ++x) {
      bool in_cell = (x % 3 != 0) && (y % 3 != 0) && !(x > 3 && y > 3);
      if (!in_cell) CHECK(pixel(g, x, y) == 0);
      lit += pixel(g, x, y) != 0;
    }
  CHECK(lit == 8);  // 3 of the first image, 1 of the second, 4 of the third
  // White padding (pad_value) fills the gaps and the empty cell, not the images' black pixels.
  Image white = image_grid(images, {.columns = 2, .low = -1, .high = 1, .padding = 1, .pad_value = 255});
  CHECK(pixel(white, 0, 0) == 255);
  CHECK(pixel(white, 5, 5) == 255);
  CHECK(pixel(white, 1, 1) == 0);
}

TEST_CASE("an RGB grid interleaves channels, scale repeats pixels", "[image]") {
  // Two 1x1 RGB images on [0, 1], one row, no padding, scaled 2x: a 4x2 picture.
  Tensor images = Tensor::from<float>({2, 3, 1, 1}, {1, 0, 0.5f,  0, 1, 0});
  Image g = image_grid(images, {.columns = 8, .low = 0, .high = 1, .padding = 0, .scale = 2});
  REQUIRE(g.width == 4);
  REQUIRE(g.height == 2);
  REQUIRE(g.channels == 3);
  for (int64_t y = 0; y < 2; ++y) {
    for (int64_t x = 0; x < 2; ++x) CHECK(std::vector<int>{pixel(g, x, y, 0), pixel(g, x, y, 1), pixel(g, x, y, 2)} == std::vector<int>{255, 0, 128});
    for (int64_t x = 2; x < 4; ++x) CHECK(std::vector<int>{pixel(g, x, y, 0), pixel(g, x, y, 1), pixel(g, x, y, 2)} == std::vector<int>{0, 255, 0});
  }
}

TEST_CASE("write_image_grid writes what image_grid draws", "[image]") {
  TempDir dir;
  Tensor images(DType::f32, {5, 1, 28, 28});
  auto v = images.values<float>();
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.01f * static_cast<float>(i));
  std::string path = dir / "grid.png";
  write_image_grid(path, images, 3, -1, 1, 2, 3);
  Image back = read_png(path);
  Image want = image_grid(images, {.columns = 3, .low = -1, .high = 1, .padding = 2, .scale = 3});
  CHECK(back.width == (3 * 30 + 2) * 3);
  CHECK(back.height == (2 * 30 + 2) * 3);
  CHECK(back.channels == 1);
  CHECK(back.pixels == want.pixels);
}

TEST_CASE("image errors name the file", "[image]") {
  TempDir dir;
  uint8_t px[3] = {1, 2, 3};
  std::string bad = (dir / "no-such-dir" / "x.png").string();
  CHECK_THROWS_WITH(write_png(bad, px, 1, 1, 3), Contains(bad));
  CHECK_THROWS_WITH(read_png(bad), Contains(bad));
  std::string ok = dir / "x.png";
  CHECK_THROWS_WITH(write_png(ok, px, 1, 1, 2), Contains(ok) && Contains("2 channels"));
  CHECK_THROWS_WITH(write_png(ok, px, 0, 1, 1), Contains(ok));
  write_bytes(dir / "not.png", bytes_of("not a png at all"));
  CHECK_THROWS_WITH(read_png(dir / "not.png"), Contains("not.png"));
  Tensor wrong(DType::f32, {2, 2, 4, 4});
  CHECK_THROWS_WITH(write_image_grid(ok, wrong, 2, -1, 1), Contains(ok) && Contains("C = 1 or 3"));
  Tensor fine(DType::f32, {2, 1, 4, 4});
  CHECK_THROWS_WITH(write_image_grid(ok, fine, 2, 1, 1), Contains("low < high"));
  CHECK_THROWS_WITH(write_image_grid(ok, fine, 0, -1, 1), Contains("columns >= 1"));
  Tensor one(DType::f32, {1, 1, 1, 1});
  CHECK_THROWS_WITH(write_image_grid(ok, one, 1, -1, 1, 2, 1 << 30), Contains(ok) && Contains("too large"));
  CHECK_THROWS_WITH(write_png(ok, Image{2, 2, 1, {0, 0, 0}}), Contains(ok) && Contains("3 bytes"));
  CHECK(dir.entries() == std::vector<std::string>{"not.png"});
}
