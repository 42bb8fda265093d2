// PNG through libpng's simplified API (png_image_*): it reports failures in a message instead of
// longjmp, which must never cross C++ frames, and it needs no per-chunk setup for plain pictures.

#include "runtime/image.h"

#include <fmt/format.h>
#include <png.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <span>

#include "runtime/checked.h"
#include "runtime/error.h"
#include "runtime/io.h"

namespace stag::rt {

namespace {

// Larger pictures are almost certainly a mistake (a batch of 10^5 images, a scale of 100), and
// libpng's own row arithmetic is 32-bit.
constexpr int64_t kMaxPictureBytes = int64_t{1} << 30;
constexpr int64_t kMaxSide = int64_t{1} << 24;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(fmt::format("{}: {}", path, what));
}

void check_png_args(const std::string& path, const uint8_t* pixels, int64_t width, int64_t height, int channels) {
  if (channels != 1 && channels != 3) fail(path, fmt::format("cannot write a PNG of {} channels (1 = gray, 3 = RGB)", channels));
  if (width <= 0 || height <= 0 || width > kMaxSide || height > kMaxSide)
    fail(path, fmt::format("cannot write a PNG of {} x {} pixels", width, height));
  if (width * height * channels > kMaxPictureBytes) fail(path, fmt::format("a {} x {} PNG is too large", width, height));
  if (pixels == nullptr) fail(path, "no pixels to write");
}

std::vector<std::byte> encode_png(const std::string& path, const uint8_t* pixels, int64_t width, int64_t height, int channels) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(width);
  img.height = static_cast<png_uint_32>(height);
  img.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  png_alloc_size_t size = PNG_IMAGE_PNG_SIZE_MAX(img);
  std::vector<std::byte> png(size);
  if (!png_image_write_to_memory(&img, png.data(), &size, 0, pixels, 0, nullptr)) {
    std::string message = img.message;
    png_image_free(&img);
    fail(path, "cannot encode the PNG: " + message);
  }
  png.resize(size);
  return png;
}

// 0..255 as save_image rounds it: +0.5 then truncation, in float like torchvision.
uint8_t to_byte(float v, float low, float high) {
  if (std::isnan(v)) return 0;
  float unit = (std::clamp(v, low, high) - low) / (high - low);
  return static_cast<uint8_t>(std::clamp(unit * 255.0f + 0.5f, 0.0f, 255.0f));
}

void check_grid(const Tensor& images, const GridOptions& o) {
  const Shape& s = images.shape();
  if (images.dtype() != DType::f32 || s.size() != 4 || (s[1] != 1 && s[1] != 3) || s[0] < 1 || s[2] < 1 || s[3] < 1)
    throw Error(fmt::format("an image grid needs f32 [N, C, H, W] images with C = 1 or 3 and N >= 1, not {}", images.type_string()));
  if (o.columns < 1 || o.padding < 0 || o.scale < 1)
    throw Error(fmt::format("an image grid needs columns >= 1, padding >= 0 and scale >= 1 (got {}, {}, {})", o.columns, o.padding, o.scale));
  if (!std::isfinite(o.low) || !std::isfinite(o.high) || !(o.high > o.low))
    throw Error(fmt::format("an image grid needs finite low < high (got {}, {})", o.low, o.high));
}

// One side of the picture in pixels before scaling, or nullopt when it (scaled) exceeds kMaxSide.
std::optional<int64_t> grid_side(int64_t count, int64_t size, const GridOptions& o) {
  auto cells = checked_mul(count, size + o.padding);
  auto side = cells ? checked_add(*cells, o.padding) : std::nullopt;
  auto scaled = side ? checked_mul(*side, o.scale) : std::nullopt;
  if (!scaled || *scaled > kMaxSide) return std::nullopt;
  return side;
}

