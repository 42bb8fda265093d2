// ONNX's Scan (opsets 8 and 9+) and Loop with a static trip count, onto stag's scan op. The
// body's nodes are converted by the same converters, in the enclosing graph, reading
// placeholders for the loop-carried values and each step's slices; then the nodes that depend
// on a placeholder move into the scan's body (ir/outline.h): values the body reads from the
// outer graph become loop invariants, and work that depends on no step stays outside.

#include <fmt/format.h>

#include <unordered_set>

#include "frontend/onnx/ctx.h"
#include "ir/outline.h"

namespace stag::onnx_import {

namespace {

using Vals = std::vector<Value*>;

const onnx::GraphProto& body_of(Ctx& c) {
  const auto* a = c.attr("body");
  if (!a || !a->has_g()) fail("needs its `body` graph attribute");
  return a->g();
}

// A body node in messages: its name, or its index and first output.
std::string label(const onnx::NodeProto& n, int index) {
  if (!n.name().empty()) return fmt::format("'{}'", n.name());
  return n.output_size() > 0 ? fmt::format("#{} (output '{}')", index, n.output(0)) : fmt::format("#{}", index);
}

// Converts the body's nodes in c's graph, its inputs bound to `args`; the values of its outputs.
// The body's names are its own: c's names are as before afterwards.
Vals convert_body(Ctx& c, const onnx::GraphProto& body, const Vals& args) {
  if (static_cast<size_t>(body.input_size()) != args.size())
    fail(fmt::format("the body takes {} inputs, the node gives it {}", body.input_size(), args.size()));
  const onnx::NodeProto* node = c.node;
  auto outer = c.values;
  for (size_t i = 0; i < args.size(); ++i) c.values[body.input(static_cast<int>(i)).name()] = args[i];
  for (int i = 0; i < body.node_size(); ++i) {
    const auto& n = body.node(i);
    Converter convert = find_converter(n);
    if (!convert) fail(fmt::format("the body's node {} is an unsupported op, {}", label(n, i), n.op_type()));
    c.node = &n;
    try {
      Vals r = convert(c);
      for (int k = 0; k < n.output_size(); ++k)
        if (!n.output(k).empty() && static_cast<size_t>(k) < r.size() && r[static_cast<size_t>(k)]) c.values[n.output(k)] = r[static_cast<size_t>(k)];
    } catch (const std::exception& e) {
      fail(fmt::format("the body's node {} ({}): {}", label(n, i), n.op_type(), e.what()));
    }
  }
  Vals outs;
  for (const auto& o : body.output()) {
    auto it = c.values.find(o.name());
    if (it == c.values.end()) fail(fmt::format("the body's output '{}' is computed by none of its nodes", o.name()));
    outs.push_back(it->second);
  }
  c.values = std::move(outer);
  c.node = node;
  return outs;
}

// What a loop is made of: initial carries, per-step inputs stacked along axis 0, the length.
struct LoopSpec {
  Vals carries, xs;
  int64_t length = 0;
  bool reverse = false;
};

// A placeholder of `type` in c's graph for a body input.
Value* placeholder(Ctx& c, const Type& type) { return c.g.append(Op::input, {}, {}, {type}, {c.g.fresh_name()})->result(); }

Type step_type(const Value* stacked) { return {stacked->type.dtype, Dims(stacked->type.dims.begin() + 1, stacked->type.dims.end())}; }

// Values the outlining erased may not stay known: a new value could take the address.
void forget_erased(Ctx& c) {
  std::unordered_set<const Value*> alive;
  for (const auto& n : c.g.nodes)
    for (const auto& r : n->results) alive.insert(r.get());
  std::erase_if(c.known, [&](const auto& kv) { return !alive.count(kv.first); });
}

// The scan of a converted body. `outs` are the body's results: new carries, then per-step outputs.
Vals make_scan(Ctx& c, const LoopSpec& s, size_t first, const Vals& params, const Vals& outs) {
  if (outs.size() < s.carries.size()) fail(fmt::format("the body gives {} outputs for {} loop-carried values", outs.size(), s.carries.size()));
  OutlineSpec spec{first, params, {}, outs, {}};
  for (size_t i = 0; i < params.size(); ++i) spec.param_names.push_back(i < s.carries.size() ? fmt::format("carry{}", i) : fmt::format("x{}", i - s.carries.size()));
  for (size_t i = 0; i < outs.size(); ++i) {
    if (i < s.carries.size() && outs[i]->type != s.carries[i]->type)
      fail(fmt::format("loop-carried value {} is {} before the loop but the body gives {}: stag's carries keep their type", i,
                       to_string(s.carries[i]->type), to_string(outs[i]->type)));
    spec.out_names.push_back(i < s.carries.size() ? fmt::format("carry{}", i) : fmt::format("y{}", i - s.carries.size()));
  }
  Outlined body = outline_body(c.g, spec);
  forget_erased(c);
  Vals operands = s.carries;
  operands.insert(operands.end(), s.xs.begin(), s.xs.end());
  operands.insert(operands.end(), body.invariants.begin(), body.invariants.end());
  NamedAttrs attrs{{"num_carries", static_cast<int64_t>(s.carries.size())}, {"num_xs", static_cast<int64_t>(s.xs.size())}, {"length", s.length}};
  if (s.reverse) attrs.emplace_back("reverse", true);
  Builder::Result r = c.b.try_create(Op::scan, operands, attrs, {}, {}, body.body);
  if (!r.error.empty()) fail(r.error);
  return r.values;
}

// Converts the body over placeholders for the carries and the steps' slices, then makes the scan.
Vals scan_over(Ctx& c, const onnx::GraphProto& body, const LoopSpec& s, Vals extra_args = {}) {
  Vals params;
  for (Value* v : s.carries) params.push_back(placeholder(c, v->type));
  for (Value* x : s.xs) params.push_back(placeholder(c, step_type(x)));
  size_t first = c.g.nodes.size();
  Vals args = params;
  args.insert(args.begin(), extra_args.begin(), extra_args.end());
  Vals outs = convert_body(c, body, args);
  return make_scan(c, s, first, params, outs);
}

// y's steps (axis 0) in the opposite order.
Value* flip0(Ctx& c, Value* y) {
  Vals steps;
  for (int64_t t = y->type.dims[0] - 1; t >= 0; --t) steps.push_back(c.op(Op::slice, {y}, {{"axes", Ints{0}}, {"starts", Ints{t}}, {"ends", Ints{t + 1}}}));
  return steps.size() == 1 ? steps[0] : c.op(Op::concat, steps, {{"axis", int64_t{0}}});
}

// The per-step inputs of a Scan (opset 9+): each with its scan axis first; one direction.
LoopSpec scan_inputs(Ctx& c, size_t first_x, size_t n_xs) {
  LoopSpec s;
  Ints axes = c.aints("scan_input_axes", Ints(n_xs, 0)), dirs = c.aints("scan_input_directions", Ints(n_xs, 0));
  if (axes.size() != n_xs || dirs.size() != n_xs) fail("scan_input_axes and scan_input_directions need one entry a scan input");
  for (size_t j = 0; j < n_xs; ++j) {
    Value* x = c.in(first_x + j);
    if (x->type.rank() == 0) fail(fmt::format("scan input {} is a scalar", j));
    auto axis = static_cast<size_t>(norm_axis(axes[j], x->type.rank()));
    x = transpose_if(c, x, move_axis(x->type.rank(), axis, 0));
    if (j > 0 && x->type.dims[0] != s.length) fail(fmt::format("scan input {} has {} steps, input 0 has {}", j, x->type.dims[0], s.length));
    if (j > 0 && (dirs[j] != 0) != s.reverse) fail("scan inputs read in different directions are not supported");
    s.length = x->type.dims[0];
    s.reverse = dirs[j] != 0;
    s.xs.push_back(x);
  }
  if (n_xs == 0) fail("num_scan_inputs must be at least 1");
  return s;
}

// The stacked outputs where ONNX wants them: along their axis, in the direction asked.
Vals place_outputs(Ctx& c, const Vals& r, size_t n_carries, bool reverse) {
  size_t n_ys = r.size() - n_carries;
  Ints axes = c.aints("scan_output_axes", Ints(n_ys, 0)), dirs = c.aints("scan_output_directions", Ints(n_ys, 0));
  if (axes.size() != n_ys || dirs.size() != n_ys) fail("scan_output_axes and scan_output_directions need one entry a scan output");
  Vals out(r.begin(), r.begin() + static_cast<long>(n_carries));
  for (size_t k = 0; k < n_ys; ++k) {
    // A reversed scan puts step t's output at t: where ONNX's prepending (direction 1) puts it.
    Value* y = (dirs[k] != 0) != reverse ? flip0(c, r[n_carries + k]) : r[n_carries + k];
    out.push_back(transpose_if(c, y, move_axis(y->type.rank(), 0, static_cast<size_t>(norm_axis(axes[k], y->type.rank())))));
  }
  return out;
}

Vals scan9(Ctx& c) {
  const auto& body = body_of(c);
  auto n_xs = static_cast<size_t>(c.ai("num_scan_inputs", 0));
  if (n_xs > c.inputs()) fail(fmt::format("num_scan_inputs {} is more than its {} inputs", n_xs, c.inputs()));
  size_t n_carries = c.inputs() - n_xs;
  LoopSpec s = scan_inputs(c, n_carries, n_xs);
  for (size_t i = 0; i < n_carries; ++i) s.carries.push_back(c.in(i));
  return place_outputs(c, scan_over(c, body, s), n_carries, s.reverse);
}

// Batch element b of x [batch, ...], without the batch axis.
Value* batch_row(Ctx& c, Value* x, int64_t b) {
  Value* row = c.op(Op::slice, {x}, {{"axes", Ints{0}}, {"starts", Ints{b}}, {"ends", Ints{b + 1}}});
  return c.reshape(row, Dims(x->type.dims.begin() + 1, x->type.dims.end()));
}

// Opset 8: every input has a batch axis first and the body sees one batch element; one scan per
// element, the results stacked again. The sequences are axis 1 of the inputs.
Vals scan8(Ctx& c) {
  if (c.has(0)) fail("sequence_lens is not supported: every sequence must be full length");
  const auto& body = body_of(c);
  auto n_xs = static_cast<size_t>(c.ai("num_scan_inputs", 0));
  if (n_xs < 1 || n_xs + 1 > c.inputs()) fail(fmt::format("num_scan_inputs {} does not fit its {} inputs", n_xs, c.inputs()));
  size_t n_carries = c.inputs() - 1 - n_xs;
  Ints dirs = c.aints("directions", Ints(n_xs, 0));
  if (dirs.size() != n_xs) fail("directions needs one entry a scan input");
  int64_t batch = c.in(1)->type.rank() > 0 ? c.in(1)->type.dims[0] : 0;
  std::vector<Vals> per_output;
  for (int64_t b = 0; b < batch; ++b) {
    LoopSpec s;
    for (size_t i = 0; i < n_carries; ++i) s.carries.push_back(batch_row(c, c.in(1 + i), b));
    for (size_t j = 0; j < n_xs; ++j) {
      Value* x = batch_row(c, c.in(1 + n_carries + j), b);
      if (j > 0 && (x->type.dims.at(0) != s.length || (dirs[j] != 0) != s.reverse)) fail("scan inputs of different lengths or directions are not supported");
      s.length = x->type.dims.at(0), s.reverse = dirs[j] != 0;
      s.xs.push_back(x);
    }
    Vals r = scan_over(c, body, s);
    for (size_t k = n_carries; k < r.size(); ++k)
      if (s.reverse) r[k] = flip0(c, r[k]);  // opset 8 appends its outputs in the order it ran
    if (per_output.empty()) per_output.resize(r.size());
    for (size_t k = 0; k < r.size(); ++k) {
      Dims d = r[k]->type.dims;
      d.insert(d.begin(), 1);
      per_output[k].push_back(c.reshape(r[k], d));
    }
  }
  if (batch < 1) fail("the batch axis is empty");
  Vals out;
  for (auto& v : per_output) out.push_back(v.size() == 1 ? v[0] : c.op(Op::concat, v, {{"axis", int64_t{0}}}));
  return out;
}

Vals scan(Ctx& c) { return c.opset < 9 ? scan8(c) : scan9(c); }

// Loop with a static trip count M and a condition that stays true: the iteration number is a
// per-step input (0, 1, ...), the body's condition is checked at import.
Vals loop(Ctx& c) {
  if (!c.has(0)) fail("a Loop without a trip count runs until its condition turns false: its length is not static");
  Ints m = c.known_ints(c.in(0), "the trip count M");
  if (m.size() != 1 || m[0] < 1 || m[0] > (int64_t{1} << 24)) fail(fmt::format("the trip count must be 1 to 2^24 (a loop of no steps is not supported), got {}", m.empty() ? 0 : m[0]));
  if (c.has(1) && c.known_ints(c.in(1), "the loop's condition") != Ints{1}) fail("the loop's condition must be true at the start");
  const auto& body = body_of(c);
  LoopSpec s;
  s.length = m[0];
  for (size_t i = 2; i < c.inputs(); ++i) s.carries.push_back(c.in(i));
  Builder::Result steps = c.b.try_create(Op::iota, {}, {{"axis", int64_t{0}}}, {{DType::i64, {s.length}}});
  if (!steps.error.empty()) fail(steps.error);
  s.xs.push_back(steps.values[0]);
  Value* cond = c.constant({DType::b8, {}}, {1});  // true in every step the loop runs
  Vals params;
  for (Value* v : s.carries) params.push_back(placeholder(c, v->type));
  params.push_back(placeholder(c, {DType::i64, {}}));
  size_t first = c.g.nodes.size();
  Vals args{params.back(), cond};
  args.insert(args.end(), params.begin(), params.end() - 1);
  Vals outs = convert_body(c, body, args);
  if (outs.empty() || c.known.find(outs[0]) == c.known.end() || c.known.at(outs[0]).data != std::vector<double>{1})
    fail("the body's condition must stay true (a loop that may stop early has no static length)");
  return make_scan(c, s, first, params, Vals(outs.begin() + 1, outs.end()));
}

}  // namespace

const std::vector<OpEntry>& loop_ops() {
  static const std::vector<OpEntry> table = {{"Scan", scan}, {"Loop", loop}};
  return table;
}

}  // namespace stag::onnx_import
