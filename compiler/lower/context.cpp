// The lowering context: buffer placement, kernel emission, and reads through fused values
// and epilogues, shared by every op family.

#include "compiler/lower/context.h"
#include "compiler/lower/numerics.h"

#include <algorithm>
#include <stdexcept>

#include "compiler/lower/families.h"

namespace stag::lowering {

using namespace kir;

Buffer make_buffer(const std::string& name, const Type& type, BufKind kind) {
  Buffer b;
  b.name = name;
  b.type = type;
  b.kind = kind;
  return b;
}

void LowerContext::param_buffer(const Node& n) {
  if (auto it = param_ids.find(n.result()->name); it != param_ids.end()) {
    if (B(it->second).type != n.result()->type)
      throw std::logic_error(fmt::format("parameter %{} has different types in the functions of one program", n.result()->name));
    buffer_of[n.result()] = it->second;
    return;
  }
  param_nodes.push_back(&n);
  Buffer b = make_buffer(n.result()->name, n.result()->type, BufKind::Param);
  b.index = param_count++;
  b.trainable = n.b("trainable");
  buffer_of[n.result()] = param_ids[n.result()->name] = prog.add_buffer(std::move(b));
}

int LowerContext::new_buffer(const std::string& name, const Type& t, BufKind kind) {
  Buffer b = make_buffer(name, t, kind);
  b.function = fn;
  if (kind == BufKind::Input) b.index = input_count++;
  if (kind == BufKind::Output) b.index = output_count++;
  if (kind == BufKind::Temp) {
    b.offset = workspace;
    workspace += (b.bytes() + 63) / 64 * 64;  // 64-byte aligned, for vector loads
  }
  return prog.add_buffer(std::move(b));
}

int LowerContext::view_buffer(const std::string& name, const Type& t, int root, int64_t first, int64_t step) {
  Buffer b = make_buffer(name, t, BufKind::Temp);
  b.function = fn;
  b.alias = root, b.alias_first = first, b.alias_step = step;
  b.alias_loop = step != 0 ? loop : -1;
  return prog.add_buffer(std::move(b));
}

E LowerContext::ld(int id, E index) { return id < 0 ? read(id, nullptr, std::move(index)) : load(id, B(id).type.dtype, std::move(index)); }

void LowerContext::begin_function(const std::string& name) {
  prog.functions.push_back({name, {}, {}});
  fn = static_cast<int>(prog.functions.size()) - 1;
  input_count = output_count = 0;
  workspace = 0;
  phase_copies.clear();
  plane_stats.clear();
}

void LowerContext::end_function() { prog.workspace_bytes = std::max(prog.workspace_bytes, workspace); }

void LowerContext::emit(KernelBuilder&& kb) {
  kb.k.nodes = group;
  kb.k.strategy = strategy;
  if (kb.k.gemm && node && node->in_bf16()) kb.k.gemm->precision = Gemm::Precision::bf16;
  kb.k.name = fmt::format("k{}_{}", prog.functions[fn].kernels.size(), kb.k.name);
  prog.functions[fn].kernels.push_back(std::move(kb.k));
  if (options.check_numerics && prog.functions[fn].name != "init") check_stored(*this);
}

int LowerContext::add_check(std::string message) {
  prog.checks.push_back(std::move(message));
  return static_cast<int>(prog.checks.size()) - 1;
}

E LowerContext::factor(int id, E index) {
  E v = ld(id, std::move(index));
  return node && node->in_bf16() ? un(Un::round_bf16, v) : v;
}

std::string LowerContext::origin(const Node& n) const { return fmt::format("%{} = {}", n.result()->name, n.info().name); }

// A kernel writing every element of `out` (shape `dims`) with `value(idx)`.
void LowerContext::map_kernel(const std::string& name, const std::string& from, int out, const Dims& dims,
                const std::function<E(const std::vector<E>&)>& value) {
  KernelBuilder kb(name, from);
  loop_nest(kb, dims, [&](const std::vector<E>& idx) {
    return std::vector<Stmt>{store(out, offset(idx, dims), value(idx))};
  });
  emit(std::move(kb));
}

void LowerContext::copy_kernel(const std::string& from, int dst, int src) {
  Dims flat{B(dst).numel()};
  map_kernel("copy", from, dst, flat, [&](const std::vector<E>& idx) { return ld(src, idx[0]); });
}

E LowerContext::read(int id, const std::vector<E>* multi, E flat) {
  if (id >= 0) return load(id, B(id).type.dtype, std::move(flat));
  const Node& n = *pseudo_node[-id - 1];
  if (std::find(group.begin(), group.end(), n.result()->name) == group.end()) group.push_back(n.result()->name);
  return node_value(n, multi, std::move(flat));
}

// The element of `id` (dims `d`) that numpy broadcasting pairs with index `idx` of dims `D`.
E LowerContext::read_broadcast(int id, const std::vector<E>& idx, const Dims& D, const Dims& d) {
  std::vector<E> xm;
  size_t lead = D.size() - d.size();
  for (size_t j = 0; j < d.size(); ++j) xm.push_back(d[j] == 1 ? int_(0) : idx[lead + j]);
  return read(id, &xm, offset(xm, d));
}

// Element `flat` of an elementwise node's result, from its operands.
E LowerContext::node_value(const Node& n, const std::vector<E>* multi, E flat) {
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
int LowerContext::materialized(int id) const {
  while (id < 0) {
    const Node& n = *pseudo_node[-id - 1];
    if (n.op != Op::reshape && n.op != Op::flatten) return -1;
    id = in(n.operands[0]);
  }
  return id;
}

// Where a node's kernel stores: its result, or the end of its epilogue chain.
int LowerContext::store_target(const Node& n) const {
  auto it = plan.epilogue.find(&n);
  return it == plan.epilogue.end() ? in(n.result()) : in(it->second.back()->result());
}

// The epilogue of `n` applied to its accumulated value at output index `idx`.
// `d` (right-aligned to `D`'s rank) with axes from `from` on merged as `D`'s are; empty when
// some of them broadcast and others not.
static Dims merge_axes(const Dims& D, Dims d, size_t from) {
  d.insert(d.begin(), D.size() - d.size(), 1);
  bool full = true, ones = true;
  for (size_t j = from; j < D.size(); ++j) full = full && d[j] == D[j], ones = ones && d[j] == 1;
  if (!full && !ones) return {};
  int64_t inner = 1;
  for (size_t j = from; j < D.size(); ++j) inner *= d[j];
  d.resize(from);
  d.push_back(inner);
  return d;
}

E LowerContext::merged_epilogue(const Node& n, E acc, const std::vector<E>& idx, size_t from) {
  auto it = plan.epilogue.find(&n);
  if (it == plan.epilogue.end()) return acc;
  const Dims D = merge_axes(n.result()->type.dims, n.result()->type.dims, from);
  const Value* carry = n.result();
  for (const Node* u : it->second) {
    std::vector<E> args;
    for (const Value* x : u->operands) {
      Dims d = x == carry ? D : merge_axes(n.result()->type.dims, x->type.dims, from);
      if (d.empty()) return nullptr;
      args.push_back(x == carry ? acc : read_broadcast(in(x), idx, D, d));
    }
    acc = scalar(*u, args, u->result()->type.dtype);
    carry = u->result();
  }
  return acc;
}

std::vector<kir::Stmt> LowerContext::epilogue_stores(const Node& n, int out, E at, E acc, const std::vector<E>& idx, bool in_place) {
  std::vector<kir::Stmt> stores;
  if (!in_place || plan.epilogue.count(&n)) stores.push_back(kir::store(out, at, epilogue(n, acc, idx)));
  for (kir::Stmt& s : follower_stores(n, out, at)) stores.push_back(std::move(s));
  return stores;
}

std::vector<kir::Stmt> LowerContext::follower_stores(const Node& n, int out, E at) {
  std::vector<kir::Stmt> stores;
  if (auto it = plan.followers.find(&n); it != plan.followers.end())
    for (const Node* f : it->second) stores.push_back(kir::store(in(f->result()), at, scalar(*f, {ld(out, at)}, f->result()->type.dtype)));
  return stores;
}

E LowerContext::epilogue(const Node& n, E acc, const std::vector<E>& idx) {
  auto it = plan.epilogue.find(&n);
  if (it == plan.epilogue.end()) return acc;
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

}  // namespace stag::lowering
