#pragma once
/// Pictures as PNG files (libpng): single images, grids of a batch of generated images in the
/// layout of torchvision.utils.make_grid, and a reader for checking what was written.

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace stag::rt {

/// 8-bit pixels, row-major and interleaved: height rows of width * channels bytes
/// (channels 1 = gray, 2 = gray + alpha, 3 = RGB, 4 = RGBA).
struct Image {
  int64_t width = 0;
  int64_t height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;
};

/// Writes width x height pixels (channels 1 = gray or 3 = RGB, interleaved, row-major) as an
/// 8-bit PNG, atomically (a temporary file renamed over `path`). Throws Error naming the file
/// when the arguments are invalid or the file cannot be written.
void write_png(const std::string& path, const uint8_t* pixels, int64_t width, int64_t height, int channels);
/// write_png of a whole Image (1 or 3 channels).
void write_png(const std::string& path, const Image& image);

/// Reads a PNG in its own channel count (palette images become RGB or RGBA, 16-bit samples
/// become 8-bit). Throws Error naming the file when it is missing or not a valid PNG.
Image read_png(const std::string& path);

/// How a batch of images is laid out on one picture.
struct GridOptions {
  int64_t columns = 8;  ///< images a row (fewer when the batch is smaller), as make_grid's nrow
  float low = -1;       ///< the value drawn black (a tanh output's -1) ...
  float high = 1;       ///< ... and the value drawn white; values outside are clamped
  int padding = 2;      ///< black pixels between the images and around them
  int scale = 1;        ///< nearest-neighbour upscale of the whole picture (2 or 3 for 28x28 images)
  uint8_t pad_value = 0;  ///< gray level of the padding and of empty cells (255: white), as make_grid's
};

/// The picture of images f32 [N, C, H, W] (C = 1 gray or 3 RGB) in rows of `columns`, as
/// torchvision.utils.make_grid(normalize=True, value_range=(low, high), padding, pad_value)
/// then save_image: v -> floor(255 * clamp((v - low) / (high - low), 0, 1) + 0.5); NaN is black.
/// Empty cells of the last row are the padding's colour. Throws Error on a bad shape, dtype or option.
Image image_grid(const Tensor& images, const GridOptions& options);

/// Writes image_grid(images, options) as a PNG at `path`; errors name the file.
void write_image_grid(const std::string& path, const Tensor& images, const GridOptions& options);
/// The same, with the options spelled out (low = -1, high = 1 for a GAN's tanh output).
void write_image_grid(const std::string& path, const Tensor& images, int64_t columns, float low, float high,
                      int padding = 2, int scale = 1);

}  // namespace stag::rt
