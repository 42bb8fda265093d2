#pragma once
/// The lowering of each op family: one function an op (or a group of ops sharing a kernel),
/// all with one signature so that lower.cpp's table can dispatch to them. `xs` are the
/// operands' buffer ids, `out` where the result (or its epilogue chain's end) is stored.

#include <vector>

#include "compiler/lower/context.h"

namespace stag::lowering {

using LowerFn = void (*)(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);

// init.cpp: parameter initialisation and the source ops.
void lower_init(LowerContext& cx);
void iota(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void random(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);

// elementwise.cpp
/// The scalar formula of an elementwise op, applied to its operands' elements `x`.
E scalar(const Node& n, const std::vector<E>& x, DType out);
void elementwise(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);

// reduce.cpp
void reduce(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
/// Whether a sum, mean or max runs as loops over its output (not over leading axes).
bool reduces_in_loops(const Node& n);
/// Whether a reduction can share its pass with a sibling of the same input shape and axes
/// (fusion.cpp): a sum, mean or max, on either strategy.
bool shares_passes(const Node& n);

// matmul.cpp
void matmul(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
/// Whether n's lowering stores followers (FusionPlan::followers) beside its result: a matmul's,
/// on every strategy, and a batch norm's.
bool stores_followers(const Node& n);
/// Whether a conv2d_weight_grad reads its dy only once, through the copy of dy onto its grid
/// (the lines strategies, given buffers for both operands), so dy may be computed there.
bool weight_grad_copies_dy(const Node& n);

// conv.cpp, conv_transpose.cpp
void conv2d(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void conv2d_weight_grad(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void conv_transpose2d(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);

// pool.cpp
void pool2d(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void max_pool2d_grad(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void global_avg_pool(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
/// Whether max_pool2d_grad takes the tiled path, whose store can carry an epilogue.
bool pool_grad_tiles(const Node& n);

// norm.cpp: normalisations, dropout and softmax.
void batch_norm(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void layer_norm(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void dropout(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void softmax(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);

// attention.cpp: attention and its gradient as row kernels
void attention(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void attention_grad(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);

// index.cpp
void embedding(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void embedding_grad(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void one_hot(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);

// shape.cpp
void reshape(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void transpose(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void concat(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void slice(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void pad(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void split(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);

// scan.cpp: the body's kernels once, in a loop
void scan(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);

// lower.cpp: the kernels of a graph's nodes, in order (a function's, or a scan body's)
void lower_nodes(LowerContext& cx, const Graph& graph);

// loss.cpp
void regression_loss(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void classification_loss(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);
void penalty(LowerContext& cx, const Node& n, const std::vector<int>& xs, int out);

}  // namespace stag::lowering
