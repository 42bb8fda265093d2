#pragma once
/// Image augmentation for training: random crop with zero padding, horizontal flip, small
/// rotation and scaling (bilinear). Seeded per (seed, epoch, example), so a given example gets the
/// same transform in a given epoch whatever the batch order, thread timing or resume point.

#include <cstdint>
#include <span>

#include "runtime/tensor.h"

namespace stag::rt {

struct AugmentOptions {
  /// Random crop: pad by this many zero pixels on each side, then crop back to H x W at a random
  /// offset — equivalently, shift by (dx, dy) uniform in [-pad, pad]^2 filling with zeros.
  int64_t crop_padding = 0;
  /// Flip left-right with probability 1/2.
  bool horizontal_flip = false;
  /// Rotate by an angle uniform in [-max, max] degrees about the image centre.
  double max_rotation_degrees = 0;
  /// Scale by a factor uniform in [min_scale, max_scale] about the centre.
  double min_scale = 1, max_scale = 1;

  /// True when no option changes the image.
  bool identity() const {
    return crop_padding == 0 && !horizontal_flip && max_rotation_degrees == 0 && min_scale == 1 &&
           max_scale == 1;
  }
};

/// The transform drawn for one example.
struct AugmentParams {
  int64_t dx = 0, dy = 0;  ///< output(y, x) = input(y + dy, x + dx) (zero outside)
  bool flip = false;
  double angle_degrees = 0;  ///< positive turns the picture counter-clockwise as displayed
  double scale = 1;
};

/// Draws from Rng(derive_seed(seed, RngStream::augment, mix(epoch, example))) in this order:
/// dx, dy (below(2*pad+1) - pad), flip (next() >> 63), angle (uniform), scale (uniform); a
/// disabled option draws nothing and keeps its identity value.
AugmentParams draw_augment(const AugmentOptions& options, uint64_t seed, uint64_t epoch,
                           uint64_t example);

/// Applies p to one image of C planes of H x W floats (in and out must not overlap). Order:
/// rotation and scale (bilinear, inverse-mapped about the centre ((W-1)/2, (H-1)/2), zero
/// outside), then the crop shift, then the flip. Identity parameters copy exactly.
void augment_image(const float* in, float* out, int64_t C, int64_t H, int64_t W,
                   const AugmentParams& p);

/// Augments every image of an f32 [B, C, H, W] batch in place; example_ids[i] is row i's index in
/// the data set (the per-example seed).
void augment_batch(Tensor& images, std::span<const int64_t> example_ids,
                   const AugmentOptions& options, uint64_t seed, uint64_t epoch);

}  // namespace stag::rt
