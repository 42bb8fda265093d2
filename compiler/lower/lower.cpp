// Lowering: every graph node becomes kernels over flat row-major buffers. This driver places
// the buffers of each function and dispatches each node, through the table below, to its op
// family's lowering (families.h); fusion.cpp decides what is computed where it is read.

#include "compiler/lower/lower.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <unordered_map>

#include "compiler/lower/context.h"
#include "compiler/lower/families.h"
#include "compiler/lower/numerics.h"
#include "compiler/lower/fusion.h"

namespace stag {

namespace lowering {
namespace {

using namespace kir;

struct Entry {
  Op op;
  LowerFn lower;
};

// In the order of ir/ops.def. Inputs, parameters and constants are buffers, not kernels.
const Entry kLowerings[] = {
    {Op::iota, iota}, {Op::random_uniform, random}, {Op::random_normal, random},
    {Op::neg, elementwise}, {Op::abs, elementwise}, {Op::exp, elementwise}, {Op::log, elementwise},
    {Op::sqrt, elementwise}, {Op::rsqrt, elementwise}, {Op::square, elementwise}, {Op::tanh, elementwise},
    {Op::sigmoid, elementwise}, {Op::relu, elementwise}, {Op::leaky_relu, elementwise}, {Op::gelu, elementwise},
    {Op::erf, elementwise}, {Op::sign, elementwise}, {Op::cast, elementwise},
    {Op::add, elementwise}, {Op::sub, elementwise}, {Op::mul, elementwise}, {Op::div, elementwise},
    {Op::pow, elementwise}, {Op::maximum, elementwise}, {Op::minimum, elementwise},
    {Op::gt, elementwise}, {Op::ge, elementwise}, {Op::lt, elementwise}, {Op::le, elementwise},
    {Op::eq, elementwise}, {Op::select, elementwise},
    {Op::sum, reduce}, {Op::mean, reduce}, {Op::max, reduce}, {Op::argmax, reduce},
    {Op::matmul, matmul},
    {Op::conv2d, conv2d}, {Op::conv_transpose2d, conv_transpose2d}, {Op::conv2d_weight_grad, conv2d_weight_grad},
    {Op::max_pool2d, pool2d}, {Op::max_pool2d_grad, max_pool2d_grad}, {Op::avg_pool2d, pool2d},
    {Op::global_avg_pool, global_avg_pool}, {Op::batch_norm, batch_norm}, {Op::layer_norm, layer_norm},
    {Op::dropout, dropout}, {Op::softmax, softmax}, {Op::log_softmax, softmax},
    {Op::attention, attention}, {Op::attention_grad, attention_grad},
    {Op::embedding, embedding}, {Op::embedding_grad, embedding_grad}, {Op::one_hot, one_hot},
    {Op::reshape, reshape}, {Op::transpose, transpose}, {Op::broadcast_to, elementwise}, {Op::concat, concat},
    {Op::slice, slice}, {Op::pad, pad}, {Op::flatten, reshape}, {Op::split, split},
    {Op::mse, regression_loss}, {Op::huber, regression_loss}, {Op::bce_with_logits, regression_loss},
    {Op::cross_entropy, classification_loss}, {Op::nll, classification_loss},
    {Op::l1_penalty, penalty}, {Op::l2_penalty, penalty}, {Op::scan, scan},
};

void lower_node(LowerContext& cx, const Node& n) {
  std::vector<int> xs;
  for (const Value* v : n.operands) xs.push_back(cx.in(v));
  for (const Entry& e : kLowerings)
    if (e.op == n.op) return e.lower(cx, n, xs, cx.store_target(n));
  if (n.info().has(HasBody))
    throw NoLowering(fmt::format("{}: no compiled lowering yet (the reference interpreter runs it)", n.info().name),
                     n.loc, "%" + n.result()->name);
  throw std::logic_error(fmt::format("lowering: no lowering for {}", n.info().name));
}

// Inputs, constants and computed values get their buffers; values fused away get a
// description (negative id); values that leave the function are written straight into
// output buffers.
void place_buffers(LowerContext& cx, const Graph& graph) {
  std::unordered_map<const Value*, std::string> output_of;
  for (const auto& o : graph.outputs)
    if (!output_of.count(o.value)) output_of[o.value] = o.name;
  for (const auto& n : graph.nodes) {
    if (n->op == Op::parameter) continue;
    for (const auto& r : n->results) {
      if (n->op == Op::input) cx.buffer_of[r.get()] = cx.new_buffer(r->name, r->type, BufKind::Input);
      else if (n->op == Op::constant) {
        Buffer b = make_buffer(r->name, r->type, BufKind::Const);
        const Floats& v = n->floats("value");
        b.data = v.size() == 1 ? std::vector<double>(static_cast<size_t>(numel(r->type)), v[0]) : v;
        cx.buffer_of[r.get()] = cx.prog.add_buffer(std::move(b));
      } else if (cx.plan.fused_away.count(r.get())) {
        Buffer b = make_buffer(r->name, r->type, BufKind::Temp);
        cx.pseudo.push_back(std::move(b));
        cx.pseudo_node.push_back(n.get());
        cx.buffer_of[r.get()] = -static_cast<int>(cx.pseudo.size());
      } else if (auto it = output_of.find(r.get()); it != output_of.end())
        cx.buffer_of[r.get()] = cx.new_buffer(it->second, r->type, BufKind::Output);
      else
        cx.buffer_of[r.get()] = cx.new_buffer(r->name, r->type, BufKind::Temp);
    }
  }
}

// Output buffers are made in node order; callers take the results in the graph's order.
void number_outputs(LowerContext& cx, const Graph& graph) {
  std::unordered_map<std::string, int> position;
  for (size_t i = 0; i < graph.outputs.size(); ++i) position.emplace(graph.outputs[i].name, static_cast<int>(i));
  for (auto& b : cx.prog.buffers)
    if (b.kind == BufKind::Output && b.function == cx.fn) b.index = position.at(b.name);
}

// For each update, the others whose targets (old values) its value reads: each update's
// leaves are gathered once.
std::vector<std::vector<size_t>> targets_read(LowerContext& cx, const std::vector<const Update*>& updates) {
  std::unordered_map<const Value*, std::vector<size_t>> by_target;
  for (size_t i = 0; i < updates.size(); ++i) by_target[updates[i]->target].push_back(i);
  std::vector<std::vector<size_t>> reads(updates.size());
  for (size_t r = 0; r < updates.size(); ++r) {
    std::vector<const Value*> leaves;
    cx.plan.leaves(updates[r]->value, leaves);
    std::sort(leaves.begin(), leaves.end());
    leaves.erase(std::unique(leaves.begin(), leaves.end()), leaves.end());
    for (const Value* v : leaves)
      if (auto it = by_target.find(v); it != by_target.end())
        for (size_t u : it->second)
          if (u != r) reads[r].push_back(u);
  }
  return reads;
}

// A group's updates as loops in the order they run over a chunk, one update a loop: an update's
// loop runs before the loop that overwrites any target it reads (a parameter's before its
// moments'). Each value is then computed alone in its loop, to the same bits as a kernel of its
// own computes it: a loop of several values lets LLVM share and reassociate their common terms
// differently (a discriminator's moments in its step and in the GAN pair step, where the new
// parameter is a buffer other kernels read). Updates that read each other's targets in a cycle
// share one loop that computes all their values before storing any. Each round takes the first
// update no other update left reads.
std::vector<std::vector<const Update*>> update_loops(LowerContext& cx, const std::vector<const Update*>& updates) {
  auto reads = targets_read(cx, updates);
  std::vector<int> readers(updates.size(), 0);  // of each update's target, among the updates left
  for (const auto& r : reads)
    for (size_t u : r) ++readers[u];
  std::vector<size_t> left(updates.size());
  std::iota(left.begin(), left.end(), size_t{0});
  std::vector<std::vector<const Update*>> loops;
  while (!left.empty()) {
    auto unread = std::find_if(left.begin(), left.end(), [&](size_t u) { return readers[u] == 0; });
    if (unread == left.end()) {
      loops.emplace_back();
      for (size_t u : left) loops.back().push_back(updates[u]);
      break;
    }
    for (size_t u : reads[*unread]) --readers[u];
    loops.push_back({updates[*unread]});
    left.erase(unread);
  }
  return loops;
}

// One group of updates of a size (FusionPlan::update_groups) in one kernel over chunks of
// elements, each chunk every update's vectorized loop (update_loops). An optimizer step of many
// small parameters is a few kernels, and a chunk of a parameter and its moments stays in cache
// between the loops that read and write it.
void update_kernel(LowerContext& cx, const std::vector<const Update*>& group) {
  const Value* first = group.front()->target;
  int64_t n = numel(first->type), chunk = std::gcd(n, int64_t{2048});
  std::string from = fmt::format("update %{}", first->name);
  if (group.size() > 1) from += fmt::format(" and {} more", group.size() - 1);
  cx.group.clear();
  KernelBuilder kb("update", from);
  int e = kb.new_var("e");
  auto ordered = update_loops(cx, group);
  loop_nest(kb, {n / chunk}, [&](const std::vector<E>& idx) {
    E at = add(mul(idx[0], int_(chunk)), kb.v(e));
    std::vector<Stmt> loops;
    for (const auto& set : ordered) {
      std::vector<Stmt> body, stores;
      for (const Update* u : set) {
        int dst = cx.in(u->target), fresh = kb.new_var("new", cx.B(dst).type.dtype);
        body.push_back(assign(fresh, cx.ld(cx.in(u->value), at)));
        stores.push_back(store(dst, at, kb.v(fresh)));
      }
      body.insert(body.end(), stores.begin(), stores.end());
      loops.push_back(vectorized_for(e, 0, chunk, std::move(body)));
    }
    return loops;
  }, grain_of(kGrainElements, chunk * static_cast<int64_t>(group.size())));
  cx.emit(std::move(kb));
}

void lower_function(LowerContext& cx, const std::string& name, const Graph& graph) {
  cx.begin_function(name);
  cx.g = &graph;
  cx.pseudo.clear();
  cx.pseudo_node.clear();
  cx.plan = cx.options.fuse ? plan_fusion(graph, cx.stats) : FusionPlan{};
  if (!cx.options.fuse) cx.plan.update_groups = group_updates(graph);  // unfused, the values are buffers
  place_buffers(cx, graph);
  if (cx.options.check_numerics && name != "init") check_entry(cx);
  lower_nodes(cx, graph);
  // Outputs that are inputs, parameters, constants or a second name for a value get a copy.
  for (const auto& o : graph.outputs) {
    int src = cx.in(o.value);
    if (src >= 0 && cx.B(src).kind == BufKind::Output && cx.B(src).name == o.name) continue;
    int dst = cx.new_buffer(o.name, o.value->type, BufKind::Output);
    cx.group.clear();
    cx.copy_kernel(fmt::format("output {}", o.name), dst, src);
  }
  number_outputs(cx, graph);
  // Updates land last: other kernels may still read the old parameter values.
  for (const auto& group : cx.plan.update_groups) update_kernel(cx, group);
  cx.end_function();
}

}  // namespace

void lower_nodes(LowerContext& cx, const Graph& graph) {
  for (const auto& n : graph.nodes) {
    if (n->op == Op::parameter || n->op == Op::input || n->op == Op::constant) continue;
    if ((cx.plan.fused_away.count(n->result()) && !cx.plan.carriers.count(n->result())) || cx.plan.absorbed.count(n.get())) continue;
    cx.group = {n->result()->name};
    if (auto it = cx.plan.epilogue.find(n.get()); it != cx.plan.epilogue.end())
      for (const Node* u : it->second) cx.group.push_back(u->result()->name);
    if (auto it = cx.plan.followers.find(n.get()); it != cx.plan.followers.end())
      for (const Node* u : it->second) cx.group.push_back(u->result()->name);
    cx.node = n.get();
    lower_node(cx, *n);
    cx.node = nullptr;
    cx.strategy.clear();
  }
}

}  // namespace lowering

kir::Program lower(const Graph& g) { return lower({{"forward", &g}}); }

kir::Program lower(const std::vector<std::pair<std::string, const Graph*>>& functions, const LowerOptions& options,
                   LowerStats* stats) {
  lowering::LowerContext cx(options);
  cx.prog.name = functions.front().second->name;
  cx.prog.attrs = functions.front().second->attrs;
  // A later function's own settings (the train step's list of finiteness flags) join the first's.
  for (const auto& [name, graph] : functions)
    for (const auto& [key, value] : graph->attrs)
      if (std::none_of(cx.prog.attrs.begin(), cx.prog.attrs.end(), [&](const auto& a) { return a.first == key; }))
        cx.prog.attrs.emplace_back(key, value);
  cx.prog.check_numerics = options.check_numerics;
  // Parameters are shared by name: the training step and the inference pass of a model
  // read and write the same buffers.
  for (const auto& [name, graph] : functions)
    for (const auto& n : graph->nodes)
      if (n->op == Op::parameter) cx.param_buffer(*n);
  lowering::lower_init(cx);
  for (const auto& [name, graph] : functions) lowering::lower_function(cx, name, *graph);
  for (const auto& f : cx.prog.functions)
    if (f.name != "init") cx.stats.kernels += static_cast<int64_t>(f.kernels.size());
  if (stats) *stats = cx.stats;
  return std::move(cx.prog);
}

}  // namespace stag
