// LSTM, GRU and RNN layers with PyTorch's parameters (weight_ih_l0, ..., gate order i,f,g,o for
// LSTM and r,z,n for GRU): each layer one scan whose body is the cell, after the input
// projection of every step as one product; unrolled over the sequence (LoadOptions::unroll) and
// in a decode step, one step long.

#include <fmt/format.h>

#include <cmath>

#include "frontend/lowering.h"

namespace stag::fe {

namespace {

int gates(const Instance& in) { return in.kind == "LSTM" ? 4 : in.kind == "GRU" ? 3 : 1; }

bool make_rnn(Ctx& c, Instance& in) {
  int64_t hidden = in.i("hidden_size"), layers = in.i("num_layers");
  if (layers > 64) {
    c.error(in.loc, fmt::format("{}: num_layers {} is more than 64", in.path, layers));
    return false;
  }
  if (in.b("bidirectional")) {
    c.error(in.loc, fmt::format("{}: bidirectional recurrent layers are not supported", in.path));
    return false;
  }
  if (in.kind == "RNN" && in.arg("nonlinearity").s != "tanh" && in.arg("nonlinearity").s != "relu") {
    c.error(in.loc, fmt::format("{}: nonlinearity must be \"tanh\" or \"relu\", got \"{}\"", in.path,
                                in.arg("nonlinearity").s));
    return false;
  }
  int64_t g = gates(in) * hidden;
  double k = 1.0 / std::sqrt(static_cast<double>(hidden));
  NamedAttrs init{{"init", std::string("uniform")}, {"low", -k}, {"high", k}};
  for (int64_t l = 0; l < layers; ++l) {
    int64_t fan = l == 0 ? in.i("input_size") : hidden;
    c.parameter(in, fmt::format("weight_ih_l{}", l), {DType::f32, {g, fan}}, init);
    c.parameter(in, fmt::format("weight_hh_l{}", l), {DType::f32, {g, hidden}}, init);
    if (in.b("bias")) {
      c.parameter(in, fmt::format("bias_ih_l{}", l), {DType::f32, {g}}, init);
      c.parameter(in, fmt::format("bias_hh_l{}", l), {DType::f32, {g}}, init);
    }
  }
  return true;
}

struct Step {
  Ctx& c;
  Instance& in;
  const Loc& loc;
  std::string ctx;
  int64_t hidden;

