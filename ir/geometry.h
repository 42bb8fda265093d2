#pragma once
/// The window of a 2-D convolution or pooling op, decoded once from its attributes: the shape
/// rules, the reference interpreter, the gradient rules and the lowering all read it here.

#include <cstdint>

#include "ir/attr.h"

namespace stag {

struct Node;
struct ShapeCtx;

/// A 2-D window op's attributes, per spatial axis (height, width), with the op's defaults
/// resolved: a pool without `stride` steps by its kernel, one without `dilation` has 1.
/// Fields an op does not have keep their defaults. The pairs are as given: a shape rule
/// checks that they are pairs before it indexes them.
struct Window2d {
  Ints kernel;                   ///< pools and conv2d_weight_grad (a convolution's is its weight's dims)
  Ints stride, padding, dilation = {1, 1};
  Ints output_padding = {0, 0};  ///< conv_transpose2d
  int64_t groups = 1;            ///< convolutions
  bool ceil_mode = false;        ///< pools

  static Window2d of(const Node& n);
  static Window2d of(const ShapeCtx& c);
};

}  // namespace stag
