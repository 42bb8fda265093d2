// Lowering: every graph node becomes kernels over flat row-major buffers. These are the
// straightforward loop nests; fusion and the fast GEMM/convolution kernels replace them in
// later passes.

#include "compiler/lower/lower.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "compiler/lower/builder.h"
#include "compiler/lower/conv_plan.h"
#include "ir/analysis.h"

namespace stag {

using namespace kir;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Products over more batches than this keep the loop form (their offset tables would bloat
// the code).
constexpr int64_t kMaxGemmBatches = 1 << 16;
// Products of at most this many rows split their columns over threads, in blocks of
// kColumnBlock (a multiple of every host's register tile width).
constexpr int64_t kColumnSplitRows = 64;
constexpr int64_t kColumnBlock = 64;

int64_t numel(const Type& t) { return *checked_numel(t.dims); }
int64_t norm_axis(int64_t axis, size_t rank) { return axis < 0 ? axis + static_cast<int64_t>(rank) : axis; }

E fconst(double v, DType t) { return float_(v, t); }
E f_add(E a, E b) { return bin(Bin::add, std::move(a), std::move(b)); }
E f_sub(E a, E b) { return bin(Bin::sub, std::move(a), std::move(b)); }
E f_mul(E a, E b) { return bin(Bin::mul, std::move(a), std::move(b)); }
E f_div(E a, E b) { return bin(Bin::div, std::move(a), std::move(b)); }
E gt(E a, E b) { return bin(Bin::gt, std::move(a), std::move(b)); }
E lt(E a, E b) { return bin(Bin::lt, std::move(a), std::move(b)); }
E ge(E a, E b) { return bin(Bin::ge, std::move(a), std::move(b)); }
E and_(E a, E b) { return bin(Bin::and_, std::move(a), std::move(b)); }
E zero_of(DType t) { return is_float(t) ? fconst(0, t) : cast(int_(0), t); }
E const_of(double v, DType t) { return is_float(t) ? fconst(v, t) : cast(int_(static_cast<int64_t>(v)), t); }

// The smallest value of a type: where a max starts.
E lowest(DType t) {
  if (is_float(t)) return float_(-kInf, t);
  if (t == DType::i32) return cast(int_(std::numeric_limits<int32_t>::min()), t);
  return cast(int_(t == DType::b8 ? 0 : std::numeric_limits<int64_t>::min()), t);
}

// Max that lets a NaN through, as PyTorch's max does.
E nan_max(E a, E b) {
  return bin(Bin::max, a, b);  // float max propagates NaN (kernel_ir.h)
}

// The scalar formula of an elementwise op.
E scalar(const Node& n, const std::vector<E>& x, DType out) {
  DType t = x[0]->type;
  auto c = [&](double v) { return const_of(v, t); };
  switch (n.op) {
    case Op::neg: return un(Un::neg, x[0]);
    case Op::abs: return un(Un::abs, x[0]);
    case Op::exp: return un(Un::exp, x[0]);
    case Op::log: return un(Un::log, x[0]);
    case Op::sqrt: return un(Un::sqrt, x[0]);
    case Op::rsqrt: return f_div(c(1), un(Un::sqrt, x[0]));
    case Op::square: return f_mul(x[0], x[0]);
    case Op::tanh: return un(Un::tanh, x[0]);
    case Op::sigmoid: return f_div(c(1), f_add(c(1), un(Un::exp, un(Un::neg, x[0]))));
    case Op::relu: return select(gt(x[0], c(0)), x[0], c(0));
    case Op::leaky_relu: return select(gt(x[0], c(0)), x[0], f_mul(c(n.f("alpha")), x[0]));
    case Op::gelu:
      if (n.s("approximate") == "tanh") {
        E inner = f_mul(c(std::sqrt(2 / M_PI)), f_add(x[0], f_mul(c(0.044715), f_mul(x[0], f_mul(x[0], x[0])))));
        return f_mul(f_mul(c(0.5), x[0]), f_add(c(1), un(Un::tanh, inner)));
      }
      return f_mul(f_mul(c(0.5), x[0]), f_add(c(1), un(Un::erf, f_mul(x[0], c(M_SQRT1_2)))));
    case Op::sign: return select(gt(x[0], c(0)), c(1), select(lt(x[0], c(0)), c(-1), c(0)));
    case Op::cast:
      if (out == DType::b8) return bin(Bin::ne, x[0], c(0));
      return cast(x[0], out);  // float to int rounds toward zero
    case Op::add: return f_add(x[0], x[1]);
    case Op::sub: return f_sub(x[0], x[1]);
    case Op::mul: return f_mul(x[0], x[1]);
    case Op::div: return f_div(x[0], x[1]);
    case Op::pow: return bin(Bin::pow, x[0], x[1]);
    case Op::maximum: return is_float(t) ? select(bin(Bin::ne, x[0], x[0]), x[0], nan_max(x[0], x[1])) : bin(Bin::max, x[0], x[1]);
    case Op::minimum:
      return is_float(t) ? select(bin(Bin::ne, x[0], x[0]), x[0], select(bin(Bin::ne, x[1], x[1]), x[1], bin(Bin::min, x[0], x[1])))
                         : bin(Bin::min, x[0], x[1]);
    case Op::gt: return gt(x[0], x[1]);
    case Op::ge: return ge(x[0], x[1]);
    case Op::lt: return lt(x[0], x[1]);
    case Op::le: return bin(Bin::le, x[0], x[1]);
    case Op::eq: return bin(Bin::eq, x[0], x[1]);
    case Op::select: return select(x[0], x[1], x[2]);
    case Op::broadcast_to: return x[0];
    default: break;
  }
  throw std::logic_error(fmt::format("no scalar formula for {}", n.info().name));
}

Buffer make_buffer(const std::string& name, const Type& type, BufKind kind) {
  Buffer b;
  b.name = name;
  b.type = type;
  b.kind = kind;
  return b;
}

class Lowerer {
 public:
  Lowerer(const std::vector<std::pair<std::string, const Graph*>>& functions, const LowerOptions& options)
      : functions_(functions), options_(options) {
    prog_.name = functions.front().second->name;
    prog_.attrs = functions.front().second->attrs;
  }

  Program run() {
    // Parameters are shared by name: the training step and the inference pass of a model
    // read and write the same buffers.
    for (const auto& [name, graph] : functions_)
      for (const auto& n : graph->nodes)
        if (n->op == Op::parameter) param_buffer(*n);
    lower_init();
    for (const auto& [name, graph] : functions_) {
      g_ = graph;
      lower_function(name);
    }
    for (const auto& f : prog_.functions)
      if (f.name != "init") stats_.kernels += static_cast<int64_t>(f.kernels.size());
    return std::move(prog_);
  }

  const LowerStats& stats() const { return stats_; }

 private:
  // ---------------------------------------------------------------- buffers

  void param_buffer(const Node& n) {
    if (auto it = param_ids_.find(n.result()->name); it != param_ids_.end()) {
      if (B(it->second).type != n.result()->type)
        throw std::logic_error(fmt::format("parameter %{} has different types in the functions of one program", n.result()->name));
      buf_[n.result()] = it->second;
      return;
    }
    param_nodes_.push_back(&n);
    Buffer b = make_buffer(n.result()->name, n.result()->type, BufKind::Param);
    b.index = params_++;
    b.trainable = n.b("trainable");
    buf_[n.result()] = param_ids_[n.result()->name] = prog_.add_buffer(std::move(b));
  }

  int new_buffer(const std::string& name, const Type& t, BufKind kind) {
    Buffer b = make_buffer(name, t, kind);
    b.function = fn_;
    if (kind == BufKind::Input) b.index = inputs_++;
    if (kind == BufKind::Output) b.index = outputs_++;
    if (kind == BufKind::Temp) {
      b.offset = workspace_;
      workspace_ += (b.bytes() + 63) / 64 * 64;  // 64-byte aligned, for vector loads
    }
    return prog_.add_buffer(std::move(b));
  }

  // Negative ids name values computed where they are read (fusion), with a buffer-like
  // description so that lowerings see their types.
  // Lowerings copy the types they keep: adding a buffer may move every Buffer.
  const Buffer& B(int id) const { return id < 0 ? pseudo_[-id - 1] : prog_.buffers[id]; }
  int in(const Value* v) const { return buf_.at(v); }

  E ld(int id, E index) { return id < 0 ? read(id, nullptr, std::move(index)) : load(id, B(id).type.dtype, std::move(index)); }

  void begin_function(const std::string& name) {
    prog_.functions.push_back({name, {}});
    fn_ = static_cast<int>(prog_.functions.size()) - 1;
    inputs_ = outputs_ = 0;
    workspace_ = 0;
  }

  void end_function() { prog_.workspace_bytes = std::max(prog_.workspace_bytes, workspace_); }

  void emit(KernelBuilder&& kb) {
    kb.k.nodes = group_;
    kb.k.name = fmt::format("k{}_{}", prog_.functions[fn_].kernels.size(), kb.k.name);
    prog_.functions[fn_].kernels.push_back(std::move(kb.k));
  }

  int add_check(std::string message) {
    prog_.checks.push_back(std::move(message));
    return static_cast<int>(prog_.checks.size()) - 1;
  }

  std::string origin(const Node& n) const { return fmt::format("%{} = {}", n.result()->name, n.info().name); }

  // A kernel writing every element of `out` (shape `dims`) with `value(idx)`.
  void map_kernel(const std::string& name, const std::string& from, int out, const Dims& dims,
                  const std::function<E(const std::vector<E>&)>& value) {
    KernelBuilder kb(name, from);
    loop_nest(kb, dims, [&](const std::vector<E>& idx) {
      return std::vector<Stmt>{store(out, offset(idx, dims), value(idx))};
    });
    emit(std::move(kb));
  }

  void copy_kernel(const std::string& from, int dst, int src) {
    Dims flat{B(dst).numel()};
    map_kernel("copy", from, dst, flat, [&](const std::vector<E>& idx) { return ld(src, idx[0]); });
  }

  // ---------------------------------------------------------------- init

  void lower_init() {
    begin_function("init");
    int seed = new_buffer("seed", {DType::i64, {}}, BufKind::Input);
    int index = 0;
    for (const Node* n : param_nodes_) init_param(*n, seed, index++);
    end_function();
  }

  static double gain_of(const Node& n) {
    const std::string& nl = n.s("nonlinearity");
    if (nl == "relu") return std::sqrt(2.0);
    if (nl == "leaky_relu") return std::sqrt(2.0 / (1 + n.f("a") * n.f("a")));
    if (nl == "tanh") return 5.0 / 3;
    return 1;
  }

  void init_param(const Node& n, int seed_buf, int stream) {
    const Type& t = n.result()->type;
    int out = in(n.result());
    const std::string& init = n.s("init");
    int64_t receptive = 1;
    for (size_t d = 2; d < t.rank(); ++d) receptive *= t.dims[d];
    double fan_in = t.rank() >= 2 ? static_cast<double>(t.dims[1] * receptive) : 1;
    double fan_out = t.rank() >= 2 ? static_cast<double>(t.dims[0] * receptive) : 1;
    double fan = n.s("mode") == "fan_in" ? fan_in : fan_out;
    // Every init is affine in a uniform or normal draw: value = shift + scale * draw.
    bool normal = false;
    double shift = 0, scale = 0;
    if (init == "ones") shift = 1;
    else if (init == "constant") shift = n.f("value");
    else if (init == "uniform") shift = n.f("low"), scale = n.f("high") - n.f("low");
    else if (init == "normal") normal = true, shift = n.f("mean"), scale = n.f("std");
    else if (init == "xavier_uniform") {
      double bound = n.f("gain") * std::sqrt(6.0 / (fan_in + fan_out));
      shift = -bound, scale = 2 * bound;
    } else if (init == "xavier_normal") normal = true, scale = n.f("gain") * std::sqrt(2.0 / (fan_in + fan_out));
    else if (init == "kaiming_uniform") {
      double bound = gain_of(n) * std::sqrt(3.0 / fan);
      shift = -bound, scale = 2 * bound;
    } else if (init == "kaiming_normal") normal = true, scale = gain_of(n) / std::sqrt(fan);
    else if (init == "orthogonal") normal = true, scale = 1;
    std::string from = fmt::format("init %{} {}", n.result()->name, init);
    map_kernel("init", from, out, {numel(t)}, [&](const std::vector<E>& idx) {
      E value = fconst(shift, DType::f64);
      if (scale != 0) {
        E seed = load(seed_buf, DType::i64, int_(0));
        E draw = normal ? philox_normal(seed, int_(stream), idx[0]) : philox_uniform(seed, int_(stream), idx[0]);
        value = f_add(value, f_mul(fconst(scale, DType::f64), draw));
      }
      return cast(value, t.dtype);
    });
    if (init == "orthogonal") orthogonalize(n, out);
  }

  // Gram-Schmidt on the rows (or, for tall matrices, the columns) of the flattened weight,
  // then the gain: PyTorch's orthogonal_ up to the random draws.
  void orthogonalize(const Node& n, int w) {
    const Type& t = n.result()->type;
    int64_t rows = t.dims[0], cols = numel(t) / rows;
    bool by_rows = rows <= cols;
    int64_t count = by_rows ? rows : cols, len = by_rows ? cols : rows;
    DType dt = t.dtype;
    KernelBuilder kb("orthogonal", fmt::format("init %{} orthogonal", n.result()->name));
    int i = 0, j = kb.new_var("j"), k = kb.new_var("k"), dot = kb.new_var("dot", DType::f64), norm = kb.new_var("norm", DType::f64);
    auto at = [&](E vec, E e) { return by_rows ? add(mul(vec, int_(cols)), e) : add(mul(e, int_(cols)), vec); };
    auto val = [&](E vec, E e) { return cast(ld(w, at(vec, e)), DType::f64); };
    E vi = kb.v(i), vj = kb.v(j), vk = kb.v(k);
    // q_i -= <q_i, q_j> q_j for every j < i (later j are masked out), then q_i /= |q_i|.
    std::vector<Stmt> project = {
        assign(dot, fconst(0, DType::f64)),
        for_(k, 0, len, {assign(dot, f_add(kb.v(dot), f_mul(val(vi, vk), val(vj, vk))))}),
        for_(k, 0, len, {store(w, at(vi, vk), cast(f_sub(val(vi, vk), f_mul(select(lt(vj, vi), kb.v(dot), fconst(0, DType::f64)), val(vj, vk))), dt))}),
    };
    std::vector<Stmt> body = {for_(j, 0, count, std::move(project))};
    body.push_back(assign(norm, fconst(0, DType::f64)));
    body.push_back(for_(k, 0, len, {assign(norm, f_add(kb.v(norm), f_mul(val(vi, vk), val(vi, vk))))}));
    body.push_back(for_(k, 0, len, {store(w, at(vi, vk), cast(f_mul(fconst(n.f("gain"), DType::f64), f_div(val(vi, vk), un(Un::sqrt, kb.v(norm)))), dt))}));
    kb.k.extent = count;  // sequential: each vector depends on the ones before it
    kb.k.body = std::move(body);
    emit(std::move(kb));
  }

  // ---------------------------------------------------------------- forward

  void lower_function(const std::string& name) {
    begin_function(name);
    pseudo_.clear();
    pseudo_node_.clear();
    epilogue_.clear();
    absorbed_.clear();
    if (options_.fuse) plan_fusion();
    // Values that leave the function are written straight into output buffers.
    std::unordered_map<const Value*, std::string> output_of;
    for (const auto& o : g_->outputs)
      if (!output_of.count(o.value)) output_of[o.value] = o.name;
    for (const auto& n : g_->nodes) {
      if (n->op == Op::parameter) continue;
      for (const auto& r : n->results) {
        if (n->op == Op::input) buf_[r.get()] = new_buffer(r->name, r->type, BufKind::Input);
        else if (n->op == Op::constant) {
          Buffer b = make_buffer(r->name, r->type, BufKind::Const);
          const Floats& v = n->floats("value");
          b.data = v.size() == 1 ? std::vector<double>(static_cast<size_t>(numel(r->type)), v[0]) : v;
          buf_[r.get()] = prog_.add_buffer(std::move(b));
        } else if (fused_away_.count(r.get())) {
          Buffer b = make_buffer(r->name, r->type, BufKind::Temp);
          pseudo_.push_back(std::move(b));
          pseudo_node_.push_back(n.get());
          buf_[r.get()] = -static_cast<int>(pseudo_.size());
        } else if (auto it = output_of.find(r.get()); it != output_of.end())
          buf_[r.get()] = new_buffer(it->second, r->type, BufKind::Output);
        else
          buf_[r.get()] = new_buffer(r->name, r->type, BufKind::Temp);
      }
    }
    for (const auto& n : g_->nodes) {
      if (n->op == Op::parameter || n->op == Op::input || n->op == Op::constant) continue;
      if ((fused_away_.count(n->result()) && !carriers_.count(n->result())) || absorbed_.count(n.get())) continue;
      group_ = {n->result()->name};
      if (auto it = epilogue_.find(n.get()); it != epilogue_.end())
        for (const Node* u : it->second) group_.push_back(u->result()->name);
      lower_node(*n);
    }
    // Outputs that are inputs, parameters, constants or a second name for a value get a copy.
    for (const auto& o : g_->outputs) {
      int src = in(o.value);
      if (src >= 0 && B(src).kind == BufKind::Output && B(src).name == o.name) continue;
      int dst = new_buffer(o.name, o.value->type, BufKind::Output);
      group_.clear();
      copy_kernel(fmt::format("output {}", o.name), dst, src);
    }
    // Updates land last: other kernels may still read the old parameter values.
    for (const auto& u : g_->updates) {
      group_.clear();
      copy_kernel(fmt::format("update %{}", u.target->name), in(u.target), in(u.value));
    }
    end_function();
  }

  // ---------------------------------------------------------------- fusion

  // Does `consumer` read each element of its operand `v` once, so that computing `v` inside it
  // costs no more than reading a buffer? (A matmul reads each element N times; softmax reads a
  // row three times.)
  static bool reads_once(const Node& consumer, const Value* v) {
    const Dims& out = consumer.result()->type.dims;
    if (consumer.info().has(Elementwise)) return v->type.dims == out;
    switch (consumer.op) {
      case Op::sum: case Op::mean: case Op::max: case Op::argmax: case Op::reshape: case Op::flatten: case Op::transpose:
      case Op::l1_penalty: case Op::l2_penalty: case Op::mse: case Op::huber: case Op::bce_with_logits:
        return true;
      case Op::max_pool2d_grad: return v == consumer.operands[1] && v != consumer.operands[0];  // dy, once a window
      default: return false;
    }
  }

  // Which values are computed where they are read instead of in a kernel of their own, and
  // which elementwise nodes ride in the store of a matmul or convolution.
  void plan_fusion() {
    fused_away_.clear();
    carriers_.clear();
    std::map<const Value*, int> uses = use_counts(*g_);
    std::unordered_map<const Value*, std::vector<const Node*>> users;
    std::unordered_map<const Node*, size_t> position;
    for (size_t i = 0; i < g_->nodes.size(); ++i) {
      const Node& n = *g_->nodes[i];
      position[&n] = i;
      for (const Value* v : n.operands) users[v].push_back(&n);
    }
    // Outputs are never fused away, so their extra count in `uses` changes no decision.
    std::unordered_set<const Value*> outputs, updated;
    for (const auto& o : g_->outputs) outputs.insert(o.value);
    for (const auto& u : g_->updates) updated.insert(u.value);

    for (const auto& n : g_->nodes) {
      bool reshape = n->op == Op::reshape || n->op == Op::flatten;
      bool fusible = (n->info().has(Elementwise) && !n->info().has(Stochastic)) || n->op == Op::broadcast_to || reshape;
      if (!fusible || n->results.size() != 1 || outputs.count(n->result())) continue;
      const Value* v = n->result();
      const auto& us = users[v];
      bool once = std::all_of(us.begin(), us.end(), [&](const Node* u) { return reads_once(*u, v); });
      bool by_update = updated.count(v) > 0;
      // A reshape of a buffer is the buffer under other dims: reading through it is free.
      if (reshape && (!fused_away_.count(n->operands[0]) || once)) {
        fused_away_.insert(v);
        continue;
      }
      // A broadcast is only an index map: any number of readers may do it themselves.
      bool ok = n->op == Op::broadcast_to ? once && (!us.empty() || by_update) : uses[v] == 1 && (by_update ? us.empty() : once);
      if (ok) fused_away_.insert(v);
    }

    // An update computed in its copy must not read a parameter that an earlier update has
    // already overwritten.
    std::unordered_set<const Value*> written;
    for (const auto& u : g_->updates) {
      if (fused_away_.count(u.value)) {
        std::vector<const Value*> leaves;
        fused_leaves(u.value, leaves);
        if (std::any_of(leaves.begin(), leaves.end(), [&](const Value* l) { return written.count(l) > 0; }))
          fused_away_.erase(u.value);
      }
      written.insert(u.target);
    }

    // Epilogues: elementwise nodes of the result's shape applied to a matmul's or
    // convolution's accumulator as it is stored. Their other operands must be ready when
    // the producer runs.
    for (const auto& n : g_->nodes) {
      if (n->op != Op::matmul && n->op != Op::conv2d && !(n->op == Op::max_pool2d_grad && pool_grad_tiles(*n))) continue;
      std::vector<const Node*> chain;
      const Value* carry = n->result();
      for (;;) {
        if (outputs.count(carry) || uses[carry] != 1 || users[carry].size() != 1) break;
        const Node& u = *users[carry].front();
        if (absorbed_.count(&u) || !u.info().has(Elementwise) || u.info().has(Stochastic) || u.results.size() != 1 ||
            u.result()->type != n->result()->type || std::count(u.operands.begin(), u.operands.end(), carry) != 1)
          break;
        bool ready = true;
        for (const Value* x : u.operands) {
          if (x == carry) continue;
          std::vector<const Value*> leaves;
          fused_leaves(x, leaves);
          for (const Value* l : leaves)
            if (l->def->op != Op::parameter && l->def->op != Op::input && l->def->op != Op::constant &&
                position.at(l->def) >= position.at(n.get()))
              ready = false;
        }
        if (!ready) break;
        chain.push_back(&u);
        carry = u.result();
      }
      if (chain.empty()) continue;
      fused_away_.insert(n->result());  // lowered through the chain's last node
      for (const Node* u : chain) {
        absorbed_.insert(u);
        fused_away_.erase(u->result());
        if (u != chain.back()) fused_away_.insert(u->result());
      }
      stats_.epilogue_ops += static_cast<int64_t>(chain.size());
      epilogue_[n.get()] = std::move(chain);
    }
    // Chain members and producers are lowered by the producer, not inlined anywhere.
    for (const auto& [producer, chain] : epilogue_) {
      carriers_.insert(producer->result());
      for (size_t i = 0; i + 1 < chain.size(); ++i) carriers_.insert(chain[i]->result());
    }
    for (const Value* v : fused_away_)
      if (!carriers_.count(v)) ++stats_.inlined;
  }

  // The buffers a fused value reads in the end: its operands, through other fused values.
  void fused_leaves(const Value* v, std::vector<const Value*>& out) const {
    if (!fused_away_.count(v) || carriers_.count(v)) {
      out.push_back(v);
      return;
    }
    for (const Value* x : v->def->operands) fused_leaves(x, out);
  }

  // Reads element `flat` (multi-index `multi`, when the caller has it) of buffer or fused
  // value `id`.
  E read(int id, const std::vector<E>* multi, E flat) {
    if (id >= 0) return load(id, B(id).type.dtype, std::move(flat));
    const Node& n = *pseudo_node_[-id - 1];
    if (std::find(group_.begin(), group_.end(), n.result()->name) == group_.end()) group_.push_back(n.result()->name);
    return node_value(n, multi, std::move(flat));
  }

  // The element of `id` (dims `d`) that numpy broadcasting pairs with index `idx` of dims `D`.
  E read_broadcast(int id, const std::vector<E>& idx, const Dims& D, const Dims& d) {
    std::vector<E> xm;
    size_t lead = D.size() - d.size();
    for (size_t j = 0; j < d.size(); ++j) xm.push_back(d[j] == 1 ? int_(0) : idx[lead + j]);
    return read(id, &xm, offset(xm, d));
  }

  // Element `flat` of an elementwise node's result, from its operands.
  E node_value(const Node& n, const std::vector<E>* multi, E flat) {
    if (n.op == Op::reshape || n.op == Op::flatten) return read(in(n.operands[0]), nullptr, std::move(flat));
    const Dims& D = n.result()->type.dims;
    std::vector<E> unflat, args;
    for (const Value* x : n.operands) {
      int xid = in(x);
      const Dims& d = x->type.dims;
      if (d == D) {
        args.push_back(read(xid, multi, flat));
        continue;
      }
      int64_t xn = numel(x->type);
      if (xn == 1) {
        args.push_back(read(xid, nullptr, int_(0)));
        continue;
      }
      if (!multi) {
        // A trailing block (a bias row) repeats every numel(d) elements.
        size_t lead = 0;
        while (lead < d.size() && d[lead] == 1) ++lead;
        if (d.size() - lead <= D.size() && std::equal(d.begin() + static_cast<long>(lead), d.end(), D.end() - static_cast<long>(d.size() - lead))) {
          args.push_back(read(xid, nullptr, bin(Bin::rem, flat, int_(xn))));
          continue;
        }
        Dims st = strides_of(D);
        for (size_t k = 0; k < D.size(); ++k)
          unflat.push_back(k == 0 ? bin(Bin::div, flat, int_(st[0])) : bin(Bin::rem, bin(Bin::div, flat, int_(st[k])), int_(D[k])));
        multi = &unflat;
      }
      args.push_back(read_broadcast(xid, *multi, D, d));
    }
    if (n.op == Op::broadcast_to) return args[0];
    return scalar(n, args, n.result()->type.dtype);
  }

  // The buffer holding `id`'s elements in row-major order (through reshapes), or -1 when the
  // value is computed where it is read.
  int materialized(int id) const {
    while (id < 0) {
      const Node& n = *pseudo_node_[-id - 1];
      if (n.op != Op::reshape && n.op != Op::flatten) return -1;
      id = in(n.operands[0]);
    }
    return id;
  }

  // Where a node's kernel stores: its result, or the end of its epilogue chain.
  int store_target(const Node& n) const {
    auto it = epilogue_.find(&n);
    return it == epilogue_.end() ? in(n.result()) : in(it->second.back()->result());
  }

  // The epilogue of `n` applied to its accumulated value at output index `idx`.
  E epilogue(const Node& n, E acc, const std::vector<E>& idx) {
    auto it = epilogue_.find(&n);
    if (it == epilogue_.end()) return acc;
    const Dims& D = n.result()->type.dims;
    const Value* carry = n.result();
    for (const Node* u : it->second) {
      std::vector<E> args;
      for (const Value* x : u->operands) {
        if (x == carry) {
          args.push_back(acc);
          continue;
        }
        args.push_back(read_broadcast(in(x), idx, D, x->type.dims));
      }
      acc = scalar(*u, args, u->result()->type.dtype);
      carry = u->result();
    }
    return acc;
  }

  void lower_node(const Node& n) {
    const OpInfo& info = n.info();
    std::vector<int> xs;
    for (const Value* v : n.operands) xs.push_back(in(v));
    int out = store_target(n);
    const Type& ot = n.result()->type;
    std::string from = origin(n);
    if (info.has(Elementwise) || n.op == Op::broadcast_to) {
      map_kernel(std::string(info.name), from, out, ot.dims,
                 [&](const std::vector<E>& idx) { return node_value(n, &idx, offset(idx, ot.dims)); });
      return;
    }
    switch (n.op) {
      case Op::iota: {
        int64_t axis = norm_axis(n.i("axis"), ot.rank());
        map_kernel("iota", from, out, ot.dims, [&](const std::vector<E>& idx) { return cast(idx[axis], ot.dtype); });
        return;
      }
      case Op::random_uniform:
      case Op::random_normal: {
        bool normal = n.op == Op::random_normal;
        double a = normal ? n.f("mean") : n.f("low"), b = normal ? n.f("std") : n.f("high") - n.f("low");
        map_kernel(std::string(info.name), from, out, {numel(ot)}, [&](const std::vector<E>& idx) {
          E key = xs.empty() ? int_(0) : ld(xs[0], int_(0));
          E draw = normal ? philox_normal(int_(n.i("seed")), key, idx[0]) : philox_uniform(int_(n.i("seed")), key, idx[0]);
          return cast(f_add(fconst(a, DType::f64), f_mul(fconst(b, DType::f64), draw)), ot.dtype);
        });
        return;
      }
      case Op::sum:
      case Op::mean:
      case Op::max:
      case Op::argmax: return reduce(n, xs[0], out);
      case Op::matmul: return matmul(n, xs[0], xs[1], out);
      case Op::conv2d: return conv2d(n, xs, out);
      case Op::conv_transpose2d: return conv_transpose2d(n, xs, out);
      case Op::conv2d_weight_grad: return conv2d_weight_grad(n, xs, out);
      case Op::max_pool2d:
      case Op::avg_pool2d: return pool2d(n, xs[0], out);
      case Op::max_pool2d_grad: return max_pool2d_grad(n, xs[0], xs[1], out);
      case Op::global_avg_pool: return global_avg_pool(n, xs[0], out);
      case Op::batch_norm: return batch_norm(n, xs);
      case Op::layer_norm: return layer_norm(n, xs, out);
      case Op::dropout: return dropout(n, xs, out);
      case Op::softmax:
      case Op::log_softmax: return softmax(n, xs[0], out);
      case Op::embedding: return embedding(n, xs[0], xs[1], out);
      case Op::one_hot: return one_hot(n, xs[0], out);
      case Op::reshape:
      case Op::flatten: return copy_kernel(from, out, xs[0]);
      case Op::transpose: return transpose(n, xs[0], out);
      case Op::concat: return concat(n, xs, out);
      case Op::slice: return slice(n, xs[0], out);
      case Op::pad: return pad(n, xs[0], out);
      case Op::split: return split(n, xs[0]);
      case Op::mse:
      case Op::huber:
      case Op::bce_with_logits: return regression_loss(n, xs[0], xs[1], out);
      case Op::cross_entropy:
      case Op::nll: return classification_loss(n, xs[0], xs[1], out);
      case Op::l1_penalty:
      case Op::l2_penalty: return penalty(n, xs[0], out);
      default: break;
    }
    throw std::logic_error(fmt::format("lowering: no lowering for {}", info.name));
  }

  // ---------------------------------------------------------------- reductions

  void reduce(const Node& n, int x, int out) {
    const Type xt = B(x).type;
    size_t rank = xt.rank();
    std::vector<bool> red(rank, false);
    if (n.op == Op::argmax) red[norm_axis(n.i("axis"), rank)] = true;
    else {
      const Ints& axes = n.ints("axes");
      for (size_t d = 0; d < rank; ++d) red[d] = axes.empty();
      for (int64_t a : axes) red[norm_axis(a, rank)] = true;
    }
    Dims kept, reduced;
    for (size_t d = 0; d < rank; ++d) (red[d] ? reduced : kept).push_back(xt.dims[d]);
    // The accumulator has the result's type (a sum of bools or i32 is i64), argmax's the input's.
    DType dt = n.op == Op::argmax ? xt.dtype : B(out).type.dtype;
    size_t lead = 0;
    while (lead < rank && red[lead]) ++lead;
    bool leading_only = lead > 0 && std::none_of(red.begin() + static_cast<long>(lead), red.end(), [](bool r) { return r; });
    if (n.op != Op::argmax && leading_only && !kept.empty()) return reduce_leading(n, x, out, *checked_numel(reduced), *checked_numel(kept), dt);
    // Neighbouring axes both reduced (or both kept) are one axis of the row-major input: the
    // inner loop then runs over all of them (a bias gradient's 28 x 28 plane is one loop of
    // 784, which LLVM vectorizes; two loops of 28 it left scalar).
    Dims in_dims = xt.dims;
    if (n.op != Op::argmax) {
      Dims merged;
      std::vector<bool> merged_red;
      for (size_t d = 0; d < rank; ++d) {
        if (!merged.empty() && merged_red.back() == red[d]) merged.back() *= xt.dims[d];
        else merged.push_back(xt.dims[d]), merged_red.push_back(red[d]);
      }
      in_dims = merged, red = merged_red, rank = merged.size();
      kept.clear(), reduced.clear();
      for (size_t d = 0; d < rank; ++d) (red[d] ? reduced : kept).push_back(in_dims[d]);
    }
    KernelBuilder kb(std::string(n.info().name), origin(n));
    int acc = kb.new_var("acc", dt);
    int best = n.op == Op::argmax ? kb.new_var("best", DType::i64) : -1;
    std::vector<int> rvars;
    for (size_t d = 0; d < reduced.size(); ++d) rvars.push_back(kb.new_var("r" + std::to_string(d)));
    loop_nest(kb, kept, [&](const std::vector<E>& kidx) {
      // Rebuild the input index from kept and reduced loop variables.
      std::vector<E> full;
      size_t ki = 0, ri = 0;
      for (size_t d = 0; d < rank; ++d) full.push_back(red[d] ? kb.v(rvars[ri++]) : kidx[ki++]);
      E value = cast(ld(x, offset(full, in_dims)), dt);
      Stmt update;
      E init;
      if (n.op == Op::sum || n.op == Op::mean) {
        init = zero_of(dt);
        update = assign(acc, f_add(kb.v(acc), value));
      } else if (n.op == Op::max) {
        init = lowest(dt);
        update = assign(acc, nan_max(kb.v(acc), value));
      } else {
        init = lowest(dt);
        // First maximum wins; once a NaN is best, it stays.
        E acc_v = kb.v(acc);
        E better = is_float(dt) ? and_(bin(Bin::eq, acc_v, acc_v), bin(Bin::or_, gt(value, acc_v), bin(Bin::ne, value, value)))
                                : gt(value, acc_v);
        E first = bin(Bin::eq, kb.v(rvars[0]), int_(0));
        E take = bin(Bin::or_, first, better);
        update = assign(acc, select(take, value, acc_v));
        Stmt upd_best = assign(best, select(take, kb.v(rvars[0]), kb.v(best)));
        std::vector<Stmt> loop = {upd_best, update};
        std::vector<Stmt> stmts = {assign(acc, init), assign(best, int_(0)), for_(rvars[0], 0, reduced[0], loop)};
        stmts.push_back(store(out, offset(kidx, kept), kb.v(best)));
        return stmts;
      }
      std::vector<Stmt> loop = {update};
      for (size_t d = reduced.size(); d-- > 0;) loop = {for_(rvars[d], 0, reduced[d], std::move(loop))};
      E result = kb.v(acc);
      if (n.op == Op::mean) result = f_div(result, fconst(static_cast<double>(*checked_numel(reduced)), dt));
      std::vector<Stmt> stmts = {assign(acc, init)};
      for (auto& s : loop) stmts.push_back(std::move(s));
      stmts.push_back(store(out, offset(kidx, kept), result));
      return stmts;
    }, 256);
    emit(std::move(kb));
  }

  // A reduction over leading axes (a bias gradient: sum over batch and sequence) reads the
  // input row by row and accumulates whole output rows, so loads stay contiguous and the
  // inner loop vectorizes; p runs over blocks of the output.
  void reduce_leading(const Node& n, int x, int out, int64_t rows, int64_t cols, DType dt) {
    int64_t block = 1;
    for (int64_t b = std::min<int64_t>(cols, 256); b >= 1; --b)
      if (cols % b == 0) {
        block = b;
        break;
      }
    KernelBuilder kb(std::string(n.info().name), origin(n));
    int r = kb.new_var("r"), j = kb.new_var("j");
    E col = add(mul(kb.v(0), int_(block)), kb.v(j));
    E value = cast(ld(x, add(mul(kb.v(r), int_(cols)), col)), dt);
    E acc = ld(out, col);
    E combined = n.op == Op::max ? nan_max(acc, value) : f_add(acc, value);
    kb.k.body = {for_(j, 0, block, {store(out, col, n.op == Op::max ? lowest(dt) : zero_of(dt))}),
                 for_(r, 0, rows, {for_(j, 0, block, {store(out, col, combined)})})};
    if (n.op == Op::mean) kb.k.body.push_back(for_(j, 0, block, {store(out, col, f_div(ld(out, col), fconst(static_cast<double>(rows), dt)))}));
    kb.k.extent = cols / block;
    kb.k.grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, rows * block));
    kb.k.parallel = kb.k.extent > kb.k.grain;
    emit(std::move(kb));
  }