  Value* op(Op o, std::vector<Value*> xs, NamedAttrs a = {}) { return c.op(o, xs, a, loc, ctx); }
  std::vector<Value*> split(Value* x, int n) {
    auto r = c.ops(Op::split, {x}, {{"axis", int64_t{1}}, {"sizes", Ints(static_cast<size_t>(n), hidden)}}, loc, ctx);
    if (r.size() != static_cast<size_t>(n)) return std::vector<Value*>(static_cast<size_t>(n), nullptr);
    return r;
  }
  // The state layer l starts from: zeros, or in a decode step its row of the carried state.
  Value* initial(Value* carried, int64_t l, int64_t batch) {
    if (!carried) return c.fill(0, {DType::f32, {batch, hidden}}, loc);
    Value* row = op(Op::slice, {carried}, {{"axes", Ints{0}}, {"starts", Ints{l}}, {"ends", Ints{l + 1}}});
    return op(Op::reshape, {row}, {{"shape", Ints{batch, hidden}}});
  }
};

// One step of the cell: the new h (and, for an LSTM, the new cell state) from the step's input
// projection xt [batch, gates * hidden] and the previous h.
Value* cell_step(Step& s, int g, Value* xt, Value* h, Value*& cell, Value* whh, Value* bhh) {
  Value* hw = linear(s.c, h, whh, bhh, s.loc, s.ctx);
  if (!xt || !hw) return nullptr;
  if (g == 4) {
    auto q = s.split(s.op(Op::add, {xt, hw}), 4);
    Value *ig = s.op(Op::sigmoid, {q[0]}), *fg = s.op(Op::sigmoid, {q[1]});
    Value *gg = s.op(Op::tanh, {q[2]}), *og = s.op(Op::sigmoid, {q[3]});
    cell = s.op(Op::add, {s.op(Op::mul, {fg, cell}), s.op(Op::mul, {ig, gg})});
    return s.op(Op::mul, {og, s.op(Op::tanh, {cell})});
  }
  if (g == 3) {
    auto xs = s.split(xt, 3), hs = s.split(hw, 3);
    Value* r = s.op(Op::sigmoid, {s.op(Op::add, {xs[0], hs[0]})});
    Value* z = s.op(Op::sigmoid, {s.op(Op::add, {xs[1], hs[1]})});
    Value* n = s.op(Op::tanh, {s.op(Op::add, {xs[2], s.op(Op::mul, {r, hs[2]})})});
    return s.op(Op::add, {n, s.op(Op::mul, {z, s.op(Op::sub, {h, n})})});  // (1 - z) * n + z * h
  }
  bool relu = s.in.arg("nonlinearity").s == "relu";
  return s.op(relu ? Op::relu : Op::tanh, {s.op(Op::add, {xt, hw})});
}

std::vector<Val> fwd_unrolled(Ctx& c, Instance& in, Value* x, const Loc& loc) {
  int64_t hidden = in.i("hidden_size");
  bool bf = in.b("batch_first");
  Step s{c, in, loc, in.label(), hidden};
  if (!bf) x = s.op(Op::transpose, {x}, {{"perm", Ints{1, 0, 2}}});
  if (!x) return {};
  int64_t batch = x->type.dims[0], seq = x->type.dims[1];
  if (seq > kMaxUnroll) {
    c.error(loc, fmt::format("{}: sequence length {} is more than the {} steps a layer may unroll", in.label(), seq,
                             kMaxUnroll));
    return {};
  }
  int g = gates(in);
  std::vector<Value*> h_last, c_last;
  Type carried{DType::f32, {in.i("num_layers"), batch, hidden}};
  Value* h0 = c.opts.decode ? c.cache_input(in.path + ".h", carried, loc) : nullptr;
  Value* c0 = c.opts.decode && g == 4 ? c.cache_input(in.path + ".c", carried, loc) : nullptr;
  if (c.opts.decode && (!h0 || (g == 4 && !c0))) return {};
  for (int64_t l = 0; l < in.i("num_layers"); ++l) {
    auto p = [&](const char* what) -> Value* {
      auto it = in.params.find(fmt::format("{}_l{}", what, l));
      return it == in.params.end() ? nullptr : it->second;
    };
    if (!p("weight_ih") || !p("weight_hh")) return {};
    // The input projection of every step at once: [batch, seq, gates * hidden].
    Value* xw = linear(c, x, p("weight_ih"), p("bias_ih"), loc, s.ctx);
    Value* h = s.initial(h0, l, batch);
    Value* cell = g == 4 ? s.initial(c0, l, batch) : nullptr;
    std::vector<Value*> outs;
    for (int64_t t = 0; t < seq && xw; ++t) {
      Value* xt = s.op(Op::slice, {xw}, {{"axes", Ints{1}}, {"starts", Ints{t}}, {"ends", Ints{t + 1}}});
      xt = s.op(Op::reshape, {xt}, {{"shape", Ints{batch, g * hidden}}});
      h = cell_step(s, g, xt, h, cell, p("weight_hh"), p("bias_hh"));
      if (!h) return {};
      outs.push_back(s.op(Op::reshape, {h}, {{"shape", Ints{batch, 1, hidden}}}));
    }
    x = outs.size() == 1 ? outs[0] : s.op(Op::concat, outs, {{"axis", int64_t{1}}});
    if (!x) return {};
    double drop = in.f("dropout");
    if (drop > 0 && l + 1 < in.i("num_layers")) {
      if (c.training()) x = s.op(Op::dropout, {x, c.step_key(loc)}, {{"p", drop}, {"training", true}, {"seed", c.next_seed++}});
      else x = s.op(Op::dropout, {x}, {{"p", drop}, {"training", false}});
    }
    h_last.push_back(s.op(Op::reshape, {h}, {{"shape", Ints{1, batch, hidden}}}));
    if (cell) c_last.push_back(s.op(Op::reshape, {cell}, {{"shape", Ints{1, batch, hidden}}}));
  }
  if (!bf) x = s.op(Op::transpose, {x}, {{"perm", Ints{1, 0, 2}}});
  auto stack = [&](const std::vector<Value*>& v) { return v.size() == 1 ? v[0] : s.op(Op::concat, v, {{"axis", int64_t{0}}}); };
  std::vector<Val> out{Val::tensor(x), Val::tensor(stack(h_last))};
  if (g == 4) out.push_back(Val::tensor(stack(c_last)));
  if (c.opts.decode) {
    c.cache_output(in.path + ".h", out[1].t, loc);
    if (g == 4) c.cache_output(in.path + ".c", out[2].t, loc);
  }
  for (const Val& v : out)
    if (!v.ok()) return {};
  return out;
}


// The parameters of layer l (a missing bias is null).
struct LayerParams {
  Value *wih, *whh, *bih, *bhh;
};
LayerParams layer_params(Instance& in, int64_t l) {
  auto p = [&](const char* what) -> Value* {
    auto it = in.params.find(fmt::format("{}_l{}", what, l));
    return it == in.params.end() ? nullptr : it->second;
  };
  return {p("weight_ih"), p("weight_hh"), p("bias_ih"), p("bias_hh")};
}

// The scan of one layer over xw [seq, batch, gates * hidden] (time major) from zero state: its
// carries h (and c), then the stacked h of every step [seq, batch, hidden]. The body is the cell.
std::vector<Value*> layer_scan(Step& s, int g, Value* xw, const LayerParams& w) {
  Ctx& c = s.c;
  int64_t seq = xw->type.dims[0], batch = xw->type.dims[1];
  Type state{DType::f32, {batch, s.hidden}};
  auto body = std::make_shared<Graph>("body");
  Ctx bc(*body, c.diags, c.opts);
  bc.scope = c.scope;
  bc.b.set_loc(c.scoped(s.loc));
  Value* h = bc.b.input("h", state);
  Value* cell = g == 4 ? bc.b.input("c", state) : nullptr;
  Value* xt = bc.b.input("x", {DType::f32, {batch, g * s.hidden}});
  Value* whh = bc.b.input("weight_hh", w.whh->type);
  Value* bhh = w.bhh ? bc.b.input("bias_hh", w.bhh->type) : nullptr;
  Step bs{bc, s.in, s.loc, s.ctx, s.hidden};
  Value* h1 = cell_step(bs, g, xt, h, cell, whh, bhh);
  if (!h1) return {};
  bc.b.output("h", h1);
  if (cell) bc.b.output("c", cell);
  bc.b.output("y", h1);
  std::vector<Value*> operands{s.initial(nullptr, 0, batch)};
  if (g == 4) operands.push_back(s.initial(nullptr, 0, batch));
  operands.insert(operands.end(), {xw, w.whh});
  if (w.bhh) operands.push_back(w.bhh);
  NamedAttrs attrs{{"num_carries", int64_t{g == 4 ? 2 : 1}}, {"num_xs", int64_t{1}}, {"length", seq}};
  c.b.set_loc(c.scoped(s.loc));
  auto r = c.b.try_create(Op::scan, operands, attrs, {}, {}, body);
  if (!r.error.empty()) c.error(s.loc, fmt::format("{}: {}", s.ctx, r.error));
  return r.values;
}

// The input projection of every step, x [a, b, in] -> [a, b, gates * hidden], as one 2-D product
// over a*b rows, so that its weight gradient is one product too (not a product per step summed).
Value* projection(Step& s, Value* x, const LayerParams& w) {
  Dims d = x->type.dims;
  Value* rows = s.op(Op::reshape, {x}, {{"shape", Ints{d[0] * d[1], d[2]}}});
  Value* y = rows ? linear(s.c, rows, w.wih, w.bih, s.loc, s.ctx) : nullptr;
  return y ? s.op(Op::reshape, {y}, {{"shape", Ints{d[0], d[1], y->type.dims[1]}}}) : nullptr;
}

// [a, b, f] <-> [b, a, f]: batch first and time major.
Value* swap01(Step& s, Value* x) { return s.op(Op::transpose, {x}, {{"perm", Ints{1, 0, 2}}}); }

// Every layer a scan, time major inside; a layer's input projection is one product over all its
// steps. Dropout between layers draws over the batch-first layout, as the unrolled form does.
std::vector<Val> fwd_scanned(Ctx& c, Instance& in, Value* x, const Loc& loc) {
  int64_t hidden = in.i("hidden_size");
  bool bf = in.b("batch_first");
  Step s{c, in, loc, in.label(), hidden};
  int g = gates(in);
  bool time_major = !bf;
  std::vector<Value*> h_last, c_last;
  for (int64_t l = 0; l < in.i("num_layers") && x; ++l) {
    LayerParams w = layer_params(in, l);
    if (!w.wih || !w.whh) return {};
    // Transpose whichever of the input and its projection is smaller into time-major order.
    bool before = !time_major && x->type.dims[2] <= g * hidden;
    if (before) x = swap01(s, x);
    Value* xw = x ? projection(s, x, w) : nullptr;
    if (xw && !time_major && !before) xw = swap01(s, xw);
    if (!xw) return {};
    auto r = layer_scan(s, g, xw, w);
    if (r.empty()) return {};
    int64_t batch = xw->type.dims[1];
    h_last.push_back(s.op(Op::reshape, {r[0]}, {{"shape", Ints{1, batch, hidden}}}));
    if (g == 4) c_last.push_back(s.op(Op::reshape, {r[1]}, {{"shape", Ints{1, batch, hidden}}}));
    x = r.back();
    time_major = true;
    double drop = in.f("dropout");
    if (drop > 0 && l + 1 < in.i("num_layers")) {
      x = swap01(s, x);
      time_major = false;
      if (c.training()) x = s.op(Op::dropout, {x, c.step_key(loc)}, {{"p", drop}, {"training", true}, {"seed", c.next_seed++}});
      else x = s.op(Op::dropout, {x}, {{"p", drop}, {"training", false}});
    }
  }
  if (x && time_major == bf) x = swap01(s, x);
  auto stack = [&](const std::vector<Value*>& v) { return v.size() == 1 ? v[0] : s.op(Op::concat, v, {{"axis", int64_t{0}}}); };
  std::vector<Val> out{Val::tensor(x), Val::tensor(h_last.empty() ? nullptr : stack(h_last))};
  if (g == 4) out.push_back(Val::tensor(c_last.empty() ? nullptr : stack(c_last)));
  for (const Val& v : out)
    if (!v.ok()) return {};
  return out;
}

std::vector<Val> fwd_rnn(Ctx& c, Instance& in, const std::vector<Val>& args, const Loc& loc) {
  Value* x = args[0].t;
  int64_t input = in.i("input_size");
  bool bf = in.b("batch_first");
  if (x->type.rank() != 3 || x->type.dims[2] != input) {
    c.error(loc, fmt::format("{}: expects input {} with {} features, got {}", in.label(),
                             bf ? "[batch, seq, features]" : "[seq, batch, features]", input, to_string(x->type)));
    return {};
  }
  // A decode step is one step long, and carries its state in and out.
  if (c.opts.unroll || c.opts.decode) return fwd_unrolled(c, in, x, loc);
  return fwd_scanned(c, in, x, loc);
}

}  // namespace

void add_recurrent_layers(std::vector<LayerKind>& t) {
  using A = ArgKind;
  std::vector<ArgSpec> common{{"input_size", A::Size},
                              {"hidden_size", A::Size},
                              {"num_layers", A::Size, Val::integer(1)},
                              {"bias", A::Bool, Val::boolean(true)},
                              {"batch_first", A::Bool, Val::boolean(false)},
                              {"dropout", A::Prob, Val::real(0)},
                              {"bidirectional", A::Bool, Val::boolean(false)}};
  t.push_back({"LSTM", common, make_rnn, fwd_rnn});
  t.push_back({"GRU", common, make_rnn, fwd_rnn});
  // PyTorch's RNN takes nonlinearity third: RNN(input_size, hidden_size, num_layers, nonlinearity, bias, ...).
  std::vector<ArgSpec> rnn = common;
  rnn.insert(rnn.begin() + 3, {"nonlinearity", A::Str, Val::str("tanh")});
  t.push_back({"RNN", rnn, make_rnn, fwd_rnn});
}

}  // namespace stag::fe
