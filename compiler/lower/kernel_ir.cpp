#include "compiler/lower/kernel_ir.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <unordered_set>
#include <unordered_map>

#include "ir/attr.h"
#include "runtime/memory.h"

namespace stag::kir {

std::string_view name(Un op) {
  static constexpr std::string_view n[] = {"neg", "abs", "exp", "log", "sqrt", "tanh", "erf", "floor", "cos", "not", "round_bf16"};
  return n[static_cast<int>(op)];
}

std::string_view name(Bin op) {
  static constexpr std::string_view n[] = {"+",   "-",   "*",  "/",  "%",  "min", "max", "pow", "<",   "<=",
                                           ">",   ">=",  "==", "!=", "&&", "||",  "^",   "<<",  ">>",  "bf16_pair"};
  return n[static_cast<int>(op)];
}

namespace {
E make(Expr e) { return std::make_shared<const Expr>(std::move(e)); }
bool is_int_const(const E& e, int64_t v) { return e->kind == EK::Int && e->i == v; }
}  // namespace

E int_(int64_t v) { return make({.kind = EK::Int, .type = DType::i64, .i = v, .args = {}}); }
E float_(double v, DType t) { return make({.kind = EK::Float, .type = t, .f = v, .args = {}}); }
E var(int index, DType t) { return make({.kind = EK::Var, .type = t, .var = index, .args = {}}); }
E load(int buffer, DType t, E index) { return make({.kind = EK::Load, .type = t, .buffer = buffer, .args = {std::move(index)}}); }

E un(Un op, E x) {
  DType t = op == Un::not_ ? DType::b8 : x->type;
  return make({.kind = EK::Unary, .type = t, .op = static_cast<uint8_t>(op), .args = {std::move(x)}});
}

E bin(Bin op, E a, E b) {
  assert(a->type == b->type && "binary operands must share a type");
  // Fold integer index arithmetic: constants, +0, *1, *0.
  if (a->kind == EK::Int && b->kind == EK::Int) {
    int64_t x = a->i, y = b->i;
    switch (op) {
      case Bin::add: return int_(x + y);
      case Bin::sub: return int_(x - y);
      case Bin::mul: return int_(x * y);
      case Bin::div: if (y != 0) return int_(x / y); break;
      case Bin::rem: if (y != 0) return int_(x % y); break;
      case Bin::and_: return int_(x & y);
      case Bin::xor_: return int_(x ^ y);
      case Bin::lshr: if (y >= 0 && y < 64) return int_(static_cast<int64_t>(static_cast<uint64_t>(x) >> y)); break;
      default: break;
    }
  }
  if (a->type == DType::i64) {
    if (op == Bin::add && is_int_const(a, 0)) return b;
    if ((op == Bin::add || op == Bin::sub) && is_int_const(b, 0)) return a;
    if (op == Bin::mul && is_int_const(a, 1)) return b;
    if ((op == Bin::mul || op == Bin::div) && is_int_const(b, 1)) return a;
    if (op == Bin::mul && (is_int_const(a, 0) || is_int_const(b, 0))) return int_(0);
    if (op == Bin::rem && is_int_const(b, 1)) return int_(0);
  }
  bool compare = op >= Bin::lt && op <= Bin::ne;
  DType t = compare ? DType::b8 : op == Bin::bf16_pair ? DType::i32 : a->type;
  return make({.kind = EK::Binary, .type = t, .op = static_cast<uint8_t>(op), .args = {std::move(a), std::move(b)}});
}

E select(E c, E a, E b) {
  DType t = a->type;
  return make({.kind = EK::Select, .type = t, .args = {std::move(c), std::move(a), std::move(b)}});
}

E cast(E x, DType to) {
  if (x->type == to) return x;
  if (x->kind == EK::Int && to == DType::i64) return x;
  return make({.kind = EK::Cast, .type = to, .args = {std::move(x)}});
}

E add(E a, E b) { return bin(Bin::add, std::move(a), std::move(b)); }
E sub(E a, E b) { return bin(Bin::sub, std::move(a), std::move(b)); }
E mul(E a, E b) { return bin(Bin::mul, std::move(a), std::move(b)); }
E div(E a, E b) { return bin(Bin::div, std::move(a), std::move(b)); }
E lt(E a, E b) { return bin(Bin::lt, std::move(a), std::move(b)); }
E gt(E a, E b) { return bin(Bin::gt, std::move(a), std::move(b)); }
E ge(E a, E b) { return bin(Bin::ge, std::move(a), std::move(b)); }
E and_(E a, E b) { return bin(Bin::and_, std::move(a), std::move(b)); }

Stmt for_(int v, int64_t begin, int64_t end, std::vector<Stmt> body) {
  return {.kind = SK::For, .var = v, .begin = begin, .end = end, .body = std::move(body), .index = {}, .value = {}};
}
Stmt vectorized_for(int v, int64_t begin, int64_t end, std::vector<Stmt> body) {
  Stmt s = for_(v, begin, end, std::move(body));
  s.vectorize = true;
  return s;
}
Stmt scalar_for(int v, int64_t begin, int64_t end, std::vector<Stmt> body) {
  Stmt s = for_(v, begin, end, std::move(body));
  s.scalar = true;
  return s;
}
Stmt store(int buffer, E index, E value) {
  return {.kind = SK::Store, .body = {}, .buffer = buffer, .index = std::move(index), .value = std::move(value)};
}
Stmt assign(int v, E value) { return {.kind = SK::Assign, .var = v, .body = {}, .index = {}, .value = std::move(value)}; }
Stmt check(E condition, E value, int code) {
  return {.kind = SK::Check, .body = {}, .index = std::move(condition), .value = std::move(value), .code = code};
}

int Program::add_buffer(Buffer b) {
  buffers.push_back(std::move(b));
  return static_cast<int>(buffers.size()) - 1;
}

std::vector<const Buffer*> Program::of_kind(BufKind k) const {
  std::vector<const Buffer*> out;
  for (const auto& b : buffers)
    if (b.kind == k) out.push_back(&b);
  return out;
}

// ---------------------------------------------------------------- text form

namespace {

std::string_view kind_name(BufKind k) {
  static constexpr std::string_view n[] = {"param", "input", "output", "temp", "const"};
  return n[static_cast<int>(k)];
}

struct Printer {
  const Program& p;
  const Kernel& k;
  // Subexpressions used more than once in a statement print once, as `tN = ...` lines.
  mutable std::unordered_map<const Expr*, std::string> names;

