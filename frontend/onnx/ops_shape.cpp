// Converters of the shape ops (reshapes, slices, gathers, padding) and of the sources whose
// values are known at import time (Constant, Shape, Range, ConstantOfShape).
#include <fmt/format.h>

#include <cmath>

#include "frontend/onnx/ctx.h"
#include "frontend/onnx/tensor.h"

namespace stag::onnx_import {

namespace {

using Vals = std::vector<Value*>;

Vals reshape(Ctx& c) {
  Value* x = c.in(0);
  Ints shape = c.opset < 5 ? c.aints("shape") : c.known_ints(c.in(1), "the shape");
  bool allowzero = c.ai("allowzero", 0) != 0;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] != 0) continue;
    if (allowzero || i >= x->type.rank()) fail("a zero in the shape would make an empty tensor");
    shape[i] = x->type.dims[i];
  }
  return {c.op(Op::reshape, {x}, {{"shape", shape}})};
}

Vals transpose(Ctx& c) {
  Value* x = c.in(0);
  Ints perm;
  for (size_t i = x->type.rank(); i-- > 0;) perm.push_back(static_cast<int64_t>(i));
  perm = c.aints("perm", perm);
  return {c.op(Op::transpose, {x}, {{"perm", perm}})};
}

Vals flatten(Ctx& c) {
  Value* x = c.in(0);
  int64_t axis = c.ai("axis", 1);
  if (axis != static_cast<int64_t>(x->type.rank())) axis = norm_axis(axis, x->type.rank());
  int64_t outer = *checked_numel(Dims(x->type.dims.begin(), x->type.dims.begin() + axis));
  return {c.reshape(x, {outer, *checked_numel(x->type.dims) / outer})};
}

Vals concat(Ctx& c) {
  Vals operands;
  for (size_t i = 0; i < c.inputs(); ++i)
    if (!c.is_empty(i)) operands.push_back(c.in(i));
  if (operands.empty()) return {Ctx::empty_result()};
  if (operands.size() == 1) return {operands[0]};
  return {c.op(Op::concat, operands, {{"axis", norm_axis(c.ai("axis", 0), operands[0]->type.rank())}})};
}

Vals split(Ctx& c) {
  Value* x = c.in(0);
  int64_t axis = norm_axis(c.ai("axis", 0), x->type.rank());
  Ints sizes = c.opset < 13 ? c.aints("split") : c.ints_input(1, "the split sizes", {});
  if (sizes.empty()) {
    auto parts = static_cast<int64_t>(c.outputs());
    if (x->type.dims[axis] % parts != 0) fail(fmt::format("axis {} of {} does not split into {} equal parts", axis, to_string(x->type), parts));
    sizes.assign(static_cast<size_t>(parts), x->type.dims[axis] / parts);
  }
  return c.ops(Op::split, {x}, {{"axis", axis}, {"sizes", sizes}});
}

// ONNX clamps slice bounds to the axis; stag's slice takes exact, non-empty ranges (an empty
// one is an empty result, which only Concat reads).
int64_t clamp_index(int64_t i, int64_t dim) {
  if (i < 0) i += dim;
  return std::clamp<int64_t>(i, 0, dim);
}

Vals slice(Ctx& c) {
  Value* x = c.in(0);
  bool attrs = c.opset < 10;
  Ints starts = attrs ? c.aints("starts") : c.known_ints(c.in(1), "the starts");
  Ints ends = attrs ? c.aints("ends") : c.known_ints(c.in(2), "the ends");
  Ints axes;
  for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  axes = attrs ? c.aints("axes", axes) : c.ints_input(3, "the axes", axes);
  Ints steps = attrs ? Ints(starts.size(), 1) : c.ints_input(4, "the steps", Ints(starts.size(), 1));
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size()) fail("starts, ends, axes and steps differ in length");
  Ints a2, s2, e2, st2;
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t axis = norm_axis(axes[i], x->type.rank()), dim = x->type.dims[axis];
    if (steps[i] < 1) fail("negative or zero steps are not supported");
    int64_t s = clamp_index(starts[i], dim), e = clamp_index(ends[i], dim);
    if (s >= e) return {Ctx::empty_result()};
    if (s == 0 && e == dim && steps[i] == 1) continue;
    a2.push_back(axis), s2.push_back(s), e2.push_back(e), st2.push_back(steps[i]);
  }
  if (a2.empty()) return {x};
  return {c.op(Op::slice, {x}, {{"axes", a2}, {"starts", s2}, {"ends", e2}, {"steps", st2}})};
}

