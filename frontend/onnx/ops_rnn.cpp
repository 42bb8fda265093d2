// Converters of the recurrent ops LSTM, GRU and RNN: each direction one scan over the steps,
// built as the .stag layers build theirs (ir/recurrent.h), with ONNX's gate order (iofc, zrh),
// weights W [dirs, gates*hidden, input], R [dirs, gates*hidden, hidden], B = [Wb, Rb], and its
// layouts. Supported: directions forward, reverse and bidirectional; initial_h, initial_c;
// GRU's linear_before_reset; layout 0 and 1; the default activations (and Relu for RNN);
// sequence_lens (past its length a sequence's state holds and Y is 0, as onnxruntime does).
// Not supported, each named in the error: clip, other activations, input_forget, LSTM's
// peepholes P.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>

#include "frontend/onnx/ctx.h"
#include "ir/recurrent.h"

namespace stag::onnx_import {

namespace {

using Vals = std::vector<Value*>;
using rnn::Kind;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return s;
}

// The activations of one direction by default; an RNN may also use relu throughout.
std::vector<std::string> default_activations(Kind kind) {
  if (kind == Kind::lstm) return {"sigmoid", "tanh", "tanh"};
  if (kind == Kind::gru) return {"sigmoid", "tanh"};
  return {"tanh"};
}

// True for an RNN whose activations are all Relu; fails on any other non-default list.
bool check_activations(Ctx& c, Kind kind, int64_t dirs) {
  const auto* a = c.attr("activations");
  if (!a) return false;
  std::vector<std::string> given;
  for (const auto& s : a->strings()) given.push_back(lower(s));
  std::vector<std::string> want;
  for (int64_t d = 0; d < dirs; ++d)
    for (const auto& s : default_activations(kind)) want.push_back(s);
  if (given == want) return false;
  if (kind == Kind::rnn && given == std::vector<std::string>(static_cast<size_t>(dirs), "relu")) return true;
  fail(fmt::format("activations [{}] are not supported (only the defaults [{}])", fmt::join(a->strings(), ", "), fmt::join(want, ", ")));
}

void check_attributes(Ctx& c, Kind kind) {
  if (c.attr("clip")) fail("the clip attribute is not supported");
  if (c.ai("input_forget", 0) != 0) fail("input_forget=1 is not supported");
  if (kind == Kind::lstm && c.has(7)) fail("peephole weights (input P) are not supported");
  int64_t layout = c.ai("layout", 0);
  if (layout != 0 && layout != 1) fail(fmt::format("layout must be 0 or 1, got {}", layout));
}

int64_t directions(Ctx& c) {
  std::string d = c.as("direction", "forward");
  if (d != "forward" && d != "reverse" && d != "bidirectional") fail(fmt::format("unknown direction '{}'", d));
  return d == "bidirectional" ? 2 : 1;
}

void expect(const Value* v, const Dims& dims, std::string_view what) {
  if (v->type.dims != dims) fail(fmt::format("{} must have shape [{}], got {}", what, fmt::join(dims, ", "), to_string(v->type)));
}

Value* transpose(Ctx& c, Value* v, const Ints& perm) { return c.op(Op::transpose, {v}, {{"perm", perm}}); }

// Direction d's block of a tensor stacked by direction on its first axis, without that axis.
Value* direction(Ctx& c, Value* v, int64_t d) {
  if (!v) return nullptr;
  Dims rest(v->type.dims.begin() + 1, v->type.dims.end());
  if (v->type.dims[0] != 1) v = c.op(Op::slice, {v}, {{"axes", Ints{0}}, {"starts", Ints{d}}, {"ends", Ints{d + 1}}});
  return c.reshape(v, rest);
}

// Per-direction tensors [batch, hidden] stacked as [dirs, batch, hidden] ([batch, dirs, hidden] in layout 1).
Value* stack_states(Ctx& c, const Vals& states, bool batch_first) {
  Vals rows;
  for (Value* s : states) rows.push_back(c.reshape(s, {1, s->type.dims[0], s->type.dims[1]}));
  Value* y = rows.size() == 1 ? rows[0] : c.op(Op::concat, rows, {{"axis", int64_t{0}}});
  return batch_first ? transpose(c, y, {1, 0, 2}) : y;
}

// Per-direction outputs [seq, batch, hidden] as Y [seq, dirs, batch, hidden] ([batch, seq, dirs, hidden] in layout 1).
Value* stack_outputs(Ctx& c, const Vals& ys, bool batch_first) {
  Vals parts;
  for (Value* y : ys) {
    const Dims& d = y->type.dims;
    parts.push_back(c.reshape(y, {d[0], 1, d[1], d[2]}));
  }
  Value* y = parts.size() == 1 ? parts[0] : c.op(Op::concat, parts, {{"axis", int64_t{1}}});
  return batch_first ? transpose(c, y, {2, 0, 1, 3}) : y;
}

// An initial state input (5: initial_h, 6: initial_c) as [dirs, batch, hidden], or null.
Value* initial_state(Ctx& c, size_t i, const Dims& time_major, bool batch_first, std::string_view what) {
  if (!c.has(i)) return nullptr;
  Value* v = c.in(i);
  expect(v, batch_first ? Dims{time_major[1], time_major[0], time_major[2]} : time_major, what);
  return batch_first ? transpose(c, v, {1, 0, 2}) : v;
}

// sequence_lens as the steps' mask [seq, batch, 1] (t < length of b), or null when every
// sequence is known to be full. The lengths may be computed at run time.
Value* step_mask(Ctx& c, int64_t seq, int64_t batch) {
  if (!c.has(4)) return nullptr;
  Value* lens = c.in(4);
  expect(lens, {batch}, "sequence_lens");
  if (auto it = c.known.find(lens); it != c.known.end() && std::all_of(it->second.data.begin(), it->second.data.end(), [&](double l) { return l == seq; }))
    return nullptr;
  Value* t = c.b.create(Op::iota, {}, {{"axis", int64_t{0}}}, {{DType::i64, {seq, batch, 1}}})[0];
  return c.op(Op::lt, {t, c.reshape(c.cast(lens, DType::i64), {1, batch, 1})});
}

struct Weights {
  Value *w, *r, *wb, *rb;
};

Weights weights(Ctx& c, Kind kind, int64_t dirs, int64_t hidden, int64_t input) {
  int64_t g = rnn::gates(kind) * hidden;
  Weights out{c.in(1), c.in(2), nullptr, nullptr};
  expect(out.w, {dirs, g, input}, "W");
  expect(out.r, {dirs, g, hidden}, "R");
  if (c.has(3)) {
    Value* b = c.in(3);
    expect(b, {dirs, 2 * g}, "B");
    auto halves = c.ops(Op::split, {b}, {{"axis", int64_t{1}}, {"sizes", Ints{g, g}}});
    out.wb = halves[0], out.rb = halves[1];
  }
  return out;
}

rnn::Cell cell_of(Ctx& c, Kind kind, int64_t hidden, int64_t dirs) {
  bool relu = check_activations(c, kind, dirs);
  rnn::GateRows rows = kind == Kind::lstm ? rnn::kOnnxLstmRows : kind == Kind::gru ? rnn::kOnnxGruRows : rnn::kPyTorchRows;
  return {kind, hidden, rows, c.ai("linear_before_reset", 0) != 0, relu};
}

template <Kind K>
Vals recurrent(Ctx& c) {
  check_attributes(c, K);
  int64_t dirs = directions(c);
  bool batch_first = c.ai("layout", 0) == 1;
  Value* x = c.in(0);
  if (x->type.rank() != 3) fail(fmt::format("X must have rank 3, got {}", to_string(x->type)));
  if (batch_first) x = transpose(c, x, {1, 0, 2});
  int64_t seq = x->type.dims[0], batch = x->type.dims[1];
  Value* r_in = c.in(2);
  int64_t hidden = c.ai("hidden_size", r_in->type.rank() == 3 ? r_in->type.dims[2] : 0);
  if (hidden < 1) fail(fmt::format("hidden_size must be positive, got {}", hidden));
  Weights w = weights(c, K, dirs, hidden, x->type.dims[2]);
  Value* mask = step_mask(c, seq, batch);
  Value* h0 = initial_state(c, 5, {dirs, batch, hidden}, batch_first, "initial_h");
  Value* c0 = K == Kind::lstm ? initial_state(c, 6, {dirs, batch, hidden}, batch_first, "initial_c") : nullptr;
  rnn::Cell cell = cell_of(c, K, hidden, dirs);
  bool reverse = c.as("direction", "forward") == "reverse";
  Vals ys, hs, cs;
  for (int64_t d = 0; d < dirs; ++d) {
    Value* xw = rnn::projection(c.b, x, direction(c, w.w, d), direction(c, w.wb, d));
    rnn::Layer layer{xw, direction(c, w.r, d), direction(c, w.rb, d), direction(c, h0, d), direction(c, c0, d), reverse || d == 1, mask};
    Vals r = rnn::layer_scan(c.b, cell, layer);
    hs.push_back(r[0]);
    if (K == Kind::lstm) cs.push_back(r[1]);
    ys.push_back(r.back());
  }
  Vals out{stack_outputs(c, ys, batch_first), stack_states(c, hs, batch_first)};
  if (K == Kind::lstm) out.push_back(stack_states(c, cs, batch_first));
  return out;
}

}  // namespace

const std::vector<OpEntry>& rnn_ops() {
  static const std::vector<OpEntry> table = {
      {"LSTM", recurrent<Kind::lstm>}, {"GRU", recurrent<Kind::gru>}, {"RNN", recurrent<Kind::rnn>},
  };
  return table;
}

}  // namespace stag::onnx_import
