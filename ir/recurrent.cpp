// The recurrent cells' gate math and a layer as a scan over its steps, shared by the .stag
// frontend and the ONNX importer.
#include "ir/recurrent.h"

namespace stag::rnn {

int gates(Kind kind) { return kind == Kind::lstm ? 4 : kind == Kind::gru ? 3 : 1; }

namespace {

Value* linear(Builder& b, Value* x, Value* w, Value* bias) {
  Value* y = b.matmul({x, w}, {{"transpose_b", true}});
  return bias ? b.add({y, bias}) : y;
}

std::vector<Value*> split(Builder& b, Value* x, int n, int64_t hidden) {
  return b.create(Op::split, {x}, {{"axis", int64_t{1}}, {"sizes", Ints(static_cast<size_t>(n), hidden)}});
}

// Rows [from, to) of a weight's (or bias's) first axis.
Value* rows(Builder& b, Value* w, int64_t from, int64_t to) {
  return w ? b.slice({w}, {{"axes", Ints{0}}, {"starts", Ints{from}}, {"ends", Ints{to}}}) : nullptr;
}

Value* lstm(Builder& b, const Cell& cell, Value* xt, Value* h, Value*& c, const Recurrent& w) {
  auto q = split(b, b.add({xt, linear(b, h, w.whh, w.bhh)}), 4, cell.hidden);
  const GateRows& r = cell.rows;
  Value *ig = b.sigmoid({q[r[0]]}), *fg = b.sigmoid({q[r[1]]});
  Value *gg = b.tanh({q[r[2]]}), *og = b.sigmoid({q[r[3]]});
  c = b.add({b.mul({fg, c}), b.mul({ig, gg})});
  return b.mul({og, b.tanh({c})});
}

// The new gate's recurrent term is r * (h W_n^T + b_n) (linear before reset) or (r * h) W_n^T + b_n.
Value* gru(Builder& b, const Cell& cell, Value* xt, Value* h, const Recurrent& w) {
  const GateRows& g = cell.rows;
  int64_t n = cell.hidden;
  bool before = cell.linear_before_reset;
  Value* hw = linear(b, h, w.whh, w.bhh);
  auto xs = split(b, xt, 3, n), hs = split(b, hw, before ? 3 : 2, n);
  Value* r = b.sigmoid({b.add({xs[g[0]], hs[g[0]]})});
  Value* z = b.sigmoid({b.add({xs[g[1]], hs[g[1]]})});
  Value* recurrent = before ? b.mul({r, hs[2]}) : linear(b, b.mul({r, h}), w.whn, w.bhn);
  Value* nn = b.tanh({b.add({xs[2], recurrent})});
  return b.add({nn, b.mul({z, b.sub({h, nn})})});  // (1 - z) * n + z * h
}

}  // namespace

Recurrent recurrent_weights(Builder& b, const Cell& cell, Value* whh, Value* bhh) {
  if (cell.kind != Kind::gru || cell.linear_before_reset) return {whh, bhh};
  int64_t n = cell.hidden;
  return {rows(b, whh, 0, 2 * n), rows(b, bhh, 0, 2 * n), rows(b, whh, 2 * n, 3 * n), rows(b, bhh, 2 * n, 3 * n)};
}

Value* step(Builder& b, const Cell& cell, Value* xt, Value* h, Value*& c, const Recurrent& w) {
  if (cell.kind == Kind::lstm) return lstm(b, cell, xt, h, c, w);
  if (cell.kind == Kind::gru) return gru(b, cell, xt, h, w);
  Value* pre = b.add({xt, linear(b, h, w.whh, w.bhh)});
  return cell.relu ? b.relu({pre}) : b.tanh({pre});
}

Value* projection(Builder& b, Value* x, Value* wih, Value* bih) {
  Dims d = x->type.dims;
  Value* y = linear(b, b.reshape({x}, {{"shape", Ints{d[0] * d[1], d[2]}}}), wih, bih);
  return b.reshape({y}, {{"shape", Ints{d[0], d[1], y->type.dims[1]}}});
}

namespace {

// Past a sequence's end (mask false) its state holds and its output is 0.
void hold(Builder& b, Value* m, Value* h, Value* c0, Value*& h1, Value*& c1, Value*& y) {
  y = b.select({m, h1, b.scalar(0, h1->type.dtype)});
  h1 = b.select({m, h1, h});
  if (c1) c1 = b.select({m, c1, c0});
}

// The body: (h, [c,] x_t, [mask_t,] whh, [bhh, whn, bhn]) -> (h', [c',] y_t = h').
std::shared_ptr<Graph> body(const Builder& outer, const Cell& cell, const Layer& l, const Recurrent& w, const Type& state) {
  auto g = std::make_shared<Graph>("body");
  Builder b(*g);
  b.set_loc(outer.loc());
  bool lstm = cell.kind == Kind::lstm;
  Value* h = b.input("h", state);
  Value* c = lstm ? b.input("c", state) : nullptr;
  Value* xt = b.input("x", {state.dtype, {state.dims[0], l.xw->type.dims[2]}});
  Value* m = l.mask ? b.input("mask", {DType::b8, {state.dims[0], 1}}) : nullptr;
  auto in = [&](const char* name, Value* v) { return v ? b.input(name, v->type) : nullptr; };
  Recurrent bw{in("weight_hh", w.whh), in("bias_hh", w.bhh), in("weight_hn", w.whn), in("bias_hn", w.bhn)};
  Value *c1 = c, *h1 = step(b, cell, xt, h, c1, bw), *y = h1;
  if (m) hold(b, m, h, c, h1, c1, y);
  b.output("h", h1);
  if (lstm) b.output("c", c1);
  b.output("y", y);
  return g;
}

}  // namespace

std::vector<Value*> layer_scan(Builder& b, const Cell& cell, const Layer& l) {
  int64_t seq = l.xw->type.dims[0], batch = l.xw->type.dims[1];
  Type state{l.xw->type.dtype, {batch, cell.hidden}};
  Recurrent w = recurrent_weights(b, cell, l.whh, l.bhh);
  auto g = body(b, cell, l, w, state);
  bool lstm = cell.kind == Kind::lstm;
  auto zeros = [&] { return b.create(Op::constant, {}, {{"value", Floats{0}}}, {state})[0]; };
  std::vector<Value*> operands{l.h0 ? l.h0 : zeros()};
  if (lstm) operands.push_back(l.c0 ? l.c0 : zeros());
  operands.push_back(l.xw);
  if (l.mask) operands.push_back(l.mask);
  for (Value* v : {w.whh, w.bhh, w.whn, w.bhn})
    if (v) operands.push_back(v);
  NamedAttrs attrs{{"num_carries", int64_t{lstm ? 2 : 1}}, {"num_xs", int64_t{l.mask ? 2 : 1}}, {"length", seq}};
  if (l.reverse) attrs.emplace_back("reverse", true);
  return b.create(Op::scan, operands, attrs, {}, {}, g);
}

}  // namespace stag::rnn