Ints axes_of(Ctx& c, size_t rank) {
  Ints axes = c.opset < 13 ? c.aints("axes") : c.ints_input(1, "the axes", {});
  for (int64_t& a : axes) a = norm_axis(a, rank);
  return axes;
}

Vals squeeze(Ctx& c) {
  Value* x = c.in(0);
  Ints axes = axes_of(c, x->type.rank());
  Dims out;
  for (size_t i = 0; i < x->type.rank(); ++i) {
    bool listed = std::find(axes.begin(), axes.end(), static_cast<int64_t>(i)) != axes.end();
    if (listed && x->type.dims[i] != 1) fail(fmt::format("axis {} of {} is not 1", i, to_string(x->type)));
    if (!(listed || (axes.empty() && x->type.dims[i] == 1))) out.push_back(x->type.dims[i]);
  }
  return {c.reshape(x, out)};
}

Vals unsqueeze(Ctx& c) {
  Value* x = c.in(0);
  size_t rank = x->type.rank() + (c.opset < 13 ? c.aints("axes").size() : c.known_ints(c.in(1), "the axes").size());
  Ints axes = axes_of(c, rank);
  Dims out;
  auto d = x->type.dims.begin();
  for (size_t i = 0; i < rank; ++i) {
    bool listed = std::find(axes.begin(), axes.end(), static_cast<int64_t>(i)) != axes.end();
    if (!listed && d == x->type.dims.end()) fail("the axes repeat");
    out.push_back(listed ? 1 : *d++);
  }
  return {c.reshape(x, out)};
}

// numpy broadcasting of the input's shape with the given one (either side may be 1).
Vals expand(Ctx& c) {
  Value* x = c.in(0);
  Ints shape = c.known_ints(c.in(1), "the shape");
  size_t rank = std::max(shape.size(), x->type.rank());
  Dims out(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    int64_t a = i < rank - x->type.rank() ? 1 : x->type.dims[i - (rank - x->type.rank())];
    int64_t b = i < rank - shape.size() ? 1 : shape[i - (rank - shape.size())];
    if (a != b && a != 1 && b != 1) fail(fmt::format("cannot expand {} to {}", to_string(x->type), dims_to_string(shape)));
    out[i] = a == 1 ? b : a;
  }
  if (out == x->type.dims) return {x};
  return {c.op(Op::broadcast_to, {x}, {{"shape", out}})};
}

Vals pad(Ctx& c) {
  Value* x = c.in(0);
  if (c.as("mode", "constant") != "constant") fail(fmt::format("mode '{}' is not supported (constant only)", c.as("mode", "")));
  Ints pads = c.opset < 11 ? c.aints("pads") : c.known_ints(c.in(1), "the pads");
  double value = c.opset < 11 ? c.af("value", 0) : (c.has(2) ? c.need_known(c.in(2), "the constant value").data.at(0) : 0.0);
  size_t r = x->type.rank();
  if (pads.size() != 2 * r) fail(fmt::format("pads has {} values; {} needs {}", pads.size(), to_string(x->type), 2 * r));
  Ints pairs;
  for (size_t i = 0; i < r; ++i) pairs.push_back(pads[i]), pairs.push_back(pads[r + i]);
  for (int64_t p : pairs)
    if (p < 0) fail("negative pads are not supported");
  return {c.op(Op::pad, {x}, {{"pads", pairs}, {"value", value}})};
}

Vals tile(Ctx& c) {
  Value* x = c.in(0);
  Ints repeats = c.known_ints(c.in(1), "the repeats");
  if (repeats.size() != x->type.rank()) fail("repeats must give one count per axis");
  for (size_t a = 0; a < repeats.size(); ++a) {
    if (repeats[a] < 1) fail("repeats must be at least 1");
    if (repeats[a] > 1) x = c.op(Op::concat, Vals(static_cast<size_t>(repeats[a]), x), {{"axis", static_cast<int64_t>(a)}});
  }
  return {x};
}

// Gather of known data at known indices: computed now (shape arithmetic).
Value* gather_known(Ctx& c, const RefTensor& data, const RefTensor& idx, int64_t axis) {
  const Dims& d = data.type.dims;
  int64_t outer = *checked_numel(Dims(d.begin(), d.begin() + axis)), inner = *checked_numel(Dims(d.begin() + axis + 1, d.end()));
  Dims out(d.begin(), d.begin() + axis);
  out.insert(out.end(), idx.type.dims.begin(), idx.type.dims.end());
  out.insert(out.end(), d.begin() + axis + 1, d.end());
  std::vector<double> v;
  for (int64_t o = 0; o < outer; ++o)
    for (double j : idx.data) {
      int64_t k = as_int(j, "gather index");
      if (k < 0) k += d[axis];
      if (k < 0 || k >= d[axis]) fail(fmt::format("index {} is out of range for axis {} of size {}", j, axis, d[axis]));
      for (int64_t i = 0; i < inner; ++i) v.push_back(data.data[static_cast<size_t>((o * d[axis] + k) * inner + i)]);
    }
  return c.constant({data.type.dtype, out}, std::move(v));
}

