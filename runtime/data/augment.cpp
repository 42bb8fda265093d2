// Seeded image augmentation: bilinear rotation/scale, zero-padded crop shift, flip.
#include "runtime/data/augment.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <numbers>
#include <vector>

#include "runtime/data/rng.h"

namespace stag::rt {

AugmentParams draw_augment(const AugmentOptions& o, uint64_t seed, uint64_t epoch,
                           uint64_t example) {
  Rng rng(derive_seed(seed, RngStream::augment, splitmix64_mix(epoch) ^ example));
  AugmentParams p;
  if (o.crop_padding > 0) {
    auto span = static_cast<uint64_t>(2 * o.crop_padding + 1);
    p.dx = static_cast<int64_t>(rng.below(span)) - o.crop_padding;
    p.dy = static_cast<int64_t>(rng.below(span)) - o.crop_padding;
  }
  if (o.horizontal_flip) p.flip = (rng.next() >> 63) != 0;
  if (o.max_rotation_degrees != 0)
    p.angle_degrees = rng.uniform(-o.max_rotation_degrees, o.max_rotation_degrees);
  if (o.min_scale != 1 || o.max_scale != 1) p.scale = rng.uniform(o.min_scale, o.max_scale);
  return p;
}

namespace {

// Inverse mapping: output pixel (x, y) samples the input at R(-angle) (x - c) / scale + c.
void rotate_scale(const float* in, float* out, int64_t H, int64_t W, double angle, double scale) {
  double a = angle * std::numbers::pi / 180.0;
  double ca = std::cos(a) / scale, sa = std::sin(a) / scale;
  double cx = (static_cast<double>(W) - 1) / 2, cy = (static_cast<double>(H) - 1) / 2;
  auto px = [&](int64_t y, int64_t x) -> double {
    return (y < 0 || y >= H || x < 0 || x >= W) ? 0.0 : in[y * W + x];
  };
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      double u = static_cast<double>(x) - cx, v = static_cast<double>(y) - cy;
      // Counter-clockwise on screen (y down): rotate the sampling point clockwise.
      double sx = ca * u - sa * v + cx, sy = sa * u + ca * v + cy;
      double fx = std::floor(sx), fy = std::floor(sy);
      auto x0 = static_cast<int64_t>(fx), y0 = static_cast<int64_t>(fy);
      double tx = sx - fx, ty = sy - fy;
      double val = (1 - ty) * ((1 - tx) * px(y0, x0) + tx * px(y0, x0 + 1)) +
                   ty * ((1 - tx) * px(y0 + 1, x0) + tx * px(y0 + 1, x0 + 1));
      out[y * W + x] = static_cast<float>(val);
    }
}

}  // namespace

void augment_image(const float* in, float* out, int64_t C, int64_t H, int64_t W,
                   const AugmentParams& p) {
  std::vector<float> tmp(static_cast<size_t>(H * W));
  for (int64_t c = 0; c < C; ++c) {
    const float* src = in + c * H * W;
    float* dst = out + c * H * W;
    if (p.angle_degrees != 0 || p.scale != 1) {
      rotate_scale(src, tmp.data(), H, W, p.angle_degrees, p.scale);
      src = tmp.data();
    }
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        int64_t sy = y + p.dy, sx = (p.flip ? W - 1 - x : x) + p.dx;
        dst[y * W + x] = (sy < 0 || sy >= H || sx < 0 || sx >= W) ? 0.0f : src[sy * W + sx];
      }
  }
}

void augment_batch(Tensor& images, std::span<const int64_t> ids, const AugmentOptions& o,
                   uint64_t seed, uint64_t epoch) {
  if (images.dtype() != DType::f32 || images.rank() != 4)
    throw Error(
        fmt::format("augment: images are {}, expected f32 [B,C,H,W]", images.type_string()));
  const auto& s = images.shape();
  if (static_cast<int64_t>(ids.size()) > s[0])
    throw Error(fmt::format("augment: {} example ids for a batch of {}", ids.size(), s[0]));
  if (o.identity()) return;
  int64_t plane = s[1] * s[2] * s[3];
  std::vector<float> copy(static_cast<size_t>(plane));
  float* data = images.values<float>().data();
  for (size_t i = 0; i < ids.size(); ++i) {
    AugmentParams p = draw_augment(o, seed, epoch, static_cast<uint64_t>(ids[i]));
    float* img = data + static_cast<int64_t>(i) * plane;
    std::memcpy(copy.data(), img, static_cast<size_t>(plane) * sizeof(float));
    augment_image(copy.data(), img, s[1], s[2], s[3], p);
  }
}

}  // namespace stag::rt
