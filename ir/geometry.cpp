#include "ir/geometry.h"

#include "ir/graph.h"
#include "ir/ops.h"

namespace stag {

namespace {

// `A` is a Node or a ShapeCtx: both read attributes by name from the op's schema.
template <class A>
Window2d decode(const OpInfo& info, const A& a) {
  Window2d w;
  auto has = [&](const char* name) { return info.attr_index(name) >= 0; };
  if (has("kernel")) w.kernel = a.ints("kernel");
  w.stride = a.ints("stride");
  if (w.stride.empty() && has("ceil_mode")) w.stride = w.kernel;  // a pool's stride defaults to its kernel
  w.padding = a.ints("padding");
  if (has("dilation")) w.dilation = a.ints("dilation");
  if (has("output_padding")) w.output_padding = a.ints("output_padding");
  if (has("groups")) w.groups = a.i("groups");
  if (has("ceil_mode")) w.ceil_mode = a.b("ceil_mode");
  return w;
}

}  // namespace

Window2d Window2d::of(const Node& n) { return decode(n.info(), n); }
Window2d Window2d::of(const ShapeCtx& c) { return decode(c.info, c); }

}  // namespace stag