// Negative indices count from the end, as in numpy.
Value* wrap_indices(Ctx& c, Value* idx, int64_t dim) {
  Value* wrapped = c.op(Op::add, {idx, c.scalar(static_cast<double>(dim), idx)});
  return c.op(Op::select, {c.op(Op::lt, {idx, c.scalar(0, idx)}), wrapped, idx});
}

// Gather at run time: the gathered axis moved first, rows looked up as an embedding's.
Vals gather(Ctx& c) {
  Value *data = c.in(0), *idx = c.in(1);
  auto axis = norm_axis(c.ai("axis", 0), data->type.rank());
  auto kd = c.known.find(data), ki = c.known.find(idx);
  if (kd != c.known.end() && ki != c.known.end()) return {gather_known(c, kd->second, ki->second, axis)};
  DType dtype = data->type.dtype;
  Value* rows = transpose_if(c, c.cast(data, is_float(dtype) ? dtype : DType::f64), move_axis(data->type.rank(), static_cast<size_t>(axis), 0));
  Dims rest(rows->type.dims.begin() + 1, rows->type.dims.end());
  int64_t dim = rows->type.dims[0], width = *checked_numel(rest);
  Value* looked = c.op(Op::embedding, {c.reshape(rows, {dim, width}), wrap_indices(c, idx, dim)});
  Dims out = idx->type.dims;
  out.insert(out.end(), rest.begin(), rest.end());
  Value* y = c.reshape(looked, out);
  size_t q = idx->type.rank();
  Ints perm;
  for (size_t i = 0; i < static_cast<size_t>(axis); ++i) perm.push_back(static_cast<int64_t>(q + i));
  for (size_t i = 0; i < q; ++i) perm.push_back(static_cast<int64_t>(i));
  for (size_t i = q + static_cast<size_t>(axis); i < out.size(); ++i) perm.push_back(static_cast<int64_t>(i));
  return {c.cast(transpose_if(c, y, perm), dtype)};
}

std::vector<double> to_doubles(const Dims& d) { return std::vector<double>(d.begin(), d.end()); }

Vals shape(Ctx& c) {
  const Dims& d = c.in(0)->type.dims;
  auto r = static_cast<int64_t>(d.size());
  int64_t start = c.ai("start", 0), end = c.ai("end", r);
  start = std::clamp<int64_t>(start < 0 ? start + r : start, 0, r);
  end = std::clamp<int64_t>(end < 0 ? end + r : end, 0, r);
  if (start >= end) fail("the shape of a scalar (or an empty range of axes) is an empty tensor");
  Dims part(d.begin() + start, d.begin() + end);
  return {c.constant({DType::i64, {end - start}}, to_doubles(part))};
}

Vals size(Ctx& c) { return {c.constant({DType::i64, {}}, {static_cast<double>(*checked_numel(c.in(0)->type.dims))})}; }

// A constant of one repeated value; its data is kept for folding only when small.
Value* filled(Ctx& c, const Type& type, double v) {
  Builder::Result r = c.b.try_create(Op::constant, {}, {{"value", Floats{v}}}, {type});
  if (!r.error.empty()) fail(r.error);
  if (checked_numel(type.dims).value_or(INT64_MAX) <= (int64_t{1} << 20)) c.known[r.values[0]] = RefTensor::filled(type, v);
  return r.values[0];
}

Vals constant_of_shape(Ctx& c) {
  Dims dims = c.known_ints(c.in(0), "the shape");
  const auto* value = c.attr("value");
  RefTensor v = value ? to_ref(value->t(), c.dir) : RefTensor({DType::f32, {1}}, {0.0});
  if (v.numel() != 1) fail("value must hold one element");
  return {filled(c, checked_type(v.type.dtype, dims, "the result"), v.data[0])};
}