  void count(const E& e, std::unordered_map<const Expr*, int>& uses) const {
    if (++uses[e.get()] > 1) return;
    for (const auto& a : e->args) count(a, uses);
  }

  // Emits the `tN = ...` lines for shared nodes, children first.
  void bind(const E& e, const std::unordered_map<const Expr*, int>& uses, const std::string& pad, std::string& out) const {
    if (names.count(e.get())) return;
    for (const auto& a : e->args) bind(a, uses, pad, out);
    bool leaf = e->kind == EK::Int || e->kind == EK::Float || e->kind == EK::Var;
    if (leaf || uses.at(e.get()) < 2) return;
    std::string text = expr(e);
    std::string name = fmt::format("t{}", names.size());
    out += fmt::format("{}{} = {}\n", pad, name, text);
    names[e.get()] = name;
  }

  std::string expr(const E& e) const {
    if (auto it = names.find(e.get()); it != names.end()) return it->second;
    switch (e->kind) {
      case EK::Int: return std::to_string(e->i);
      case EK::Float: return format_float(e->f);
      case EK::Var: return k.vars[e->var].name;
      case EK::Load: return fmt::format("%{}[{}]", p.buffers[e->buffer].name, expr(e->args[0]));
      case EK::Unary: return fmt::format("{}({})", name(static_cast<Un>(e->op)), expr(e->args[0]));
      case EK::Binary: {
        auto op = static_cast<Bin>(e->op);
        if (op == Bin::min || op == Bin::max || op == Bin::pow || op == Bin::bf16_pair)
          return fmt::format("{}({}, {})", name(op), expr(e->args[0]), expr(e->args[1]));
        std::string_view sym = name(op);
        if (e->args[0]->type != DType::b8 && (op == Bin::and_ || op == Bin::or_)) sym = sym.substr(0, 1);  // bitwise
        return fmt::format("({} {} {})", expr(e->args[0]), sym, expr(e->args[1]));
      }
      case EK::Select: return fmt::format("select({}, {}, {})", expr(e->args[0]), expr(e->args[1]), expr(e->args[2]));
      case EK::Cast: return fmt::format("{}({})", dtype_name(e->type), expr(e->args[0]));
    }
    return "?";
  }

