#pragma once
/// Helpers shared by the convolution and transposed-convolution lowerings.

#include <array>
#include <functional>
#include <string>
#include <vector>

#include "compiler/lower/conv_plan.h"
#include "compiler/lower/families.h"

namespace stag::lowering {

/// Writes the Hd x Wd plane of dst at dst_at: element (h, w) is element (h*step[0] + first[0],
/// w*step[1] + first[1]) of the H x W plane of src at src_at, zero where that lies outside it
/// (and everywhere where `valid`, when given, is false).
/// `read`, when given, reads the source at an index in place of src (the zeros are of dst's type).
std::vector<kir::Stmt> strided_plane(LowerContext& cx, kir::KernelBuilder& kb, int dst, E dst_at, int64_t Hd, int64_t Wd, int src,
                                     E src_at, int64_t H, int64_t W, std::array<int64_t, 2> step, std::array<int64_t, 2> first,
                                     E valid = nullptr, const std::function<E(E)>& read = {});
/// The H x W plane placed at (top, left) of the Hd x Wd plane, zeros around it.
std::vector<kir::Stmt> padded_plane(LowerContext& cx, kir::KernelBuilder& kb, int dst, E dst_at, int64_t Hd, int64_t Wd, int src,
                                    E src_at, int64_t H, int64_t W, int64_t top, int64_t left, E valid = nullptr);
/// Reads pixel `at` of an f32 image of C channels of HW pixels, channel 2 * pair, with the same
/// pixel of the next channel as a bf16 pair (Bin::bf16_pair; zero past the last channel).
std::function<E(E)> channel_pair_read(LowerContext& cx, int src, E pair, int64_t C, int64_t HW);
/// The sizes of a convolution from input x to output y with a KH x KW kernel.
kir::ConvShape conv_shape(const Node& n, const Type& x, const Type& y, int64_t KH, int64_t KW);
/// What the strategy needs to know of the operands (conv_plan.h's ConvOperands).
kir::ConvOperands conv_operands(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
/// conv2d on the product over tap lines of the phase planes (ConvPath::lines, `merged`:
/// lines_merged; ConvPlan::grid_is_output); xs are the input, the weight and the bias if any.
void conv2d_lines(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out, const kir::ConvShape& c, bool merged,
                  bool grid_is_output);
/// The statements that compute, after a convolution stored a plane of its output, that plane's
/// first element, mean less that and sum of squared deviations into `buffer` [3, Bn, O], for the
/// training batch norm
/// that reads the output (LowerContext::plane_stats).
struct PlaneStats {
  int buffer = -1;
  int64_t Bn = 0, O = 0, HW = 0;
  int j = -1, k = -1, s1 = -1, s2 = -1;  ///< the kernel's variables
  static PlaneStats vars(kir::KernelBuilder& kb, int buffer, const kir::ConvShape& c);
  std::vector<kir::Stmt> of(LowerContext& cx, kir::KernelBuilder& kb, int out, E img, E o) const;
};
/// Names the plan's path on every kernel the node emits from here on, and returns the plan.
kir::ConvPlan take(LowerContext& cx, kir::ConvPlan plan);
/// A kernel that only runs `gm`, split over threads in blocks of rows (at least `min_rows`),
/// or of columns when a single product has few rows.
void emit_product(LowerContext& cx, const Node& n, const std::string& name, kir::Gemm gm, int64_t min_rows = 1);

}  // namespace stag::lowering