Vals constant(Ctx& c) {
  if (const auto* a = c.attr("value")) {
    RefTensor t = to_ref(a->t(), c.dir);
    return {c.constant(t.type, t.data)};
  }
  if (const auto* a = c.attr("value_float")) return {c.constant({DType::f32, {}}, {a->f()})};
  if (const auto* a = c.attr("value_int")) return {c.constant({DType::i64, {}}, {static_cast<double>(a->i())})};
  if (c.attr("value_floats")) {
    Floats f = c.afloats("value_floats");
    return {c.constant(checked_type(DType::f32, {static_cast<int64_t>(f.size())}, "value_floats"), f)};
  }
  if (c.attr("value_ints")) {
    Ints i = c.aints("value_ints");
    return {c.constant(checked_type(DType::i64, {static_cast<int64_t>(i.size())}, "value_ints"), to_doubles(i))};
  }
  fail("only value, value_float(s) and value_int(s) are supported");
}

Vals range(Ctx& c) {
  double start = c.need_known(c.in(0), "start").data.at(0), limit = c.need_known(c.in(1), "limit").data.at(0);
  double delta = c.need_known(c.in(2), "delta").data.at(0);
  DType dtype = c.in(0)->type.dtype;
  double count = delta == 0 ? 0 : std::ceil((limit - start) / delta);
  if (!(count >= 1) || count > (1 << 24)) fail(fmt::format("the range has {} elements", count));
  std::vector<double> v;
  for (int64_t i = 0; i < static_cast<int64_t>(count); ++i)
    v.push_back(is_float(dtype) && dtype == DType::f32 ? static_cast<float>(start + static_cast<double>(i) * delta) : start + static_cast<double>(i) * delta);
  return {c.constant({dtype, {static_cast<int64_t>(count)}}, std::move(v))};
}

Vals cast(Ctx& c) { return {c.cast(c.in(0), to_dtype(static_cast<int32_t>(c.ai("to", 0))))}; }

Vals depth_to_space(Ctx& c) {
  Value* x = c.in(0);
  if (x->type.rank() != 4) fail("the input must have rank 4");
  int64_t bs = c.ai("blocksize", 0), n = x->type.dims[0], ch = x->type.dims[1], h = x->type.dims[2], w = x->type.dims[3];
  if (bs < 1 || ch % (bs * bs) != 0) fail(fmt::format("blocksize {} does not divide the {} channels", bs, ch));
  bool crd = c.as("mode", "DCR") == "CRD";
  Value* y = c.reshape(x, crd ? Dims{n, ch / (bs * bs), bs, bs, h, w} : Dims{n, bs, bs, ch / (bs * bs), h, w});
  y = c.op(Op::transpose, {y}, {{"perm", crd ? Ints{0, 1, 4, 2, 5, 3} : Ints{0, 3, 4, 1, 5, 2}}});
  return {c.reshape(y, {n, ch / (bs * bs), h * bs, w * bs})};
}

Vals space_to_depth(Ctx& c) {
  Value* x = c.in(0);
  if (x->type.rank() != 4) fail("the input must have rank 4");
  int64_t bs = c.ai("blocksize", 0), n = x->type.dims[0], ch = x->type.dims[1], h = x->type.dims[2], w = x->type.dims[3];
  if (bs < 1 || h % bs != 0 || w % bs != 0) fail(fmt::format("blocksize {} does not divide {}x{}", bs, h, w));
  Value* y = c.op(Op::transpose, {c.reshape(x, {n, ch, h / bs, bs, w / bs, bs})}, {{"perm", Ints{0, 3, 5, 1, 2, 4}}});
  return {c.reshape(y, {n, ch * bs * bs, h / bs, w / bs})};
}

}  // namespace

const std::vector<OpEntry>& shape_ops() {
  static const std::vector<OpEntry> table = {
      {"Reshape", reshape}, {"Transpose", transpose}, {"Flatten", flatten}, {"Concat", concat}, {"Split", split},
      {"Slice", slice}, {"Squeeze", squeeze}, {"Unsqueeze", unsqueeze}, {"Expand", expand}, {"Pad", pad},
      {"Tile", tile}, {"Gather", gather}, {"Shape", shape}, {"Size", size}, {"ConstantOfShape", constant_of_shape},
      {"Constant", constant}, {"Range", range}, {"Cast", cast}, {"DepthToSpace", depth_to_space},
      {"SpaceToDepth", space_to_depth},
  };
  return table;
}

Converter find_converter(std::string_view op_type) {
  for (const auto* table : {&math_ops(), &nn_ops(), &rnn_ops(), &shape_ops(), &loop_ops()})
    for (const OpEntry& e : *table)
      if (e.name == op_type) return e.convert;
  return nullptr;
}

}  // namespace stag::onnx_import
