// LSTM, GRU and RNN layers with PyTorch's parameters (weight_ih_l0, ..., gate order i,f,g,o for
// LSTM and r,z,n for GRU): each layer one scan whose body is the cell, after the input
// projection of every step as one product; unrolled over the sequence (LoadOptions::unroll) and
// in a decode step, one step long.

#include <fmt/format.h>

#include <cmath>

#include "frontend/lowering.h"
#include "ir/recurrent.h"

namespace stag::fe {

namespace {

rnn::Kind kind_of(const Instance& in) { return in.kind == "LSTM" ? rnn::Kind::lstm : in.kind == "GRU" ? rnn::Kind::gru : rnn::Kind::rnn; }
int gates(const Instance& in) { return rnn::gates(kind_of(in)); }

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
  // The state layer l starts from: zeros, or in a decode step its row of the carried state.
  Value* initial(Value* carried, int64_t l, int64_t batch) {
    if (!carried) return c.fill(0, {DType::f32, {batch, hidden}}, loc);
    Value* row = op(Op::slice, {carried}, {{"axes", Ints{0}}, {"starts", Ints{l}}, {"ends", Ints{l + 1}}});
    return op(Op::reshape, {row}, {{"shape", Ints{batch, hidden}}});
  }
  // The layer's cell, its gate math in ir/recurrent.cpp; its nodes are made at loc.
  rnn::Cell cell() {
    c.b.set_loc(c.scoped(loc));
    bool relu = in.kind == "RNN" && in.arg("nonlinearity").s == "relu";
    return {kind_of(in), hidden, rnn::kPyTorchRows, true, relu};
  }
};

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
      if (!xt || !h || (g == 4 && !cell)) return {};
      h = rnn::step(c.b, s.cell(), xt, h, cell, {p("weight_hh"), p("bias_hh")});
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
    c.b.set_loc(c.scoped(loc));  // the shared builders' nodes are the layer's
    Value* xw = x ? rnn::projection(c.b, x, w.wih, w.bih) : nullptr;
    if (xw && !time_major && !before) xw = swap01(s, xw);
    if (!xw) return {};
    auto r = rnn::layer_scan(c.b, s.cell(), {xw, w.whh, w.bhh});
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
  try {
    if (c.opts.unroll || c.opts.decode) return fwd_unrolled(c, in, x, loc);
    return fwd_scanned(c, in, x, loc);
  } catch (const BuildError& e) {  // from the cells' shared construction
    c.error(loc, fmt::format("{}: {}", in.label(), e.what()));
    return {};
  }
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
