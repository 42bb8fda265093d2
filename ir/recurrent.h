#pragma once
/// The recurrent layers both frontends build — the .stag LSTM, GRU and RNN layers (PyTorch's
/// weights) and ONNX's LSTM, GRU and RNN nodes: the cell's gate math written once, and one
/// layer as a scan whose body is the cell. Nodes are made with Builder::create at the builder's
/// location; a BuildError means operands of mismatched shapes (callers check theirs first).

#include <array>
#include <vector>

#include "ir/builder.h"

namespace stag::rnn {

enum class Kind { lstm, gru, rnn };

/// The gate blocks stacked in a weight's rows: 4 for an LSTM, 3 for a GRU, 1 for an RNN.
int gates(Kind kind);

/// Which block of the stacked rows holds each gate, in the order (input, forget, cell, output)
/// for an LSTM and (reset, update, new) for a GRU. PyTorch stacks them in that order.
using GateRows = std::array<int, 4>;
inline constexpr GateRows kPyTorchRows = {0, 1, 2, 3};
inline constexpr GateRows kOnnxLstmRows = {0, 2, 3, 1};  ///< ONNX's i, o, f, c
inline constexpr GateRows kOnnxGruRows = {1, 0, 2, 3};   ///< ONNX's z, r, h

struct Cell {
  Kind kind;
  int64_t hidden;
  GateRows rows = kPyTorchRows;
  /// GRU: the new gate's recurrent term r * (h W_n^T + b_n), PyTorch's form; when false
  /// (r * h) W_n^T + b_n, ONNX's default. Either form needs the new gate's block last.
  bool linear_before_reset = true;
  bool relu = false;  ///< RNN: relu instead of tanh
};

/// The recurrent weight whh [gates * hidden, hidden] and bias bhh (may be null). A GRU without
/// linear_before_reset reads the new gate's rows on their own: then whh and bhh hold the reset
/// and update gates' rows and whn and bhn the new gate's (recurrent_weights splits them).
struct Recurrent {
  Value* whh;
  Value* bhh = nullptr;
  Value* whn = nullptr;
  Value* bhn = nullptr;
};

/// The cell's recurrent weights from the stacked whh and bhh (may be null).
Recurrent recurrent_weights(Builder& b, const Cell& cell, Value* whh, Value* bhh);

/// One step: the new h from the step's input projection xt [batch, gates * hidden] (its bias
/// included), the previous h [batch, hidden] and the recurrent weights. An LSTM's cell state
/// `c` is updated in place.
Value* step(Builder& b, const Cell& cell, Value* xt, Value* h, Value*& c, const Recurrent& w);

/// The input projection of every step at once, x [a, b, in] -> x wih^T + bih [a, b, gates *
/// hidden], as one 2-D product over a*b rows, so that its weight gradient is one product too.
Value* projection(Builder& b, Value* x, Value* wih, Value* bih);

/// One layer over its time-major input projections.
struct Layer {
  Value* xw;              ///< [seq, batch, gates * hidden]
  Value* whh;             ///< [gates * hidden, hidden]
  Value* bhh = nullptr;   ///< [gates * hidden] or null
  Value* h0 = nullptr;    ///< [batch, hidden]; null: zeros
  Value* c0 = nullptr;    ///< LSTM: [batch, hidden]; null: zeros
  bool reverse = false;   ///< from the last step to the first; outputs still in time order
  /// Sequences of their own lengths: bool [seq, batch, 1], true where step t is within sequence
  /// b. Past its end a sequence's state holds and its output is 0 (reversed, it starts from its
  /// own last step). Null: every sequence is full.
  Value* mask = nullptr;
};

/// The layer as one scan: its results are the last h, (an LSTM's last c,) then the h of every
/// step [seq, batch, hidden].
std::vector<Value*> layer_scan(Builder& b, const Cell& cell, const Layer& layer);

}  // namespace stag::rnn