  void stmt(const Stmt& s, int depth, std::string& out) const {
    std::string pad(static_cast<size_t>(depth) * 2, ' ');
    std::unordered_map<const Expr*, int> uses;
    if (s.index) count(s.index, uses);
    if (s.value) count(s.value, uses);
    names.clear();
    if (s.index) bind(s.index, uses, pad, out);
    if (s.value) bind(s.value, uses, pad, out);
    switch (s.kind) {
      case SK::For:
        out += fmt::format("{}for {} in {}..{}{} {{\n", pad, k.vars[s.var].name, s.begin, s.end, s.vectorize ? " vectorized" : s.scalar ? " scalar" : "");
        for (const auto& b : s.body) stmt(b, depth + 1, out);
        out += pad + "}\n";
        break;
      case SK::Store:
        out += fmt::format("{}%{}[{}] = {}\n", pad, p.buffers[s.buffer].name, expr(s.index), expr(s.value));
        break;
      case SK::Assign:
        out += fmt::format("{}{}: {} = {}\n", pad, k.vars[s.var].name, dtype_name(k.vars[s.var].type), expr(s.value));
        break;
      case SK::Check:
        out += fmt::format("{}check {} else fail {}({})\n", pad, expr(s.index), s.code, expr(s.value));
        break;
    }
  }
};

}  // namespace

namespace {
// B's line offsets, the first few and the last when there are many.
std::string lines_text(const std::vector<int64_t>& lines) {
  if (lines.empty()) return "";
  if (lines.size() <= 8) return fmt::format(" lines at [{}]", fmt::join(lines, ", "));
  return fmt::format(" lines at [{}, ..., {}] ({} lines)", fmt::join(lines.begin(), lines.begin() + 6, ", "), lines.back(), lines.size());
}
}  // namespace

namespace {

// A split point's line: `exchange start bucket 0 (%grad.fc3.bias, %loss)  # 1 KB`.
std::string print_exchange(const Program& p, const Kernel& k) {
  const Exchange& x = *k.exchange;
  std::vector<std::string> names;
  int64_t bytes = 0;
  for (int b : x.buffers) {
    names.push_back("%" + p.buffers[b].name);
    bytes += p.buffers[b].bytes();
  }
  return fmt::format("    exchange {} bucket {} ({})  # {} bytes, {}\n", x.op == Exchange::Op::start ? "start" : "wait", x.bucket,
                     fmt::join(names, ", "), bytes, k.origin);
}

}  // namespace

std::string print(const Program& p, const Kernel& k) {
  if (k.exchange) return print_exchange(p, k);
  Printer pr{p, k, {}};
  std::string out = fmt::format("    kernel {} {}{}..{}{} {{  # {}\n", k.name, k.parallel ? "parallel " : "",
                                k.vars.empty() ? "p" : k.vars[0].name, k.extent,
                                k.parallel ? fmt::format(" grain {}", k.grain) : "", k.origin);
  if (!k.strategy.empty()) out += fmt::format("      # strategy: {}\n", k.strategy);
  for (const auto& [buffer, first] : k.views) out += fmt::format("      view %{} from element {}\n", p.buffers[buffer].name, first);
  if (k.gemm) {
    const Gemm& g = *k.gemm;
    out += fmt::format("      gemm{}{} %{}[{}x{}] = %{}{} x %{}{}{} (K {}, {} batch{}), {}\n",
                       g.precision == Gemm::Precision::bf16 ? (g.pairs ? " bf16 pairs" : " bf16") : "", g.dot ? (g.sum_batches ? " dot summed over the batches" : " dot") : "", p.buffers[g.c].name, g.M, g.N,
                       p.buffers[g.a].name, g.ta ? "^T" : "", p.buffers[g.b].name, g.tb ? "^T" : "",
                       g.b_read == Gemm::BRead::lines ? lines_text(g.b_lines) : "", g.K, g.batches(),
                       g.batches() == 1 ? "" : "es", g.split == Gemm::Split::columns      ? fmt::format("columns p*{}", g.block)
                       : g.split == Gemm::Split::row_blocks ? fmt::format("rows p*{}, then the body for p", g.block)
                                                            : "rows p");
  }
  if (k.nodes.size() > 1) {
    std::vector<std::string> names;
    for (const auto& n : k.nodes) names.push_back("%" + n);
    out += fmt::format("      # fused: {}\n", fmt::join(names, ", "));
  }
  for (const auto& s : k.body) pr.stmt(s, 3, out);
  return out + "    }\n";
}

namespace {

void collect_loads(const E& e, std::unordered_set<const Expr*>& seen, std::vector<int>& reads) {
  if (!e || !seen.insert(e.get()).second) return;
  if (e->kind == EK::Load) reads.push_back(e->buffer);
  for (const auto& a : e->args) collect_loads(a, seen, reads);
}

void collect(const std::vector<Stmt>& body, std::unordered_set<const Expr*>& seen, Access& a) {
  for (const auto& s : body) {
    collect_loads(s.index, seen, a.reads);
    collect_loads(s.value, seen, a.reads);
    if (s.kind == SK::Store) a.writes.push_back(s.buffer);
    collect(s.body, seen, a);
  }
}

void dedupe(std::vector<int>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

}  // namespace

Access accesses(const Kernel& k) {
  Access a;
  if (k.gemm) {
    a.reads = {k.gemm->a, k.gemm->b};
    a.writes = {k.gemm->c};
    if (k.gemm->a == k.gemm->c || k.gemm->b == k.gemm->c) a.reads.push_back(k.gemm->c);
  }
  if (k.exchange) {
    a.reads = k.exchange->buffers;
    if (k.exchange->op == Exchange::Op::wait) a.writes = k.exchange->buffers;
  }
  std::unordered_set<const Expr*> seen;
  collect(k.body, seen, a);
  dedupe(a.reads);
  dedupe(a.writes);
  return a;
}

int storage_of(const Program& p, int id) {
  while (p.buffers[id].alias >= 0) id = p.buffers[id].alias;
  return id;
}

namespace {

// The outermost loop around kernel k, as the kernels [first, last] it spans; k alone outside
// loops (an enclosing loop comes before the loops inside it).
std::pair<int, int> loop_span(const Function& f, int k) {
  for (const auto& l : f.loops)
    if (l.first <= k && k < l.last) return {l.first, l.last - 1};
  return {k, k};
}

}  // namespace

std::vector<Interval> live_intervals(const Program& p, int function) {
  std::vector<Interval> out;
  std::unordered_map<int, size_t> at;
  const Function& f = p.functions[function];
  for (size_t k = 0; k < f.kernels.size(); ++k) {
    Access a = accesses(f.kernels[k]);
    auto [first, last] = loop_span(f, static_cast<int>(k));
    for (const auto* list : {&a.reads, &a.writes})
      for (int b : *list) {
        b = storage_of(p, b);
        if (p.buffers[b].kind != BufKind::Temp) continue;
        auto [it, fresh] = at.emplace(b, out.size());
        if (fresh) out.push_back({b, first, last});
        Interval& iv = out[it->second];
        iv.first = std::min(iv.first, first);
        iv.last = std::max(iv.last, last);
      }
  }
  return out;
}

std::string verify_memory(const Program& p) {
  for (size_t f = 0; f < p.functions.size(); ++f) {
    auto live = live_intervals(p, static_cast<int>(f));
    for (size_t i = 0; i < live.size(); ++i) {
      const Buffer& a = p.buffers[live[i].buffer];
      if (a.offset < 0 || a.offset + a.bytes() > p.workspace_bytes)
        return fmt::format("temporary %{} at {} ({} bytes) lies outside the workspace of {} bytes", a.name, a.offset, a.bytes(),
                           p.workspace_bytes);
      for (size_t j = i + 1; j < live.size(); ++j) {
        const Buffer& b = p.buffers[live[j].buffer];
        bool overlap_bytes = a.offset < b.offset + b.bytes() && b.offset < a.offset + a.bytes();
        bool overlap_time = live[i].first <= live[j].last && live[j].first <= live[i].last;
        if (!overlap_bytes || !overlap_time) continue;
        return fmt::format("temporaries %{} and %{} of function {} share workspace bytes while both are live (kernels {}..{} and {}..{})",
                           a.name, b.name, p.functions[f].name, live[i].first, live[i].last, live[j].first, live[j].last);
      }
    }
  }
  return {};
}

namespace {

/// What the program holds while it runs, from its buffers: the figures the runtime checks
/// against the machine's memory (runtime/memory.h).
rt::MemoryNeed memory_need(const Program& p) {
  rt::MemoryNeed need;
  need.workspace = static_cast<double>(p.workspace_bytes);
  std::vector<double> io(p.functions.size());
  for (const auto& b : p.buffers) {
    auto bytes = static_cast<double>(b.bytes());
    if (b.kind == BufKind::Param) (rt::is_optimizer_state(b.name) ? need.optimizer_state : need.parameters) += bytes;
    else if ((b.kind == BufKind::Input || b.kind == BufKind::Output) && b.function >= 0) io.at(b.function) += bytes;
  }
  for (double f : io) need.inputs_outputs = std::max(need.inputs_outputs, f);
  return need;
}

// A loop's step as printed: t, and t1, t2, ... for the loops inside loops.
std::string step_name(const Function& f, int loop) {
  if (loop >= static_cast<int>(f.loops.size())) return "t";  // a loop left out for having no kernels
  int depth = 0;
  for (int i = 0; i < loop; ++i) depth += f.loops[i].first <= f.loops[loop].first && f.loops[loop].last <= f.loops[i].last;
  return depth == 0 ? "t" : fmt::format("t{}", depth);
}

}  // namespace

std::string print(const Program& p) {
  std::string out = fmt::format("program {} {{\n", p.name);
  for (const auto& b : p.buffers) {
    out += fmt::format("  {} %{}: {}", kind_name(b.kind), b.name, to_string(b.type));
    if (b.alias >= 0)
      out += fmt::format(" view of %{} from element {} + {} {}", p.buffers[b.alias].name, b.alias_first, b.alias_step,
                         b.alias_loop >= 0 && b.function >= 0 ? step_name(p.functions[b.function], b.alias_loop) : "t");
    else if (b.kind == BufKind::Temp) out += fmt::format(" at {}", b.offset);
    else if (b.kind != BufKind::Const) out += fmt::format(" #{}", b.index);
    out += "\n";
  }
  out += fmt::format("  workspace {} bytes\n", p.workspace_bytes);
  auto need = memory_need(p);
  out += fmt::format("  memory peak {} (workspace), parameters {}, optimizer state {}, inputs and outputs {}: {} in all\n",
                     rt::format_bytes(need.workspace), rt::format_bytes(need.parameters),
                     rt::format_bytes(need.optimizer_state), rt::format_bytes(need.inputs_outputs),
                     rt::format_bytes(need.total()));
  for (const auto& f : p.functions) {
    out += fmt::format("  func {} {{\n", f.name);
    for (size_t i = 0; i < f.kernels.size(); ++i) {
      for (size_t l = 0; l < f.loops.size(); ++l)
        if (f.loops[l].first == static_cast<int>(i))
          out += fmt::format("  loop {} in {}{} steps {{\n", step_name(f, static_cast<int>(l)), f.loops[l].reverse ? "reversed " : "",
                             f.loops[l].trips);
      out += print(p, f.kernels[i]);
      for (const auto& l : f.loops)
        if (l.last == static_cast<int>(i) + 1) out += "  }\n";
    }
    out += "  }\n";
  }
  return out + "}\n";
}

}  // namespace stag::kir