// A picture of padding for rows x cols cells, or an Error when it is absurdly large.
Image blank_grid(int64_t rows, int64_t cols, int64_t h, int64_t w, int channels, const GridOptions& o) {
  auto height = grid_side(rows, h, o), width = grid_side(cols, w, o);
  if (!height || !width || *height * *width * channels * o.scale * o.scale > kMaxPictureBytes)
    throw Error(fmt::format("an image grid of {} x {} images of {} x {} pixels (scale {}) is too large", rows, cols, h, w, o.scale));
  Image g{*width, *height, channels, {}};
  g.pixels.assign(static_cast<size_t>(*width * *height * channels), o.pad_value);
  return g;
}

// Copies image i of [N, C, H, W] into the grid with its top-left pixel at (top, left).
void place(Image& g, const Tensor& images, int64_t i, int64_t top, int64_t left, const GridOptions& o) {
  const Shape& s = images.shape();
  int64_t c = s[1], h = s[2], w = s[3];
  const float* src = images.values<float>().data() + i * c * h * w;
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        g.pixels[static_cast<size_t>(((top + y) * g.width + left + x) * c + ch)] = to_byte(src[(ch * h + y) * w + x], o.low, o.high);
}

Image upscale(const Image& in, int scale) {
  Image out{in.width * scale, in.height * scale, in.channels, {}};
  out.pixels.resize(static_cast<size_t>(out.width * out.height * out.channels));
  uint8_t* dst = out.pixels.data();
  for (int64_t y = 0; y < out.height; ++y)
    for (int64_t x = 0; x < out.width; ++x, dst += in.channels) {
      const uint8_t* src = in.pixels.data() + ((y / scale) * in.width + x / scale) * in.channels;
      std::copy(src, src + in.channels, dst);
    }
  return out;
}

}  // namespace

void write_png(const std::string& path, const uint8_t* pixels, int64_t width, int64_t height, int channels) {
  check_png_args(path, pixels, width, height, channels);
  std::vector<std::byte> png = encode_png(path, pixels, width, height, channels);
  AtomicFileWriter out(path);
  out.write(std::span<const std::byte>(png));
  out.commit();
}

void write_png(const std::string& path, const Image& image) {
  if (static_cast<int64_t>(image.pixels.size()) != image.width * image.height * image.channels)
    fail(path, fmt::format("{} bytes are not {} x {} pixels of {} channels", image.pixels.size(), image.width, image.height, image.channels));
  write_png(path, image.pixels.data(), image.width, image.height, image.channels);
}

Image read_png(const std::string& path) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str())) {
    std::string message = img.message;
    png_image_free(&img);
    fail(path, "cannot read the PNG: " + message);
  }
  // The file's own channels, 8 bits each: palettes expand, 16-bit samples are reduced.
  img.format &= ~static_cast<png_uint_32>(PNG_FORMAT_FLAG_COLORMAP | PNG_FORMAT_FLAG_LINEAR);
  Image out{img.width, img.height, static_cast<int>(PNG_IMAGE_SAMPLE_CHANNELS(img.format)), {}};
  out.pixels.resize(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, out.pixels.data(), 0, nullptr)) {
    std::string message = img.message;
    png_image_free(&img);
    fail(path, "cannot read the PNG: " + message);
  }
  return out;
}

Image image_grid(const Tensor& images, const GridOptions& o) {
  check_grid(images, o);
  const Shape& s = images.shape();
  int64_t n = s[0], h = s[2], w = s[3];
  int64_t cols = std::min(o.columns, n), rows = (n + cols - 1) / cols;
  Image g = blank_grid(rows, cols, h, w, static_cast<int>(s[1]), o);
  for (int64_t i = 0; i < n; ++i)
    place(g, images, i, (i / cols) * (h + o.padding) + o.padding, (i % cols) * (w + o.padding) + o.padding, o);
  return o.scale == 1 ? std::move(g) : upscale(g, o.scale);
}

void write_image_grid(const std::string& path, const Tensor& images, const GridOptions& options) {
  Image grid;
  try {
    grid = image_grid(images, options);
  } catch (const Error& e) {
    fail(path, e.what());
  }
  write_png(path, grid);
}

void write_image_grid(const std::string& path, const Tensor& images, int64_t columns, float low, float high, int padding,
                      int scale) {
  write_image_grid(path, images, GridOptions{columns, low, high, padding, scale});
}

}  // namespace stag::rt