  // ---------------------------------------------------------------- linear algebra

  void matmul(const Node& n, int a, int b, int out) {
    const Type at = B(a).type, bt = B(b).type, ot = B(out).type;
    bool ta = n.b("transpose_a"), tb = n.b("transpose_b");
    size_t ra = at.rank(), rb = bt.rank(), ro = ot.rank();
    int64_t M = ot.dims[ro - 2], N = ot.dims[ro - 1], K = ta ? at.dims[ra - 2] : at.dims[ra - 1];
    Dims batch(ot.dims.begin(), ot.dims.end() - 2);
    Dims ba(at.dims.begin(), at.dims.end() - 2), bb(bt.dims.begin(), bt.dims.end() - 2);
    DType dt = ot.dtype;
    Dims outer = batch;
    outer.push_back(M);
    int a_buf = materialized(a), b_buf = materialized(b);
    int64_t batches = *checked_numel(batch);
    if (dt == DType::f32 && a_buf >= 0 && b_buf >= 0 && batches <= kMaxGemmBatches) {
      // The register-tiled product of codegen; the epilogue runs over each finished row.
      Gemm gm;
      gm.a = a_buf, gm.b = b_buf, gm.c = out, gm.M = M, gm.N = N, gm.K = K, gm.ta = ta, gm.tb = tb;
      if (!batch.empty()) {
        Dims st = strides_of(batch);
        for (int64_t bi = 0; bi < batches; ++bi) {
          std::vector<E> idx;
          for (size_t d = 0; d < batch.size(); ++d) idx.push_back(int_(bi / st[d] % batch[d]));
          gm.a_offsets.push_back(broadcast_offset(idx, batch, ba)->i * at.dims[ra - 2] * at.dims[ra - 1]);
          gm.b_offsets.push_back(broadcast_offset(idx, batch, bb)->i * bt.dims[rb - 2] * bt.dims[rb - 1]);
        }
      }
      KernelBuilder kb("matmul", origin(n));
      int j = kb.new_var("j");
      // Few rows and many columns: threads take blocks of columns (each packs or streams only
      // its part of B); otherwise blocks of rows.
      const int64_t rows = batches * M;
      if (rows <= kColumnSplitRows && N % kColumnBlock == 0 && N >= 2 * kColumnBlock) gm.column_block = kColumnBlock;
      kb.k.gemm = gm;
      auto epilogue_row = [&](E row, E col) {
        std::vector<E> idx;
        Dims st = strides_of(outer);
        for (size_t d = 0; d < outer.size(); ++d) idx.push_back(bin(Bin::rem, bin(Bin::div, row, int_(st[d])), int_(outer[d])));
        idx.push_back(col);
        E at = add(mul(row, int_(N)), col);
        return store(out, at, epilogue(n, ld(out, at), idx));
      };
      if (gm.column_block) {
        int r = kb.new_var("r");
        loop_nest(kb, {N / kColumnBlock}, [&](const std::vector<E>& block) {
          if (!epilogue_.count(&n)) return std::vector<Stmt>{};
          E col = add(mul(block[0], int_(kColumnBlock)), kb.v(j));
          return std::vector<Stmt>{for_(r, 0, rows, {for_(j, 0, kColumnBlock, {epilogue_row(kb.v(r), col)})})};
        }, 1);
        kb.k.grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, rows * kColumnBlock * K));
      } else {
        loop_nest(kb, {rows}, [&](const std::vector<E>& flat) {
          if (!epilogue_.count(&n)) return std::vector<Stmt>{};
          return std::vector<Stmt>{for_(j, 0, N, {epilogue_row(flat[0], kb.v(j))})};
        }, 1);
        // Rows are worth a thread in blocks of about 2^18 multiply-adds.
        kb.k.grain = std::max<int64_t>(8, (int64_t{1} << 18) / std::max<int64_t>(1, N * K));
      }
      kb.k.parallel = kb.k.extent > kb.k.grain;
      emit(std::move(kb));
      return;
    }
    // p runs over (batch..., i); the k loop sits outside the j loop so that j vectorizes,
    // unless B is transposed (below).
    KernelBuilder kb("matmul", origin(n));
    int j = kb.new_var("j"), k = kb.new_var("k"), acc = kb.new_var("acc", dt);
    loop_nest(kb, {*checked_numel(outer)}, [&](const std::vector<E>& flat) {
      std::vector<E> idx;
      Dims st = strides_of(outer);
      for (size_t d = 0; d < outer.size(); ++d)
        idx.push_back(bin(Bin::rem, bin(Bin::div, flat[0], int_(st[d])), int_(outer[d])));
      std::vector<E> bidx(idx.begin(), idx.end() - 1);
      E i = idx.back();
      E a_base = mul(broadcast_offset(bidx, batch, ba), int_(at.dims[ra - 2] * at.dims[ra - 1]));
      E b_base = mul(broadcast_offset(bidx, batch, bb), int_(bt.dims[rb - 2] * bt.dims[rb - 1]));
      E c_row = mul(flat[0], int_(N));
      E jv = kb.v(j), kv = kb.v(k);
      E a_ik = ld(a, add(a_base, ta ? add(mul(kv, int_(M)), i) : add(mul(i, int_(K)), kv)));
      E b_kj = ld(b, add(b_base, tb ? add(mul(jv, int_(K)), kv) : add(mul(kv, int_(N)), jv)));
      E c = ld(out, add(c_row, jv));
      std::vector<E> out_idx = idx;
      out_idx.push_back(jv);
      if (tb && !ta) {
        // B^T: rows of A and B are both contiguous in k, so each element is a dot product
        // (a vectorized reduction).
        return std::vector<Stmt>{for_(j, 0, N, {assign(acc, zero_of(dt)), for_(k, 0, K, {assign(acc, f_add(kb.v(acc), f_mul(a_ik, b_kj)))}),
                                                store(out, add(c_row, jv), epilogue(n, kb.v(acc), out_idx))})};
      }
      std::vector<Stmt> row = {
          for_(j, 0, N, {store(out, add(c_row, jv), zero_of(dt))}),
          for_(k, 0, K, {for_(j, 0, N, {store(out, add(c_row, jv), f_add(c, f_mul(a_ik, b_kj)))})}),
      };
      // The epilogue runs over the finished row while it is still in cache.
      if (epilogue_.count(&n)) row.push_back(for_(j, 0, N, {store(out, add(c_row, jv), epilogue(n, c, out_idx))}));
      return row;
    }, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, N * K)));
    emit(std::move(kb));
  }

  // ---------------------------------------------------------------- neural network

  // In-bounds test and a safe index: loads at a clamped index are always legal, and the
  // value is masked by the test.
  static E in_range(E v, int64_t size) { return and_(ge(v, int_(0)), lt(v, int_(size))); }

  static int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -(-a / b); }

  // Writes the Hd x Wd plane of dst at dst_at: element (h, w) is element (h*step[0] + first[0],
  // w*step[1] + first[1]) of the H x W plane of src at src_at, zero where that lies outside it
  // (and everywhere where `valid`, when given, is false). Each region has static ranges, so
  // every row is a plain loop LLVM vectorizes (one loop with a bounds test per element was a
  // gather).
  std::vector<Stmt> strided_plane(KernelBuilder& kb, int dst, E dst_at, int64_t Hd, int64_t Wd, int src, E src_at, int64_t H,
                                  int64_t W, std::array<int64_t, 2> step, std::array<int64_t, 2> first, E valid = nullptr) {
    int h = kb.new_var("h"), w = kb.new_var("w");
    E zero = zero_of(DType::f32);
    E at = add(dst_at, add(mul(kb.v(h), int_(Wd)), kb.v(w)));
    int64_t top = std::clamp<int64_t>(ceil_div(-first[0], step[0]), 0, Hd), left = std::clamp<int64_t>(ceil_div(-first[1], step[1]), 0, Wd);
    int64_t bottom = std::clamp<int64_t>(ceil_div(H - first[0], step[0]), top, Hd);
    int64_t right = std::clamp<int64_t>(ceil_div(W - first[1], step[1]), left, Wd);
    E row_of = add(mul(kb.v(h), int_(step[0])), int_(first[0])), col_of = add(mul(kb.v(w), int_(step[1])), int_(first[1]));
    E from = add(src_at, add(mul(row_of, int_(W)), col_of));
    E v = valid ? select(valid, ld(src, select(valid, from, int_(0))), zero) : ld(src, from);
    std::vector<Stmt> row;
    if (left > 0) row.push_back(for_(w, 0, left, {store(dst, at, zero)}));
    row.push_back(for_(w, left, right, {store(dst, at, v)}));
    if (right < Wd) row.push_back(for_(w, right, Wd, {store(dst, at, zero)}));
    std::vector<Stmt> plane;
    if (top > 0) plane.push_back(for_(h, 0, top, {for_(w, 0, Wd, {store(dst, at, zero)})}));
    plane.push_back(for_(h, top, bottom, row));
    if (bottom < Hd) plane.push_back(for_(h, bottom, Hd, {for_(w, 0, Wd, {store(dst, at, zero)})}));
    return plane;
  }

  // The H x W plane placed at (top, left) of the Hd x Wd plane, zeros around it.
  std::vector<Stmt> padded_plane(KernelBuilder& kb, int dst, E dst_at, int64_t Hd, int64_t Wd, int src, E src_at, int64_t H,
                                 int64_t W, int64_t top, int64_t left, E valid = nullptr) {
    return strided_plane(kb, dst, std::move(dst_at), Hd, Wd, src, std::move(src_at), H, W, {1, 1}, {-top, -left}, std::move(valid));
  }

  // The sizes of a convolution from input x to output y with a KH x KW kernel.
  static ConvShape conv_shape(const Node& n, const Type& x, const Type& y, int64_t KH, int64_t KW) {
    const Ints &s = n.ints("stride"), &p = n.ints("padding"), &d = n.ints("dilation");
    return {x.dims[0], x.dims[1], x.dims[2], x.dims[3], y.dims[1], y.dims[2], y.dims[3], KH, KW, {s[0], s[1]}, {p[0], p[1]}, {d[0], d[1]}};
  }

  // The micro-kernel takes f32 operands from buffers, one group, a bounded number of batches.
  bool gemm_operands(const Node& n, const std::vector<int>& xs, int out) const {
    return B(out).type.dtype == DType::f32 && n.i("groups") == 1 && materialized(xs[0]) >= 0 && materialized(xs[1]) >= 0 &&
           B(xs[0]).type.dims[0] <= kMaxGemmBatches;
  }

  void conv2d(const Node& n, const std::vector<int>& xs, int out) {
    const Type wt = B(xs[1]).type;
    ConvShape c = conv_shape(n, B(xs[0]).type, B(out).type, wt.dims[2], wt.dims[3]);
    switch (conv2d_path(c, gemm_operands(n, xs, out))) {
      case ConvPath::dense: return conv2d_dense(n, xs, out, c);
      case ConvPath::lines: return conv2d_lines(n, xs, out, c, false);
      case ConvPath::lines_merged: return conv2d_lines(n, xs, out, c, true);
      case ConvPath::im2col: return conv2d_im2col(n, xs, out, c);
      default: return conv2d_loops(n, xs, out);
    }
  }

  // The kernel covers the whole image (a 1 x 1 output): out (Bn x O) = x (Bn x C*H*W) times w
  // (O x C*H*W) transposed, one product for every image; bias and epilogue ride in the store.
  void conv2d_dense(const Node& n, const std::vector<int>& xs, int out, const ConvShape& c) {
    Gemm gm;
    gm.a = materialized(xs[0]), gm.b = materialized(xs[1]), gm.c = out, gm.M = c.Bn, gm.N = c.O, gm.K = c.C * c.H * c.W, gm.tb = true;
    KernelBuilder kb("conv2d", origin(n));
    kb.k.gemm = gm;
    int o = kb.new_var("o");
    loop_nest(kb, {c.Bn}, [&](const std::vector<E>& b) {
      if (xs.size() == 2 && !epilogue_.count(&n)) return std::vector<Stmt>{};
      E at = add(mul(b[0], int_(c.O)), kb.v(o)), v = ld(out, at);
      if (xs.size() == 3) v = f_add(v, ld(xs[2], kb.v(o)));
      return std::vector<Stmt>{for_(o, 0, c.O, {store(out, at, epilogue(n, v, {b[0], kb.v(o), int_(0), int_(0)}))})};
    }, 1);
    kb.k.grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, c.O * gm.K));
    kb.k.parallel = c.Bn > kb.k.grain;
    emit(std::move(kb));
  }

  // Convolution on the product's micro-kernel: out[b] (O x OH*OW) = w (O x C*KH*KW) times the
  // image's patches, gathered while packing (Gemm::Im2col). Bias and epilogue ride in the store.
  void conv2d_im2col(const Node& n, const std::vector<int>& xs, int out, const ConvShape& c) {
    int64_t N = c.OH * c.OW, K = c.C * c.KH * c.KW;
    Gemm gm;
    gm.a = materialized(xs[1]), gm.b = materialized(xs[0]), gm.c = out, gm.M = c.O, gm.N = N, gm.K = K;
    gm.a_offsets.assign(static_cast<size_t>(c.Bn), 0);
    for (int64_t b = 0; b < c.Bn; ++b) gm.b_offsets.push_back(b * c.C * c.H * c.W);
    gm.im2col = Gemm::Im2col{c.C, c.H, c.W, c.KH, c.KW, c.OW, {c.s[0], c.s[1]}, {c.p[0], c.p[1]}, {c.d[0], c.d[1]}};
    KernelBuilder kb("conv2d", origin(n));
    kb.k.gemm = gm;
    int j = kb.new_var("j");
    bool bias = xs.size() == 3;
    loop_nest(kb, {c.Bn * c.O}, [&](const std::vector<E>& flat) {
      if (!bias && !epilogue_.count(&n)) return std::vector<Stmt>{};
      E o = bin(Bin::rem, flat[0], int_(c.O));
      std::vector<E> idx = {bin(Bin::div, flat[0], int_(c.O)), o, bin(Bin::div, kb.v(j), int_(c.OW)), bin(Bin::rem, kb.v(j), int_(c.OW))};
      E at_j = add(mul(flat[0], int_(N)), kb.v(j));
      E v = ld(out, at_j);
      if (bias) v = f_add(v, ld(xs[2], o));
      return std::vector<Stmt>{for_(j, 0, N, {store(out, at_j, epilogue(n, v, idx))})};
    }, 1);
    kb.k.grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, N * K));
    kb.k.parallel = c.Bn * c.O > kb.k.grain;
    emit(std::move(kb));
  }

  // Every image's phase planes (Phases) in one buffer: image by image ([Bn, C, phases, plane]),
  // or `merged`, each channel's phase of every image side by side ([C, phases, Bn, plane]);
  // then `slack` zeros that the last lines run into.
  int phase_images(const Node& n, const ConvShape& c, const Phases& ph, int src, bool merged, int64_t slack) {
    int64_t P = ph.count(), plane = ph.plane(), total = c.Bn * c.C * P * plane;
    int dst = new_buffer(n.result()->name + ".phases", {DType::f32, {total + slack}}, BufKind::Temp);
    KernelBuilder kp("conv_phases", origin(n));
    loop_nest(kp, {c.Bn, c.C}, [&](const std::vector<E>& i) {
      std::vector<Stmt> body;
      E from = mul(add(mul(i[0], int_(c.C)), i[1]), int_(c.H * c.W));
      for (int64_t r = 0; r < P; ++r) {
        E at = merged ? mul(add(mul(add(mul(i[1], int_(P)), int_(r)), int_(c.Bn)), i[0]), int_(plane))
                      : mul(add(mul(add(mul(i[0], int_(c.C)), i[1]), int_(P)), int_(r)), int_(plane));
        std::array<int64_t, 2> first = {r / c.s[1] - c.p[0], r % c.s[1] - c.p[1]};
        for (Stmt& st : strided_plane(kp, dst, at, ph.rows, ph.cols, src, from, c.H, c.W, {c.s[0], c.s[1]}, first)) body.push_back(std::move(st));
      }
      return body;
    }, std::max<int64_t>(1, 16384 / (P * plane)));
    emit(std::move(kp));
    if (slack) zero_run(n, dst, total, slack);
    return dst;
  }

  void zero_run(const Node& n, int buf, int64_t from, int64_t count) {
    KernelBuilder kt("conv_slack", origin(n));
    int q = kt.new_var("q");
    loop_nest(kt, {1}, [&](const std::vector<E>&) { return std::vector<Stmt>{for_(q, from, from + count, {store(buf, kt.v(q), zero_of(DType::f32))})}; });
    emit(std::move(kt));
  }

  // Where tap (c, kh, kw)'s line starts: in channel c's phase planes (`channel` elements
  // apart, `plane` from one phase to the next), from the tap's shift on.
  static std::vector<int64_t> tap_lines(const ConvShape& c, const Phases& ph, int64_t channel, int64_t plane) {
    std::vector<int64_t> lines;
    for (int64_t ci = 0; ci < c.C; ++ci)
      for (int64_t kh = 0; kh < c.KH; ++kh)
        for (int64_t kw = 0; kw < c.KW; ++kw) lines.push_back(ci * channel + ph.phase(c, kh, kw) * plane + ph.shift(c, kh, kw));
    return lines;
  }

  // The convolution at stride 1 on the phase planes (at stride 1 without padding, the image
  // itself): tap (c, kh, kw)'s patch row is its phase plane from the tap's shift on
  // (kir::Gemm::b_lines). The product fills a grid as wide as a plane; the store keeps the
  // output's columns (bias and epilogue ride in it) and drops the rest. Packing gathers
  // nothing, and few-row products read B in place. One product per image, or `merged`, one
  // over every image's planes side by side (each image's part of the grid a whole plane).
  void conv2d_lines(const Node& n, const std::vector<int>& xs, int out, const ConvShape& c, bool merged) {
    Phases ph(c);
    int64_t P = ph.count(), plane = ph.plane(), K = c.C * c.KH * c.KW;
    int64_t N = (merged ? (c.Bn - 1) * plane : 0) + (c.OH - 1) * ph.cols + c.OW, per_image = merged ? plane : N;
    bool copy = merged || P > 1 || c.p[0] || c.p[1];
    int x_buf = materialized(xs[0]), image = copy ? phase_images(n, c, ph, x_buf, merged, 0) : x_buf;
    // The grid is the output itself when it has no extra columns (a 1-wide kernel, no padding).
    bool exact = !merged && N == c.OH * c.OW && !epilogue_.count(&n) && xs.size() == 2;
    int grid = exact ? out : new_buffer(n.result()->name + ".grid", {DType::f32, {c.Bn * c.O * per_image}}, BufKind::Temp);
    Gemm gm;
    gm.a = materialized(xs[1]), gm.b = image, gm.c = grid, gm.M = c.O, gm.N = N, gm.K = K;
    if (!merged) gm.a_offsets.assign(static_cast<size_t>(c.Bn), 0);
    for (int64_t b = 0; b < c.Bn && !merged; ++b) gm.b_offsets.push_back(b * c.C * P * plane);
    gm.b_lines = merged ? tap_lines(c, ph, P * c.Bn * plane, c.Bn * plane) : tap_lines(c, ph, P * plane, plane);
    KernelBuilder kb("conv2d", origin(n));
    kb.k.gemm = gm;
    int b = kb.new_var("b"), oh = kb.new_var("oh"), ow = kb.new_var("ow");
    // A row of the grid: an (image, channel) pair, or merged, a channel of every image.
    loop_nest(kb, {merged ? c.O : c.Bn * c.O}, [&](const std::vector<E>& row) {
      if (exact) return std::vector<Stmt>{};
      E o = merged ? row[0] : bin(Bin::rem, row[0], int_(c.O)), img = merged ? kb.v(b) : bin(Bin::div, row[0], int_(c.O));
      E from = add(mul(row[0], int_(N)), merged ? mul(img, int_(plane)) : int_(0));
      E v = ld(grid, add(from, add(mul(kb.v(oh), int_(ph.cols)), kb.v(ow))));
      if (xs.size() == 3) v = f_add(v, ld(xs[2], o));
      E at = add(mul(add(mul(add(mul(img, int_(c.O)), o), int_(c.OH)), kb.v(oh)), int_(c.OW)), kb.v(ow));
      Stmt plane_store = for_(oh, 0, c.OH, {for_(ow, 0, c.OW, {store(out, at, epilogue(n, v, {img, o, kb.v(oh), kb.v(ow)}))})});
      return std::vector<Stmt>{merged ? for_(b, 0, c.Bn, {plane_store}) : plane_store};
    }, 1);
    kb.k.grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, N * K));
    kb.k.parallel = kb.k.extent > kb.k.grain;
    emit(std::move(kb));
  }

  void conv2d_weight_grad(const Node& n, const std::vector<int>& xs, int out) {
    const Type ot = B(out).type;
    ConvShape c = conv_shape(n, B(xs[0]).type, B(xs[1]).type, ot.dims[2], ot.dims[3]);
    switch (weight_grad_path(c, gemm_operands(n, xs, out))) {
      case ConvPath::dense: return weight_grad_dense(n, xs, out, c);
      case ConvPath::lines: return weight_grad_lines(n, xs, out, c, false);
      case ConvPath::lines_merged: return weight_grad_lines(n, xs, out, c, true);
      default: return weight_grad_loops(n, xs, out);
    }
  }

  // A kernel that only runs `gm`, split over threads in blocks of rows (at least `min_rows`),
  // or of columns when a single product has few rows.
  void emit_product(const Node& n, const std::string& name, Gemm gm, int64_t min_rows = 1) {
    KernelBuilder kg(name, origin(n));
    bool by_columns = gm.batches() == 1 && gm.M <= kColumnSplitRows && gm.N % kColumnBlock == 0 && gm.N >= 2 * kColumnBlock;
    if (by_columns) gm.column_block = kColumnBlock;
    kg.k.gemm = gm;
    int64_t extent = by_columns ? gm.N / kColumnBlock : gm.batches() * gm.M;
    loop_nest(kg, {extent}, [](const std::vector<E>&) { return std::vector<Stmt>{}; }, 1);
    int64_t work = by_columns ? gm.M * kColumnBlock * gm.K : gm.N * gm.K;
    kg.k.grain = min_rows * std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, min_rows * work));
    kg.k.parallel = extent > kg.k.grain;
    emit(std::move(kg));
  }

  // The kernel covers the whole image (a 1 x 1 output): dw (O x C*H*W) = dy (Bn x O)
  // transposed times the images (Bn x C*H*W).
  void weight_grad_dense(const Node& n, const std::vector<int>& xs, int out, const ConvShape& c) {
    Gemm gm;
    gm.a = materialized(xs[1]), gm.b = materialized(xs[0]), gm.c = out, gm.M = c.O, gm.N = c.C * c.H * c.W, gm.K = c.Bn, gm.ta = true;
    emit_product(n, "conv2d_weight_grad", gm);
  }

  // dy on a grid as wide as a phase plane (zeros in the columns past the output's), image by
  // image ([Bn, O, OH rows]) or, `merged`, every image's plane of a channel side by side
  // ([O, Bn, plane rows]: zero rows below the output's too).
  int dy_grid(const Node& n, int g_buf, const ConvShape& c, const Phases& ph, bool merged) {
    int64_t rows = merged ? ph.rows : c.OH, per_plane = rows * ph.cols;
    int grid = new_buffer(n.result()->name + ".dy_grid", {DType::f32, {c.Bn * c.O * per_plane}}, BufKind::Temp);
    KernelBuilder kp("conv2d_weight_grad_dy", origin(n));
    loop_nest(kp, {c.Bn * c.O}, [&](const std::vector<E>& i) {
      E b = bin(Bin::div, i[0], int_(c.O)), o = bin(Bin::rem, i[0], int_(c.O));
      E at = mul(merged ? add(mul(o, int_(c.Bn)), b) : i[0], int_(per_plane));
      return padded_plane(kp, grid, at, rows, ph.cols, g_buf, mul(i[0], int_(c.OH * c.OW)), c.OH, c.OW, 0, 0);
    }, std::max<int64_t>(1, 16384 / per_plane));
    emit(std::move(kp));
    return grid;
  }

  // The weight gradient at any stride as stride-1 products over the phase planes: dw (O x
  // C*KH*KW) = dy' (O x pixels) times the tap lines transposed, where dy' is dy on a grid as
  // wide as a phase plane, so each tap's line is its phase plane from the tap's shift on. Per
  // image (the threads split the images, whose partial sums add up at the end), or `merged`
  // as one product whose depth runs over every image's plane.
  void weight_grad_lines(const Node& n, const std::vector<int>& xs, int out, const ConvShape& c, bool merged) {
    Phases ph(c);
    int64_t P = ph.count(), plane = ph.plane(), N = c.C * c.KH * c.KW;
    int image = phase_images(n, c, ph, materialized(xs[0]), merged, ph.max_shift(c));
    int grid = dy_grid(n, materialized(xs[1]), c, ph, merged);
    bool partials = !merged && c.Bn > 1;
    int partial = partials ? new_buffer(n.result()->name + ".partial", {DType::f32, {c.Bn, c.O, N}}, BufKind::Temp) : out;
    Gemm gm;
    gm.a = grid, gm.b = image, gm.c = partial, gm.M = c.O, gm.N = N, gm.tb = true;
    gm.K = merged ? c.Bn * plane : c.OH * ph.cols;
    if (!merged)
      for (int64_t b = 0; b < c.Bn; ++b) gm.a_offsets.push_back(b * c.O * gm.K), gm.b_offsets.push_back(b * c.C * P * plane);
    gm.b_lines = merged ? tap_lines(c, ph, P * c.Bn * plane, c.Bn * plane) : tap_lines(c, ph, P * plane, plane);
    if (merged) return emit_product(n, "conv2d_weight_grad", gm);
    emit_product(n, "conv2d_weight_grad", gm, c.O);  // whole images to a thread
    if (partials) sum_partials(n, partial, out, c.Bn, c.O * N);
  }

  // out[i] = the sum over t of partial[t][i].
  void sum_partials(const Node& n, int partial, int out, int64_t count, int64_t size) {
    KernelBuilder ks("conv2d_weight_grad_sum", origin(n));
    int t = ks.new_var("t"), acc = ks.new_var("acc", DType::f32);
    loop_nest(ks, {size}, [&](const std::vector<E>& i) {
      return std::vector<Stmt>{assign(acc, zero_of(DType::f32)),
                               for_(t, 0, count, {assign(acc, f_add(ks.v(acc), ld(partial, add(mul(ks.v(t), int_(size)), i[0]))))}),
                               store(out, i[0], ks.v(acc))};
    });
    emit(std::move(ks));
  }

  // The loop forms: any dtype and groups, operands computed where they are read.
  void weight_grad_loops(const Node& n, const std::vector<int>& xs, int out) {
    const Type xt = B(xs[0]).type, gt = B(xs[1]).type, ot = B(out).type;
    int64_t Bn = xt.dims[0], C = xt.dims[1], H = xt.dims[2], W = xt.dims[3], O = gt.dims[1], OH = gt.dims[2], OW = gt.dims[3];
    int64_t KH = ot.dims[2], KW = ot.dims[3], G = n.i("groups"), cg = C / G, og = O / G;
    const Ints &s = n.ints("stride"), &p = n.ints("padding"), &d = n.ints("dilation");
    DType dt = ot.dtype;
    KernelBuilder kb("conv2d_weight_grad", origin(n));
    int b = kb.new_var("b"), oh = kb.new_var("oh"), ow = kb.new_var("ow"), acc = kb.new_var("acc", dt);
    // Each weight element sums its tap's pixels times dy over every image and output pixel.
    loop_nest(kb, {O, cg, KH, KW}, [&](const std::vector<E>& i) {
      E ci = add(mul(bin(Bin::div, i[0], int_(og)), int_(cg)), i[1]);
      E ih = add(f_sub(mul(kb.v(oh), int_(s[0])), int_(p[0])), mul(i[2], int_(d[0])));
      E iw = add(f_sub(mul(kb.v(ow), int_(s[1])), int_(p[1])), mul(i[3], int_(d[1])));
      E ok = and_(in_range(ih, H), in_range(iw, W));
      E x_at = add(mul(add(mul(add(mul(kb.v(b), int_(C)), ci), int_(H)), ih), int_(W)), iw);
      E g_at = add(mul(add(mul(add(mul(kb.v(b), int_(O)), i[0]), int_(OH)), kb.v(oh)), int_(OW)), kb.v(ow));
      E term = f_mul(ld(xs[0], select(ok, x_at, int_(0))), ld(xs[1], g_at));
      std::vector<Stmt> inner = {assign(acc, f_add(kb.v(acc), select(ok, term, zero_of(dt))))};
      return std::vector<Stmt>{assign(acc, zero_of(dt)), for_(b, 0, Bn, {for_(oh, 0, OH, {for_(ow, 0, OW, inner)})}),
                               store(out, offset(i, ot.dims), kb.v(acc))};
    }, 1);
    emit(std::move(kb));
  }

  void conv2d_loops(const Node& n, const std::vector<int>& xs, int out) {
    const Type xt = B(xs[0]).type, wt = B(xs[1]).type, ot = B(out).type;
    int64_t C = xt.dims[1], H = xt.dims[2], W = xt.dims[3], O = ot.dims[1], OH = ot.dims[2], OW = ot.dims[3];
    int64_t KH = wt.dims[2], KW = wt.dims[3], G = n.i("groups"), cg = C / G, og = O / G;
    const Ints &s = n.ints("stride"), &p = n.ints("padding"), &d = n.ints("dilation");
    DType dt = ot.dtype;
    KernelBuilder kb("conv2d", origin(n));
    int oh = kb.new_var("oh"), ow = kb.new_var("ow"), c = kb.new_var("c"), kh = kb.new_var("kh"), kw = kb.new_var("kw");
    int acc = kb.new_var("acc", dt);
    loop_nest(kb, {ot.dims[0] * O}, [&](const std::vector<E>& flat) {
      E b = bin(Bin::div, flat[0], int_(O)), o = bin(Bin::rem, flat[0], int_(O));
      E g = bin(Bin::div, o, int_(og));
      E ih = add(f_sub(mul(kb.v(oh), int_(s[0])), int_(p[0])), mul(kb.v(kh), int_(d[0])));
      E iw = add(f_sub(mul(kb.v(ow), int_(s[1])), int_(p[1])), mul(kb.v(kw), int_(d[1])));
      E ok = and_(in_range(ih, H), in_range(iw, W));
      E x_at = add(mul(add(mul(add(mul(b, int_(C)), add(mul(g, int_(cg)), kb.v(c))), int_(H)), ih), int_(W)), iw);
      E w_at = add(mul(add(mul(add(mul(o, int_(cg)), kb.v(c)), int_(KH)), kb.v(kh)), int_(KW)), kb.v(kw));
      E term = f_mul(ld(xs[0], select(ok, x_at, int_(0))), ld(xs[1], w_at));
      E init = xs.size() == 3 ? ld(xs[2], o) : zero_of(dt);
      std::vector<Stmt> inner = {assign(acc, f_add(kb.v(acc), select(ok, term, zero_of(dt))))};
      std::vector<Stmt> pixel = {assign(acc, init),
                                 for_(c, 0, cg, {for_(kh, 0, KH, {for_(kw, 0, KW, inner)})}),
                                 store(out, add(mul(add(mul(flat[0], int_(OH)), kb.v(oh)), int_(OW)), kb.v(ow)),
                                       epilogue(n, kb.v(acc), {b, o, kb.v(oh), kb.v(ow)}))};
      return std::vector<Stmt>{for_(oh, 0, OH, {for_(ow, 0, OW, pixel)})};
    }, 1);
    emit(std::move(kb));
  }

  // A transposed convolution's columns: cols[b] (M = Co*KH*KW rows x N) = w^T times image b
  // (Ci x N), one image a p (row_block), so the kernel's body adds them up while in cache.
  static Gemm image_columns(int w_buf, int image, int cols, int64_t Bn, int64_t M, int64_t N, int64_t Ci) {
    Gemm gm;
    gm.a = w_buf, gm.b = image, gm.c = cols, gm.M = M, gm.N = N, gm.K = Ci, gm.ta = true, gm.row_block = M;
    gm.a_offsets.assign(static_cast<size_t>(Bn), 0);
    for (int64_t b = 0; b < Bn; ++b) gm.b_offsets.push_back(b * Ci * N);
    return gm;
  }

  // The transposed convolution as a product and a scatter, one image at a time (while its
  // columns are in cache): cols[b] (Co*KH*KW x H*W) = w^T (w is Ci x Co*KH*KW) times x[b]
  // (Ci x H*W) on the micro-kernel; then every output plane of the image adds the columns of
  // the taps that reach it.
  void conv_transpose2d_columns(const Node& n, const std::vector<int>& xs, int out) {
    const Type xt = B(xs[0]).type, wt = B(xs[1]).type, ot = B(out).type;
    int x_buf = materialized(xs[0]), w_buf = materialized(xs[1]);
    int64_t Bn = xt.dims[0], Ci = xt.dims[1], H = xt.dims[2], W = xt.dims[3], Co = ot.dims[1], OH = ot.dims[2], OW = ot.dims[3];
    int64_t KH = wt.dims[2], KW = wt.dims[3], M = Co * KH * KW, N = H * W;
    const Ints &s = n.ints("stride"), &p = n.ints("padding"), &d = n.ints("dilation");
    int cols = new_buffer(n.result()->name + ".cols", {DType::f32, {Bn, M, N}}, BufKind::Temp);
    KernelBuilder kb("conv_transpose2d", origin(n));
    kb.k.gemm = image_columns(w_buf, x_buf, cols, Bn, M, N, Ci);
    int co = kb.new_var("co"), ih = kb.new_var("ih"), iw = kb.new_var("iw"), q = kb.new_var("q");
    // [lo, hi): the i in [0, size) with 0 <= i*stride - pad + tap*dil < out_size.
    auto landing = [](int64_t size, int64_t out_size, int64_t stride, int64_t pad, int64_t shift) {
      int64_t lo = 0, hi = size;
      while (lo < hi && lo * stride - pad + shift < 0) ++lo;
      while (hi > lo && (hi - 1) * stride - pad + shift >= out_size) --hi;
      return std::pair{lo, hi};
    };
    // Tap (kh, kw) of input pixel (ih, iw) lands on (ih*s - p + kh*d, iw*s - p + kw*d). The
    // pixels that land inside are a static range per tap, so the inner loop is a plain row
    // update, and every output pixel still sums its taps in (kh, kw) order.
    loop_nest(kb, {Bn}, [&](const std::vector<E>& image) {
      E plane = add(mul(image[0], int_(Co)), kb.v(co));
      E out_plane = mul(plane, int_(OH * OW));
      E init = xs.size() == 3 ? ld(xs[2], kb.v(co)) : zero_of(DType::f32);
      std::vector<Stmt> body = {for_(q, 0, OH * OW, {store(out, add(out_plane, kb.v(q)), init)})};
      for (int64_t th = 0; th < KH; ++th)
        for (int64_t tw = 0; tw < KW; ++tw) {
          auto [h0, h1] = landing(H, OH, s[0], p[0], th * d[0]);
          auto [w0, w1] = landing(W, OW, s[1], p[1], tw * d[1]);
          if (h0 >= h1 || w0 >= w1) continue;
          E row = add(mul(add(mul(image[0], int_(M)), add(mul(kb.v(co), int_(KH * KW)), int_(th * KW + tw))), int_(N)),
                      mul(kb.v(ih), int_(W)));
          E oh = add(mul(kb.v(ih), int_(s[0])), int_(th * d[0] - p[0]));
          E at = add(out_plane, add(mul(oh, int_(OW)), add(mul(kb.v(iw), int_(s[1])), int_(tw * d[1] - p[1]))));
          body.push_back(for_(ih, h0, h1, {for_(iw, w0, w1, {store(out, at, f_add(ld(out, at), ld(cols, add(row, kb.v(iw)))))})}));
        }
      return std::vector<Stmt>{for_(co, 0, Co, body)};
    }, 1);
    kb.k.grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, M * N * Ci));
    kb.k.parallel = Bn > kb.k.grain;
    emit(std::move(kb));
  }

  // Stride 1: the image is widened with zero columns to the full output's width Wf (every tap
  // landing inside), so each tap's columns add to the full plane as one contiguous run
  // (shifted by the tap; a widened column's zeros land harmlessly on the next row), which
  // vectorizes; the output is then the full plane cropped by the padding, plus the bias.
  void conv_transpose2d_full(const Node& n, const std::vector<int>& xs, int out, int x_buf, int w_buf) {
    const Type xt = B(xs[0]).type, wt = B(xs[1]).type, ot = B(out).type;
    int64_t Bn = xt.dims[0], Ci = xt.dims[1], H = xt.dims[2], W = xt.dims[3], Co = ot.dims[1], OH = ot.dims[2], OW = ot.dims[3];
    int64_t KH = wt.dims[2], KW = wt.dims[3], M = Co * KH * KW;
    const Ints &p = n.ints("padding"), &d = n.ints("dilation");
    int64_t Hf = H + d[0] * (KH - 1), Wf = W + d[1] * (KW - 1), N = H * Wf;
    int64_t plane = Hf * Wf + d[1] * (KW - 1);  // the last tap's run reaches this far
    int image = x_buf;
    if (Wf != W) {
      image = new_buffer(n.result()->name + ".widened", {DType::f32, {Bn, Ci, H, Wf}}, BufKind::Temp);
      KernelBuilder kw_("conv_transpose2d_widen", origin(n));
      loop_nest(kw_, {Bn * Ci}, [&](const std::vector<E>& i) {
        return padded_plane(kw_, image, mul(i[0], int_(H * Wf)), H, Wf, x_buf, mul(i[0], int_(H * W)), H, W, 0, 0);
      }, std::max<int64_t>(1, 16384 / (H * Wf)));
      emit(std::move(kw_));
    }
    int cols = new_buffer(n.result()->name + ".cols", {DType::f32, {Bn, M, N}}, BufKind::Temp);
    int full = new_buffer(n.result()->name + ".full", {DType::f32, {Bn, Co, plane}}, BufKind::Temp);
    KernelBuilder kb("conv_transpose2d", origin(n));
    kb.k.gemm = image_columns(w_buf, image, cols, Bn, M, N, Ci);
    int co = kb.new_var("co"), q = kb.new_var("q"), oh = kb.new_var("oh"), ow = kb.new_var("ow");
    loop_nest(kb, {Bn}, [&](const std::vector<E>& img) {
      E pl = add(mul(img[0], int_(Co)), kb.v(co));
      E full_at = mul(pl, int_(plane));
      std::vector<Stmt> body = {for_(q, 0, plane, {store(full, add(full_at, kb.v(q)), zero_of(DType::f32))})};
      for (int64_t th = 0; th < KH; ++th)
        for (int64_t tw = 0; tw < KW; ++tw) {
          E row = mul(add(mul(img[0], int_(M)), add(mul(kb.v(co), int_(KH * KW)), int_(th * KW + tw))), int_(N));
          E at = add(full_at, add(int_(th * d[0] * Wf + tw * d[1]), kb.v(q)));
          body.push_back(for_(q, 0, N, {store(full, at, f_add(ld(full, at), ld(cols, add(row, kb.v(q)))))}));
        }
      // Output (oh, ow) is full (oh + p, ow + p); output_padding's extra rows and columns
      // past the full plane get no tap.
      E fh = add(kb.v(oh), int_(p[0])), fw = add(kb.v(ow), int_(p[1]));
      E inside = and_(lt(fh, int_(Hf)), lt(fw, int_(Wf)));
      E v = select(inside, ld(full, add(full_at, select(inside, add(mul(fh, int_(Wf)), fw), int_(0)))), zero_of(DType::f32));
      if (xs.size() == 3) v = f_add(v, ld(xs[2], kb.v(co)));
      E out_at = add(mul(pl, int_(OH * OW)), add(mul(kb.v(oh), int_(OW)), kb.v(ow)));
      body.push_back(for_(oh, 0, OH, {for_(ow, 0, OW, {store(out, out_at, v)})}));
      return std::vector<Stmt>{for_(co, 0, Co, body)};
    }, 1);
    kb.k.grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, M * N * Ci));
    kb.k.parallel = Bn > kb.k.grain;
    emit(std::move(kb));
  }

  void conv_transpose2d(const Node& n, const std::vector<int>& xs, int out) {
    const Type wt = B(xs[1]).type;
    // Described by the convolution it transposes: that one's input is our output.
    ConvShape c = conv_shape(n, B(out).type, B(xs[0]).type, wt.dims[2], wt.dims[3]);
    switch (conv_transpose2d_path(c, gemm_operands(n, xs, out))) {
      case ConvPath::dense: return conv_transpose2d_dense(n, xs, out, c);
      case ConvPath::subpixel: return conv_transpose2d_subpixel(n, xs, out, c, false);
      case ConvPath::subpixel_merged: return conv_transpose2d_subpixel(n, xs, out, c, true);
      case ConvPath::full_columns: return conv_transpose2d_full(n, xs, out, materialized(xs[0]), materialized(xs[1]));
      case ConvPath::columns: return conv_transpose2d_columns(n, xs, out);
      default: return conv_transpose2d_loops(n, xs, out);
    }
  }

  // A 1 x 1 input to an output the kernel's size: out (Bn x Co*KH*KW) = x (Bn x Ci) times w
  // (Ci x Co*KH*KW).
  void conv_transpose2d_dense(const Node& n, const std::vector<int>& xs, int out, const ConvShape& c) {
    Gemm gm;
    gm.a = materialized(xs[0]), gm.b = materialized(xs[1]), gm.c = out, gm.M = c.Bn, gm.N = c.C * c.KH * c.KW, gm.K = c.O;
    emit_product(n, "conv_transpose2d", gm);
    if (xs.size() == 3) add_channel_bias(n, out, xs[2], c.Bn * c.C, c.H * c.W, c.C);
  }

  // Adds bias[channel] to every element of each of `planes` planes (channels cycle).
  void add_channel_bias(const Node& n, int out, int bias, int64_t planes, int64_t size, int64_t channels) {
    KernelBuilder kb("conv_transpose2d_bias", origin(n));
    int q = kb.new_var("q");
    loop_nest(kb, {planes}, [&](const std::vector<E>& pl) {
      E at = add(mul(pl[0], int_(size)), kb.v(q));
      return std::vector<Stmt>{for_(q, 0, size, {store(out, at, f_add(ld(out, at), ld(bias, bin(Bin::rem, pl[0], int_(channels)))))})};
    });
    emit(std::move(kb));
  }

  // A strided transposed convolution as one stride-1 convolution per output phase (sub-pixel,
  // SubpixelAxis): every phase of every image is a batch of one product whose A is that
  // phase's taps of the weight and whose B is the padded input read through tap lines (the
  // phase's first row and column in its offset); its grid, as wide as the padded input, is
  // then interleaved into the output. The batches are every image's phases, or `merged`, the
  // phases of one product over every image's padded planes side by side.
  // A sub-pixel convolution's padded input: planes of rows x cols, image by image ([Bn, Ci,
  // plane]), one copy that every phase reads from its first row and column on; or merged,
  // channel by channel with a copy a phase ([phases, Ci, Bn, plane]), each only the window its
  // phase reads, so no image's part of the grid holds columns only another phase reaches.
  struct SubpixelPlanes {
    int64_t rows, cols, image_stride, channel_stride, phase_stride;
    int64_t plane() const { return rows * cols; }
  };
  static SubpixelPlanes subpixel_planes(const ConvShape& c, const SubpixelAxis& ah, const SubpixelAxis& aw, bool merged) {
    if (!merged) return {ah.padded(), aw.padded(), c.O * ah.padded() * aw.padded(), ah.padded() * aw.padded(), 0};
    int64_t rows = ah.outputs(0) + ah.taps - 1, cols = aw.outputs(0) + aw.taps - 1;
    return {rows, cols, rows * cols, c.Bn * rows * cols, c.O * c.Bn * rows * cols};
  }

  int subpixel_input(const Node& n, int x_buf, const ConvShape& c, const SubpixelAxis& ah, const SubpixelAxis& aw, const SubpixelPlanes& L,
                     bool merged) {
    int64_t Ci = c.O, copies = merged ? ah.s * aw.s : 1;
    int image = new_buffer(n.result()->name + ".padded", {DType::f32, {copies * c.Bn * Ci * L.plane()}}, BufKind::Temp);
    KernelBuilder kp("conv_transpose2d_pad", origin(n));
    loop_nest(kp, {c.Bn, Ci}, [&](const std::vector<E>& i) {
      std::vector<Stmt> body;
      for (int64_t r = 0; r < copies; ++r) {
        std::array<int64_t, 2> first = {(merged ? ah.first(r / aw.s) : 0) - (ah.taps - 1), (merged ? aw.first(r % aw.s) : 0) - (aw.taps - 1)};
        E at = add(int_(r * L.phase_stride), add(mul(i[0], int_(L.image_stride)), mul(i[1], int_(L.channel_stride))));
        E from = mul(add(mul(i[0], int_(Ci)), i[1]), int_(c.OH * c.OW));
        for (Stmt& st : strided_plane(kp, image, at, L.rows, L.cols, x_buf, from, c.OH, c.OW, {1, 1}, first)) body.push_back(std::move(st));
      }
      return body;
    }, std::max<int64_t>(1, 16384 / (copies * L.plane())));
    emit(std::move(kp));
    return image;
  }

  void conv_transpose2d_subpixel(const Node& n, const std::vector<int>& xs, int out, const ConvShape& c, bool merged) {
    SubpixelAxis ah(c.s[0], c.p[0], c.KH, c.OH, c.H), aw(c.s[1], c.p[1], c.KW, c.OW, c.W);
    SubpixelPlanes L = subpixel_planes(c, ah, aw, merged);
    int64_t Ci = c.O, Co = c.C, P = ah.s * aw.s;
    Gemm gm;
    gm.b = subpixel_input(n, materialized(xs[0]), c, ah, aw, L, merged);
    gm.a = phase_weights(n, materialized(xs[1]), c, ah, aw), gm.M = Co, gm.K = Ci * ah.taps * aw.taps;
    gm.N = (merged ? (c.Bn - 1) * L.plane() : 0) + (ah.outputs(0) - 1) * L.cols + aw.outputs(0);
    for (int64_t b = 0; b < (merged ? 1 : c.Bn); ++b)
      for (int64_t r = 0; r < P; ++r) {
        gm.a_offsets.push_back(r * Co * gm.K);
        gm.b_offsets.push_back(merged ? r * L.phase_stride : b * L.image_stride + ah.first(r / aw.s) * L.cols + aw.first(r % aw.s));
      }
    for (int64_t ci = 0; ci < Ci; ++ci)
      for (int64_t jh = 0; jh < ah.taps; ++jh)
        for (int64_t jw = 0; jw < aw.taps; ++jw) gm.b_lines.push_back(ci * L.channel_stride + jh * L.cols + jw);
    gm.c = new_buffer(n.result()->name + ".grid", {DType::f32, {gm.batches() * Co * gm.N}}, BufKind::Temp);
    emit_product(n, "conv_transpose2d", gm);
    // Where image b's phase r of channel co starts in the grid.
    auto grid_at = [&](E b, int64_t r, E co) {
      if (merged) return add(mul(add(int_(r * Co), co), int_(gm.N)), mul(b, int_(L.plane())));
      return mul(add(mul(add(mul(b, int_(P)), int_(r)), int_(Co)), co), int_(gm.N));
    };
    interleave_phases(n, xs, out, gm.c, c, ah, aw, L.cols, merged, grid_at);
  }

  // wp[phase (rh, rw)][co][(ci, jh, jw)] = w[ci, co, ah.tap(rh, jh), aw.tap(rw, jw)], zero past
  // the kernel.
  int phase_weights(const Node& n, int w_buf, const ConvShape& c, const SubpixelAxis& ah, const SubpixelAxis& aw) {
    int64_t Ci = c.O, Co = c.C, taps = ah.taps * aw.taps, K = Ci * taps;
    int wp = new_buffer(n.result()->name + ".phase_weights", {DType::f32, {ah.s * aw.s, Co, K}}, BufKind::Temp);
    KernelBuilder kw("conv_transpose2d_weights", origin(n));
    int ci = kw.new_var("ci");
    loop_nest(kw, {Co}, [&](const std::vector<E>& co) {
      std::vector<Stmt> body;
      for (int64_t r = 0; r < ah.s * aw.s; ++r)
        for (int64_t j = 0; j < taps; ++j) {
          int64_t th = ah.tap(r / aw.s, j / aw.taps), tw = aw.tap(r % aw.s, j % aw.taps);
          E at = add(mul(add(int_(r * Co), co[0]), int_(K)), add(mul(kw.v(ci), int_(taps)), int_(j)));
          E from = add(mul(add(mul(kw.v(ci), int_(Co)), co[0]), int_(c.KH * c.KW)), int_(th * c.KW + tw));
          body.push_back(for_(ci, 0, Ci, {store(wp, at, th < c.KH && tw < c.KW ? ld(w_buf, from) : zero_of(DType::f32))}));
        }
      return body;
    });
    emit(std::move(kw));
    return wp;
  }

  // out[b, co, s*u + rh, s*v + rw] = the grid's phase (rh, rw) of (b, co) at (u, v) in rows of
  // `cols`, plus the bias; `channel_major` visits the planes channel by channel (the order of
  // a merged grid).
  void interleave_phases(const Node& n, const std::vector<int>& xs, int out, int grid, const ConvShape& c, const SubpixelAxis& ah,
                         const SubpixelAxis& aw, int64_t cols, bool channel_major, const std::function<E(E, int64_t, E)>& grid_at) {
    KernelBuilder ko("conv_transpose2d_interleave", origin(n));
    int u = ko.new_var("u"), v = ko.new_var("v");
    loop_nest(ko, {c.Bn * c.C}, [&](const std::vector<E>& pl) {
      E b = channel_major ? bin(Bin::rem, pl[0], int_(c.Bn)) : bin(Bin::div, pl[0], int_(c.C));
      E co = channel_major ? bin(Bin::div, pl[0], int_(c.Bn)) : bin(Bin::rem, pl[0], int_(c.C));
      E out_plane = mul(add(mul(b, int_(c.C)), co), int_(c.H * c.W));
      std::vector<Stmt> body;
      for (int64_t r = 0; r < ah.s * aw.s; ++r) {
        int64_t rh = r / aw.s, rw = r % aw.s;
        E from = add(grid_at(b, r, co), add(mul(ko.v(u), int_(cols)), ko.v(v)));
        E to = add(out_plane, add(mul(add(mul(ko.v(u), int_(ah.s)), int_(rh)), int_(c.W)), add(mul(ko.v(v), int_(aw.s)), int_(rw))));
        E val = xs.size() == 3 ? f_add(ld(grid, from), ld(xs[2], co)) : ld(grid, from);
        body.push_back(for_(u, 0, ah.outputs(rh), {for_(v, 0, aw.outputs(rw), {store(out, to, val)})}));
      }
      return body;
    }, std::max<int64_t>(1, 16384 / (c.H * c.W)));
    emit(std::move(ko));
  }

  // The gather form: any dtype and groups, operands computed where they are read.
  void conv_transpose2d_loops(const Node& n, const std::vector<int>& xs, int out) {
    const Type xt = B(xs[0]).type, wt = B(xs[1]).type, ot = B(out).type;
    int64_t C = xt.dims[1], H = xt.dims[2], W = xt.dims[3], O = ot.dims[1], OH = ot.dims[2], OW = ot.dims[3];
    int64_t KH = wt.dims[2], KW = wt.dims[3], G = n.i("groups"), cg = C / G, og = O / G;
    const Ints &s = n.ints("stride"), &p = n.ints("padding"), &d = n.ints("dilation");
    DType dt = ot.dtype;
    KernelBuilder kb("conv_transpose2d", origin(n));
    int oh = kb.new_var("oh"), ow = kb.new_var("ow"), c = kb.new_var("c"), kh = kb.new_var("kh"), kw = kb.new_var("kw");
    int acc = kb.new_var("acc", dt);
    // Gather form: output pixel (oh, ow) takes input (ih, iw) where ih*s - p + kh*d == oh.
    loop_nest(kb, {ot.dims[0] * O}, [&](const std::vector<E>& flat) {
      E b = bin(Bin::div, flat[0], int_(O)), o = bin(Bin::rem, flat[0], int_(O));
      E g = bin(Bin::div, o, int_(og)), oc = bin(Bin::rem, o, int_(og));
      E th = f_sub(add(kb.v(oh), int_(p[0])), mul(kb.v(kh), int_(d[0])));
      E tw = f_sub(add(kb.v(ow), int_(p[1])), mul(kb.v(kw), int_(d[1])));
      E ih = bin(Bin::div, th, int_(s[0])), iw = bin(Bin::div, tw, int_(s[1]));
      E ok = and_(and_(and_(ge(th, int_(0)), ge(tw, int_(0))),
                       and_(bin(Bin::eq, bin(Bin::rem, th, int_(s[0])), int_(0)), bin(Bin::eq, bin(Bin::rem, tw, int_(s[1])), int_(0)))),
                  and_(lt(ih, int_(H)), lt(iw, int_(W))));
      E ci = add(mul(g, int_(cg)), kb.v(c));
      E x_at = add(mul(add(mul(add(mul(b, int_(C)), ci), int_(H)), ih), int_(W)), iw);
      E w_at = add(mul(add(mul(add(mul(ci, int_(og)), oc), int_(KH)), kb.v(kh)), int_(KW)), kb.v(kw));
      E term = f_mul(ld(xs[0], select(ok, x_at, int_(0))), ld(xs[1], w_at));
      E init = xs.size() == 3 ? ld(xs[2], o) : zero_of(dt);
      std::vector<Stmt> inner = {assign(acc, f_add(kb.v(acc), select(ok, term, zero_of(dt))))};
      std::vector<Stmt> pixel = {assign(acc, init),
                                 for_(c, 0, cg, {for_(kh, 0, KH, {for_(kw, 0, KW, inner)})}),
                                 store(out, add(mul(add(mul(flat[0], int_(OH)), kb.v(oh)), int_(OW)), kb.v(ow)), kb.v(acc))};
      return std::vector<Stmt>{for_(oh, 0, OH, {for_(ow, 0, OW, pixel)})};
    }, 1);
    emit(std::move(kb));
  }

  // A pooling's windows over one plane: output (oh, ow) covers input rows oh*s[0] - p[0] +
  // kh*d[0] and columns ow*s[1] - p[1] + kw*d[1]; the windows of output rows [rows[0], rows[1])
  // and columns [cols[0], cols[1]) lie wholly inside the input.
  struct PoolWindows {
    int64_t H, W, OH, OW;
    Ints k, s, p, d;
    std::array<int64_t, 2> rows, cols;
  };

  static PoolWindows pool_windows(const Node& n, const Dims& in, const Dims& pooled) {
    PoolWindows w;
    w.H = in[2], w.W = in[3], w.OH = pooled[2], w.OW = pooled[3];
    w.k = n.ints("kernel");
    w.s = n.ints("stride").empty() ? w.k : n.ints("stride");
    w.p = n.ints("padding");
    w.d = n.info().attr_index("dilation") >= 0 ? n.ints("dilation") : Ints{1, 1};
    for (int i = 0; i < 2; ++i) {
      int64_t size = in[2 + i], out = pooled[2 + i], last = size - 1 + w.p[i] - w.d[i] * (w.k[i] - 1);
      int64_t lo = std::min(out, (w.p[i] + w.s[i] - 1) / w.s[i]), hi = last < 0 ? 0 : std::min(out, last / w.s[i] + 1);
      (i == 0 ? w.rows : w.cols) = {lo, std::max(lo, hi)};
    }
    return w;
  }

  // The statements of every window (oh, ow) of a plane: `window(false)` where the window lies
  // inside the input, `window(true)` (bounds-checked) around that, so the inside loops have
  // static ranges and no guards. `independent`: no window reads what another writes, and
  // computing one twice changes nothing; then the inside rows are vectorized.
  static std::vector<Stmt> over_windows(const PoolWindows& w, int oh, int ow, bool independent,
                                        const std::function<std::vector<Stmt>(bool checked)>& window) {
    std::vector<Stmt> stmts;
    auto rows = [&](int64_t from, int64_t to, std::vector<Stmt> body) {
      if (from < to) stmts.push_back(for_(oh, from, to, std::move(body)));
    };
    auto cols = [&](std::vector<Stmt>& body, int64_t from, int64_t to, bool checked) {
      if (from >= to) return;
      // A single window is no loop worth vectorizing (and LLVM warns when it cannot).
      if (checked || !independent || to - from < 2) {
        body.push_back(for_(ow, from, to, window(checked)));
        return;
      }
      // Whole vectors only: the windows past the last multiple of 8 are done by a second loop
      // of 8 windows ending at `to`, which redoes some (their stores repeat). A scalar
      // remainder after the vector loop costs more than the windows it saves.
      int64_t chunk = 8, whole = (to - from) / chunk * chunk;
      if (whole == 0 || whole == to - from) {
        body.push_back(vectorized_for(ow, from, to, window(false)));
        return;
      }
      body.push_back(vectorized_for(ow, from, from + whole, window(false)));
      body.push_back(vectorized_for(ow, to - chunk, to, window(false)));
    };
    std::vector<Stmt> border, inside;
    cols(border, 0, w.OW, true);
    if (w.rows[0] == w.rows[1] || w.cols[0] == w.cols[1]) {
      rows(0, w.OH, std::move(border));
      return stmts;
    }
    cols(inside, 0, w.cols[0], true);
    cols(inside, w.cols[0], w.cols[1], false);
    cols(inside, w.cols[1], w.OW, true);
    rows(0, w.rows[0], border);
    rows(w.rows[0], w.rows[1], std::move(inside));
    rows(w.rows[1], w.OH, std::move(border));
    return stmts;
  }

  // Greater or NaN: the value max_pool2d keeps and the tap max_pool2d_grad picks (PyTorch's
  // rule). As a compare and a blend it vectorizes, where llvm.maximum's expansion does not.
  static E takes_over(E v, E best) { return bin(Bin::or_, gt(v, best), bin(Bin::ne, v, v)); }

  void pool2d(const Node& n, int x, int out) {
    const Type xt = B(x).type, ot = B(out).type;
    bool is_max = n.op == Op::max_pool2d;
    PoolWindows w = pool_windows(n, xt.dims, ot.dims);
    int64_t H = w.H, W = w.W;
    const Ints &k = w.k, &s = w.s, &p = w.p, &d = w.d;
    bool include_pad = !is_max && n.b("count_include_pad");
    DType dt = ot.dtype;
    KernelBuilder kb(std::string(n.info().name), origin(n));
    int oh = kb.new_var("oh"), ow = kb.new_var("ow"), kh = kb.new_var("kh"), kw = kb.new_var("kw");
    int acc = kb.new_var("acc", dt), count = kb.new_var("count", dt);
    loop_nest(kb, {ot.dims[0] * ot.dims[1]}, [&](const std::vector<E>& flat) {
      E h0 = f_sub(mul(kb.v(oh), int_(s[0])), int_(p[0])), w0 = f_sub(mul(kb.v(ow), int_(s[1])), int_(p[1]));
      E ih = add(h0, mul(kb.v(kh), int_(d[0]))), iw = add(w0, mul(kb.v(kw), int_(d[1])));
      E at = add(mul(add(mul(flat[0], int_(H)), ih), int_(W)), iw);
      E out_at = add(mul(add(mul(flat[0], int_(w.OH)), kb.v(oh)), int_(w.OW)), kb.v(ow));
      return over_windows(w, oh, ow, true, [&](bool checked) {
        E ok = and_(in_range(ih, H), in_range(iw, W));
        E v = ld(x, checked ? select(ok, at, int_(0)) : at);
        E tap = is_max ? select(takes_over(v, kb.v(acc)), v, kb.v(acc)) : f_add(kb.v(acc), v);
        bool counts = !is_max && checked && !include_pad;
        std::vector<Stmt> inner = {assign(acc, checked ? select(ok, tap, kb.v(acc)) : tap)};
        if (counts) inner.push_back(assign(count, f_add(kb.v(count), select(ok, fconst(1, dt), fconst(0, dt)))));
        E result = kb.v(acc);
        if (!is_max) {
          // Inside the input the divisor is the kernel's size either way; PyTorch clips the
          // window to the padded input when padding counts.
          E divisor = fconst(static_cast<double>(k[0] * k[1]), dt);
          if (counts) {
            divisor = kb.v(count);
          } else if (checked) {
            E hend = bin(Bin::min, add(h0, int_(k[0])), int_(H + p[0]));
            E wend = bin(Bin::min, add(w0, int_(k[1])), int_(W + p[1]));
            divisor = cast(mul(f_sub(hend, h0), f_sub(wend, w0)), dt);
          }
          result = f_div(result, divisor);
        }
        std::vector<Stmt> pixel = {assign(acc, fconst(is_max ? -kInf : 0, dt))};
        if (counts) pixel.push_back(assign(count, fconst(0, dt)));
        pixel.push_back(for_(kh, 0, k[0], {for_(kw, 0, k[1], inner)}));
        pixel.push_back(store(out, out_at, result));
        return pixel;
      });
    }, 4);
    emit(std::move(kb));
  }

  // Per plane: each window's dy goes to the tap max_pool2d took its value from (window_max_at
  // in ir/reference.cpp). The tap is found as a float index and every tap of the window then
  // stores dy or 0 by a compare, so no address or branch depends on the data: a scatter to
  // the found position makes x86 branch on every compare, and mispredict half of them. Where
  // windows are disjoint the taps' stores are plain (after zeroing the plane, unless the
  // windows tile it) and the rows vectorize; where they overlap, the taps add.
  // Whether max_pool2d_grad's windows tile the input (no padding, no gaps, no overlap): every
  // element is then stored exactly once, so elementwise consumers (relu's backward) can ride in
  // the store as an epilogue.
  static bool pool_grad_tiles(const Node& n) {
    PoolWindows w = pool_windows(n, n.operands[0]->type.dims, n.operands[1]->type.dims);
    bool tiled = true;
    for (int i = 0; i < 2; ++i)
      tiled = tiled && w.p[i] == 0 && w.s[i] == w.k[i] && (w.d[i] == 1 || w.k[i] == 1) && (i == 0 ? w.OH * w.s[0] == w.H : w.OW * w.s[1] == w.W);
    return tiled;
  }

  void max_pool2d_grad(const Node& n, int x, int dy, int out) {
    const Type xt = B(x).type, dyt = B(dy).type;
    PoolWindows w = pool_windows(n, xt.dims, dyt.dims);
    int64_t H = w.H, W = w.W;
    const Ints &k = w.k, &s = w.s, &p = w.p, &d = w.d;
    DType dt = xt.dtype;
    bool disjoint = true, tiled = pool_grad_tiles(n);
    for (int i = 0; i < 2; ++i) disjoint = disjoint && s[i] >= d[i] * (k[i] - 1) + 1;
    // The tap index as a float of the data's width: its lanes line up with the data's when
    // vectorized. f32 counts exactly to 2^24 taps.
    DType index_type = k[0] * k[1] <= (int64_t{1} << 24) ? dt : DType::f64;
    KernelBuilder kb("max_pool2d_grad", origin(n));
    int q = kb.new_var("q"), oh = kb.new_var("oh"), ow = kb.new_var("ow"), kh = kb.new_var("kh"), kw = kb.new_var("kw");
    int best = kb.new_var("best", dt), tap = kb.new_var("tap", index_type);
    int value = kb.new_var("value", dt), takes = kb.new_var("takes", DType::b8), grad = kb.new_var("grad", dt);
    loop_nest(kb, {xt.dims[0] * xt.dims[1]}, [&](const std::vector<E>& plane) {
      E in_plane = mul(plane[0], int_(H * W));
      E h0 = f_sub(mul(kb.v(oh), int_(s[0])), int_(p[0])), w0 = f_sub(mul(kb.v(ow), int_(s[1])), int_(p[1]));
      E ih = add(h0, mul(kb.v(kh), int_(d[0]))), iw = add(w0, mul(kb.v(kw), int_(d[1])));
      E at = add(mul(ih, int_(W)), iw), this_tap = cast(add(mul(kb.v(kh), int_(k[1])), kb.v(kw)), index_type);
      E g = kb.v(grad);
      std::vector<Stmt> body;
      if (!tiled) body.push_back(for_(q, 0, H * W, {store(out, add(in_plane, kb.v(q)), zero_of(dt))}));
      for (Stmt& st : over_windows(w, oh, ow, disjoint, [&](bool checked) {
             E ok = and_(in_range(ih, H), in_range(iw, W));
             E v = kb.v(value);
             // A checked window starts with no tap (-1): its first one inside takes it.
             E take = checked ? and_(ok, bin(Bin::or_, lt(kb.v(tap), fconst(0, index_type)), takes_over(v, kb.v(best))))
                              : takes_over(v, kb.v(best));
             E hit = bin(Bin::eq, kb.v(tap), this_tap);
             Stmt give;
             if (checked) {
               // Taps outside the input add zero to the plane's first element instead.
               E to = add(in_plane, select(ok, at, int_(0)));
               give = store(out, to, f_add(ld(out, to), select(and_(ok, hit), g, zero_of(dt))));
             } else if (disjoint) {
               std::vector<E> idx = {bin(Bin::div, plane[0], int_(xt.dims[1])), bin(Bin::rem, plane[0], int_(xt.dims[1])), ih, iw};
               give = store(out, add(in_plane, at), tiled ? epilogue(n, select(hit, g, zero_of(dt)), idx) : select(hit, g, zero_of(dt)));
             } else {
               E to = add(in_plane, at);
               give = store(out, to, f_add(ld(out, to), select(hit, g, zero_of(dt))));
             }
             return std::vector<Stmt>{
                 assign(best, fconst(-kInf, dt)),
                 assign(tap, fconst(checked ? -1 : 0, index_type)),
                 for_(kh, 0, k[0], {for_(kw, 0, k[1], {assign(value, ld(x, add(in_plane, checked ? select(ok, at, int_(0)) : at))),
                                                       assign(takes, take),
                                                       assign(tap, select(kb.v(takes), this_tap, kb.v(tap))),
                                                       assign(best, select(kb.v(takes), v, kb.v(best)))})}),
                 assign(grad, ld(dy, add(mul(add(mul(plane[0], int_(w.OH)), kb.v(oh)), int_(w.OW)), kb.v(ow)))),
                 for_(kh, 0, k[0], {for_(kw, 0, k[1], {give})})};
           }))
        body.push_back(std::move(st));
      return body;
    }, 0);
    kb.k.grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, H * W));
    kb.k.parallel = kb.k.extent > kb.k.grain;
    emit(std::move(kb));
  }

  void global_avg_pool(const Node& n, int x, int out) {
    const Type xt = B(x).type;
    int64_t HW = xt.dims[2] * xt.dims[3];
    DType dt = xt.dtype;
    KernelBuilder kb("global_avg_pool", origin(n));
    int i = kb.new_var("i"), acc = kb.new_var("acc", dt);
    loop_nest(kb, {xt.dims[0] * xt.dims[1]}, [&](const std::vector<E>& flat) {
      return std::vector<Stmt>{assign(acc, zero_of(dt)),
                               for_(i, 0, HW, {assign(acc, f_add(kb.v(acc), ld(x, add(mul(flat[0], int_(HW)), kb.v(i)))))}),
                               store(out, flat[0], f_div(kb.v(acc), fconst(static_cast<double>(HW), dt)))};
    }, 16);
    emit(std::move(kb));
  }

  void batch_norm(const Node& n, const std::vector<int>& xs) {
    const Type xt = B(xs[0]).type;
    int64_t N = xt.dims[0], C = xt.dims[1], inner = numel(xt) / (N * C);
    int y = in(n.result(0)), mean = in(n.result(1)), var = in(n.result(2));
    DType dt = xt.dtype;
    std::string from = origin(n);
    if (n.b("training")) {
      // Two passes per channel (mean, then the centred sum of squares), as the reference does.
      KernelBuilder kb("batch_norm_stats", from);
      int b = kb.new_var("b"), i = kb.new_var("i"), s = kb.new_var("s", dt), m = kb.new_var("m", dt);
      loop_nest(kb, {C}, [&](const std::vector<E>& c) {
        E at = add(mul(add(mul(kb.v(b), int_(C)), c[0]), int_(inner)), kb.v(i));
        E count = fconst(static_cast<double>(N * inner), dt);
        E dv = f_sub(ld(xs[0], at), kb.v(m));
        return std::vector<Stmt>{
            assign(s, zero_of(dt)),
            for_(b, 0, N, {for_(i, 0, inner, {assign(s, f_add(kb.v(s), ld(xs[0], at)))})}),
            assign(m, f_div(kb.v(s), count)),
            assign(s, zero_of(dt)),
            for_(b, 0, N, {for_(i, 0, inner, {assign(s, f_add(kb.v(s), f_mul(dv, dv)))})}),
            store(mean, c[0], kb.v(m)),
            store(var, c[0], f_div(kb.v(s), count)),
        };
      }, 1);
      emit(std::move(kb));
    } else {
      copy_kernel(from, mean, xs[3]);
      copy_kernel(from, var, xs[4]);
    }
    double eps = n.f("eps");
    map_kernel("batch_norm", from, y, xt.dims, [&](const std::vector<E>& idx) {
      E c = idx[1];
      E norm = f_div(f_sub(ld(xs[0], offset(idx, xt.dims)), ld(mean, c)), un(Un::sqrt, f_add(ld(var, c), fconst(eps, dt))));
      return f_add(f_mul(norm, ld(xs[1], c)), ld(xs[2], c));
    });
  }

  void layer_norm(const Node& n, const std::vector<int>& xs, int out) {
    const Type xt = B(xs[0]).type;
    int64_t k = n.i("normalized_dims");
    int64_t inner = *checked_numel(Dims(xt.dims.end() - k, xt.dims.end())), rows = numel(xt) / inner;
    DType dt = xt.dtype;
    KernelBuilder kb("layer_norm", origin(n));
    int i = kb.new_var("i"), s = kb.new_var("s", dt), m = kb.new_var("m", dt), r = kb.new_var("rstd", dt);
    loop_nest(kb, {rows}, [&](const std::vector<E>& row) {
      E at = add(mul(row[0], int_(inner)), kb.v(i));
      E dv = f_sub(ld(xs[0], at), kb.v(m));
      E count = fconst(static_cast<double>(inner), dt);
      E z = f_mul(dv, kb.v(r));
      if (xs.size() == 3) z = f_add(f_mul(z, ld(xs[1], kb.v(i))), ld(xs[2], kb.v(i)));
      return std::vector<Stmt>{
          assign(s, zero_of(dt)),
          for_(i, 0, inner, {assign(s, f_add(kb.v(s), ld(xs[0], at)))}),
          assign(m, f_div(kb.v(s), count)),
          assign(s, zero_of(dt)),
          for_(i, 0, inner, {assign(s, f_add(kb.v(s), f_mul(dv, dv)))}),
          assign(r, f_div(fconst(1, dt), un(Un::sqrt, f_add(f_div(kb.v(s), count), fconst(n.f("eps"), dt))))),
          for_(i, 0, inner, {store(out, at, z)}),
      };
    }, 16);
    emit(std::move(kb));
  }

  void dropout(const Node& n, const std::vector<int>& xs, int out) {
    double p = n.f("p");
    if (!n.b("training") || p == 0) return copy_kernel(origin(n), out, xs[0]);
    const Type xt = B(xs[0]).type;
    DType dt = xt.dtype;
    map_kernel("dropout", origin(n), out, {numel(xt)}, [&](const std::vector<E>& idx) {
      E key = xs.size() > 1 ? ld(xs[1], int_(0)) : int_(0);
      E u = philox_uniform(int_(n.i("seed")), key, idx[0]);
      return select(lt(u, fconst(p, DType::f64)), zero_of(dt), f_mul(ld(xs[0], idx[0]), fconst(1 / (1 - p), dt)));
    });
  }

  void softmax(const Node& n, int x, int out) {
    const Type xt = B(x).type;
    int64_t axis = norm_axis(n.i("axis"), xt.rank());
    int64_t len = xt.dims[axis], inner = strides_of(xt.dims)[axis], outer = numel(xt) / (len * inner);
    DType dt = xt.dtype;
    bool log = n.op == Op::log_softmax;
    KernelBuilder kb(std::string(n.info().name), origin(n));
    int j = kb.new_var("j"), mx = kb.new_var("mx", dt), s = kb.new_var("s", dt);
    loop_nest(kb, {outer * inner}, [&](const std::vector<E>& row) {
      E o = bin(Bin::div, row[0], int_(inner)), i = bin(Bin::rem, row[0], int_(inner));
      E at = add(mul(add(mul(o, int_(len)), kb.v(j)), int_(inner)), i);
      E v = ld(x, at);
      E e = un(Un::exp, f_sub(v, kb.v(mx)));
      E result = log ? f_sub(f_sub(v, kb.v(mx)), un(Un::log, kb.v(s))) : f_div(e, kb.v(s));
      return std::vector<Stmt>{
          assign(mx, fconst(-kInf, dt)),
          for_(j, 0, len, {assign(mx, nan_max(kb.v(mx), v))}),
          assign(s, zero_of(dt)),
          for_(j, 0, len, {assign(s, f_add(kb.v(s), e))}),
          for_(j, 0, len, {store(out, at, result)}),
      };
    }, 16);
    emit(std::move(kb));
  }

  // Reads an index from `ids` at `at`, checks it against [0, size) and returns it clamped,
  // so that a bad index reports an error instead of reading out of bounds.
  E checked_index(int ids, E at, int64_t size, std::vector<Stmt>& stmts, const std::string& what) {
    E id = cast(ld(ids, at), DType::i64);
    int code = add_check(fmt::format("{}: index {{}} is out of range [0, {})", what, size));
    stmts.push_back(check(in_range(id, size), id, code));
    return bin(Bin::min, bin(Bin::max, id, int_(0)), int_(size - 1));
  }

  void embedding(const Node& n, int w, int ids, int out) {
    int64_t V = B(w).type.dims[0], D = B(w).type.dims[1];
    KernelBuilder kb("embedding", origin(n));
    int d = kb.new_var("d");
    loop_nest(kb, {B(ids).numel()}, [&](const std::vector<E>& i) {
      std::vector<Stmt> stmts;
      E row = checked_index(ids, i[0], V, stmts, fmt::format("embedding %{}", n.result()->name));
      stmts.push_back(for_(d, 0, D, {store(out, add(mul(i[0], int_(D)), kb.v(d)), ld(w, add(mul(row, int_(D)), kb.v(d))))}));
      return stmts;
    }, 64);
    emit(std::move(kb));
  }

  void one_hot(const Node& n, int ids, int out) {
    int64_t C = n.i("num_classes");
    DType dt = B(out).type.dtype;
    KernelBuilder kb("one_hot", origin(n));
    int c = kb.new_var("c");
    loop_nest(kb, {B(ids).numel()}, [&](const std::vector<E>& i) {
      std::vector<Stmt> stmts;
      E id = checked_index(ids, i[0], C, stmts, fmt::format("one_hot %{}", n.result()->name));
      stmts.push_back(for_(c, 0, C, {store(out, add(mul(i[0], int_(C)), kb.v(c)),
                                           select(bin(Bin::eq, kb.v(c), id), const_of(1, dt), zero_of(dt)))}));
      return stmts;
    }, 64);
    emit(std::move(kb));
  }

  // ---------------------------------------------------------------- shape

  void transpose(const Node& n, int x, int out) {
    const Type xt = B(x).type;
    const Ints& perm = n.ints("perm");
    const Dims od = B(out).type.dims;
    Dims xs = strides_of(xt.dims);
    map_kernel("transpose", origin(n), out, od, [&](const std::vector<E>& idx) {
      E at = int_(0);
      for (size_t d = 0; d < idx.size(); ++d) at = add(at, mul(idx[d], int_(xs[norm_axis(perm[d], idx.size())])));
      return ld(x, at);
    });
  }

  void concat(const Node& n, const std::vector<int>& xs, int out) {
    const Dims od = B(out).type.dims;
    int64_t axis = norm_axis(n.i("axis"), od.size()), at = 0;
    Dims ost = strides_of(od);
    for (int x : xs) {
      const Dims xd = B(x).type.dims;
      KernelBuilder kb("concat", origin(n));
      // The piece's place in the output is a view, so pieces of one shape share a function.
      kb.k.views.push_back({out, at * ost[axis]});
      loop_nest(kb, xd, [&](const std::vector<E>& idx) {
        return std::vector<Stmt>{store(out, offset(idx, od), ld(x, offset(idx, xd)))};
      });
      emit(std::move(kb));
      at += xd[axis];
    }
  }

  void slice(const Node& n, int x, int out) {
    const Dims xd = B(x).type.dims;
    size_t rank = xd.size();
    Dims start(rank, 0), step(rank, 1);
    const Ints &axes = n.ints("axes"), &starts = n.ints("starts");
    for (size_t i = 0; i < axes.size(); ++i) {
      int64_t a = norm_axis(axes[i], rank);
      start[a] = starts[i] < 0 ? starts[i] + xd[a] : starts[i];
      if (!n.ints("steps").empty()) step[a] = n.ints("steps")[i];
    }
    if (x >= 0) {
      // Reading a buffer: the slice's start is a view, so slices of one shape share a function.
      Dims xst = strides_of(xd);
      int64_t first = 0;
      for (size_t d = 0; d < rank; ++d) first += start[d] * xst[d];
      KernelBuilder kb("slice", origin(n));
      kb.k.views.push_back({x, first});
      const Dims& od = B(out).type.dims;
      loop_nest(kb, od, [&](const std::vector<E>& idx) {
        std::vector<E> xidx;
        for (size_t d = 0; d < rank; ++d) xidx.push_back(mul(idx[d], int_(step[d])));
        return std::vector<Stmt>{store(out, offset(idx, od), ld(x, offset(xidx, xd)))};
      });
      emit(std::move(kb));
      return;
    }
    map_kernel("slice", origin(n), out, B(out).type.dims, [&](const std::vector<E>& idx) {
      std::vector<E> xidx;
      for (size_t d = 0; d < rank; ++d) xidx.push_back(add(int_(start[d]), mul(idx[d], int_(step[d]))));
      return ld(x, offset(xidx, xd));
    });
  }

  void pad(const Node& n, int x, int out) {
    const Dims xd = B(x).type.dims;
    const Ints& pads = n.ints("pads");
    DType dt = B(out).type.dtype;
    map_kernel("pad", origin(n), out, B(out).type.dims, [&](const std::vector<E>& idx) {
      std::vector<E> xidx;
      E ok = bin(Bin::eq, int_(0), int_(0));
      for (size_t d = 0; d < xd.size(); ++d) {
        xidx.push_back(f_sub(idx[d], int_(pads[2 * d])));
        ok = and_(ok, in_range(xidx.back(), xd[d]));
      }
      return select(ok, ld(x, select(ok, offset(xidx, xd), int_(0))), const_of(n.f("value"), dt));
    });
  }

  void split(const Node& n, int x) {
    const Dims xd = B(x).type.dims;
    int64_t axis = norm_axis(n.i("axis"), xd.size()), at = 0;
    Dims xst = strides_of(xd);
    for (const auto& r : n.results) {
      int out = in(r.get());
      const Dims& od = r->type.dims;
      int64_t shift = at;
      if (x >= 0) {
        // The piece's place in the input is a view, so pieces of one shape share a function.
        KernelBuilder kb("split", origin(n));
        kb.k.views.push_back({x, shift * xst[axis]});
        loop_nest(kb, od, [&](const std::vector<E>& idx) {
          return std::vector<Stmt>{store(out, offset(idx, od), ld(x, offset(idx, xd)))};
        });
        emit(std::move(kb));
      } else {
        map_kernel("split", origin(n), out, od, [&](const std::vector<E>& idx) {
          std::vector<E> xidx = idx;
          xidx[axis] = add(idx[axis], int_(shift));
          return ld(x, offset(xidx, xd));
        });
      }
      at += od[axis];
    }
  }

  // ---------------------------------------------------------------- losses

  // A per-element loss, then its sum or mean into a scalar (or the elements themselves).
  void reduce_elements(const Node& n, int per, int64_t count_or_neg, int count_buf, int out) {
    const std::string& red = n.s("reduction");
    DType dt = B(out).type.dtype;
    KernelBuilder kb("loss_reduce", origin(n));
    int i = kb.new_var("i"), acc = kb.new_var("acc", dt);
    E total = kb.v(acc);
    if (red == "mean")
      total = f_div(total, count_buf >= 0 ? ld(count_buf, int_(0)) : fconst(static_cast<double>(count_or_neg), dt));
    kb.k.extent = 1;
    kb.k.body = {assign(acc, zero_of(dt)), for_(i, 0, B(per).numel(), {assign(acc, f_add(kb.v(acc), ld(per, kb.v(i))))}),
                 store(out, int_(0), total)};
    emit(std::move(kb));
  }

  void regression_loss(const Node& n, int x, int t, int out) {
    const Type xt = B(x).type;
    DType dt = xt.dtype;
    bool none = n.s("reduction") == "none";
    int per = none ? out : new_buffer(n.result()->name + ".elements", xt, BufKind::Temp);
    map_kernel(std::string(n.info().name), origin(n), per, {numel(xt)}, [&](const std::vector<E>& i) {
      E a = ld(x, i[0]), b = ld(t, i[0]);
      E d = f_sub(a, b);
      switch (n.op) {
        case Op::mse: return f_mul(d, d);
        case Op::huber: {
          double delta = n.f("delta");
          E ad = un(Un::abs, d);
          return select(lt(ad, fconst(delta, dt)), f_mul(fconst(0.5, dt), f_mul(d, d)),
                        f_mul(fconst(delta, dt), f_sub(ad, fconst(0.5 * delta, dt))));
        }
        default:  // bce_with_logits: max(a, 0) - a t + log(1 + exp(-|a|))
          return f_add(f_sub(select(gt(a, zero_of(dt)), a, zero_of(dt)), f_mul(a, b)),
                       un(Un::log, f_add(fconst(1, dt), un(Un::exp, un(Un::neg, un(Un::abs, a))))));
      }
    });
    if (!none) reduce_elements(n, per, numel(xt), -1, out);
  }

  void classification_loss(const Node& n, int x, int labels, int out) {
    const Type xt = B(x).type;
    int64_t N = xt.dims[0], C = xt.dims[1];
    DType dt = xt.dtype;
    bool none = n.s("reduction") == "none";
    bool from_logits = n.op == Op::cross_entropy;
    double smooth = from_logits ? n.f("label_smoothing") : 0;
    int64_t ignore = n.i("ignore_index");
    int per = none ? out : new_buffer(n.result()->name + ".rows", {dt, {N}}, BufKind::Temp);
    int counted = new_buffer(n.result()->name + ".counted", {dt, {N}}, BufKind::Temp);
    KernelBuilder kb(std::string(n.info().name), origin(n));
    int c = kb.new_var("c"), mx = kb.new_var("mx", dt), s = kb.new_var("s", dt), all = kb.new_var("all", dt);
    loop_nest(kb, {N}, [&](const std::vector<E>& i) {
      std::vector<Stmt> stmts;
      E raw = cast(ld(labels, i[0]), DType::i64);
      E ignored = bin(Bin::eq, raw, int_(ignore));
      int code = add_check(fmt::format("{} %{}: label {{}} is out of range [0, {})", n.info().name, n.result()->name, C));
      stmts.push_back(check(bin(Bin::or_, ignored, in_range(raw, C)), raw, code));
      E y = bin(Bin::min, bin(Bin::max, raw, int_(0)), int_(C - 1));
      E v = ld(x, add(mul(i[0], int_(C)), kb.v(c)));
      E lse = from_logits ? f_add(kb.v(mx), un(Un::log, kb.v(s))) : zero_of(dt);  // log-sum-exp
      E logp_y = f_sub(ld(x, add(mul(i[0], int_(C)), y)), lse);
      if (from_logits) {
        stmts.push_back(assign(mx, fconst(-kInf, dt)));
        stmts.push_back(for_(c, 0, C, {assign(mx, nan_max(kb.v(mx), v))}));
        stmts.push_back(assign(s, zero_of(dt)));
        stmts.push_back(for_(c, 0, C, {assign(s, f_add(kb.v(s), un(Un::exp, f_sub(v, kb.v(mx)))))}));
      }
      E loss = un(Un::neg, logp_y);
      if (smooth != 0) {
        // (1 - e) (-log p_y) + e/C sum_c (-log p_c), with sum_c log p_c = sum_c x_c - C lse.
        stmts.push_back(assign(all, zero_of(dt)));
        stmts.push_back(for_(c, 0, C, {assign(all, f_add(kb.v(all), v))}));
        E sum_neg_logp = f_sub(f_mul(fconst(static_cast<double>(C), dt), lse), kb.v(all));
        loss = f_add(f_mul(fconst(1 - smooth, dt), loss), f_mul(fconst(smooth / static_cast<double>(C), dt), sum_neg_logp));
      }
      stmts.push_back(store(per, i[0], select(ignored, zero_of(dt), loss)));
      stmts.push_back(store(counted, i[0], select(ignored, zero_of(dt), fconst(1, dt))));
      return stmts;
    }, 16);
    emit(std::move(kb));
    if (none) return;
    int count = new_buffer(n.result()->name + ".count", {dt, {}}, BufKind::Temp);
    KernelBuilder kc("count", origin(n));
    int i = kc.new_var("i"), acc = kc.new_var("acc", dt);
    kc.k.body = {assign(acc, zero_of(dt)), for_(i, 0, N, {assign(acc, f_add(kc.v(acc), ld(counted, kc.v(i))))}),
                 store(count, int_(0), kc.v(acc))};
    emit(std::move(kc));
    reduce_elements(n, per, N, count, out);
  }

  void penalty(const Node& n, int x, int out) {
    DType dt = B(out).type.dtype;
    KernelBuilder kb(std::string(n.info().name), origin(n));
    int i = kb.new_var("i"), acc = kb.new_var("acc", dt);
    E v = ld(x, kb.v(i));
    E term = n.op == Op::l1_penalty ? un(Un::abs, v) : f_mul(v, v);
    kb.k.body = {assign(acc, zero_of(dt)), for_(i, 0, B(x).numel(), {assign(acc, f_add(kb.v(acc), term))}),
                 store(out, int_(0), kb.v(acc))};
    emit(std::move(kb));
  }

  const std::vector<std::pair<std::string, const Graph*>>& functions_;
  LowerOptions options_;
  LowerStats stats_;
  const Graph* g_ = nullptr;
  // Fusion of the function being lowered.
  std::unordered_set<const Value*> fused_away_;  ///< values with no buffer: computed where read
  std::unordered_set<const Value*> carriers_;    ///< fused away into a matmul/conv epilogue
  std::unordered_map<const Node*, std::vector<const Node*>> epilogue_;
  std::unordered_set<const Node*> absorbed_;  ///< epilogue nodes, lowered by their producer
  std::vector<Buffer> pseudo_;                ///< descriptions of fused values (ids -1, -2, ...)
  std::vector<const Node*> pseudo_node_;
  std::vector<std::string> group_;  ///< the values the kernel being built computes
  std::unordered_map<std::string, int> param_ids_;
  std::vector<const Node*> param_nodes_;  ///< the first definition of each parameter, in order
  Program prog_;
  std::unordered_map<const Value*, int> buf_;
  int fn_ = -1;
  int params_ = 0, inputs_ = 0, outputs_ = 0;
  int64_t workspace_ = 0;
};

}  // namespace

kir::Program lower(const Graph& g) { return lower({{"forward", &g}}); }

kir::Program lower(const std::vector<std::pair<std::string, const Graph*>>& functions, const LowerOptions& options,
                   LowerStats* stats) {
  Lowerer lowerer(functions, options);
  kir::Program p = lowerer.run();
  if (stats) *stats = lowerer.stats();
  return p;
}

}  // namespace stag
