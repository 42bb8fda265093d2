// The exporter's driver: which part of the graph is written (the outputs but loss and metrics,
// and what they read), the whole list of ops ONNX cannot express, then inputs, initializers,
// one table row per node, outputs, and ONNX's checker over the result.
#include "frontend/onnx/export.h"

#include <fmt/format.h>

#include <onnx/checker.h>

#include "frontend/onnx/export_ops.h"
#include "frontend/onnx/tensor.h"

namespace stag::onnx_export {

namespace {

// Loss and metrics read the labels, which an inference model does not take.
bool exported(const Output& o) { return o.name != "loss" && !o.name.starts_with("metric."); }

bool is_source(const Node& n) { return n.op == Op::input || n.op == Op::parameter; }

/// The exported part: the outputs, the values they read, the nodes that compute them.
struct Part {
  std::vector<const Output*> outputs;
  std::set<const Value*> used;
  std::vector<const Node*> nodes;  // in execution order
};

Part part_of(const Graph& g) {
  Part p;
  for (const auto& o : g.outputs)
    if (exported(o)) p.outputs.push_back(&o), p.used.insert(o.value);
  if (p.outputs.empty()) throw ExportError(fmt::format("graph {} has no output to export (loss and metrics are left out)", g.name));
  for (auto it = g.nodes.rbegin(); it != g.nodes.rend(); ++it) {
    const Node& n = **it;
    bool live = std::any_of(n.results.begin(), n.results.end(), [&](const auto& r) { return p.used.count(r.get()) > 0; });
    if (!live) continue;
    p.nodes.insert(p.nodes.begin(), &n);
    p.used.insert(n.operands.begin(), n.operands.end());
  }
  return p;
}

std::string label(const Node& n) { return "%" + n.result()->name; }

void check_part(const Graph& g, const Part& p) {
  std::map<std::string, std::vector<std::string>> missing;
  for (const Node* n : p.nodes) {
    if (is_source(*n)) continue;
    const OpMapping* m = find_mapping(n->op);
    const char* why = m && m->refuse ? m->refuse(*n, p.used) : nullptr;
    if (!m) missing[std::string(op_info(n->op).name)].push_back(label(*n));
    else if (why) missing[fmt::format("{} {}", op_info(n->op).name, why)].push_back(label(*n));
  }
  if (missing.empty()) return;
  std::vector<std::string> parts;
  for (const auto& [op, where] : missing)
    parts.push_back(fmt::format("{} (node{} {})", op, where.size() > 1 ? "s" : "", fmt::join(where, ", ")));
  throw ExportError(fmt::format("graph {} cannot be exported to ONNX: no ONNX mapping for {}", g.name, fmt::join(parts, "; ")));
}

void set_type(onnx::ValueInfoProto& v, const std::string& name, const Type& t) {
  v.set_name(name);
  auto* tt = v.mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx_import::to_elem_type(t.dtype));
  auto* shape = tt->mutable_shape();
  for (int64_t d : t.dims) shape->add_dim()->set_dim_value(d);
}

bool empty_list(const Attr& a) {
  return (kind_of(a) == AttrKind::Ints && std::get<Ints>(a).empty()) || (kind_of(a) == AttrKind::Floats && std::get<Floats>(a).empty());
}

struct Exporter {
  Exporter(const Graph& g, const Weights& weights) : g(g), weights(weights), part(part_of(g)) {}

  const Graph& g;
  const Weights& weights;
  Part part;
  onnx::ModelProto model;
  onnx::GraphProto& graph = *model.mutable_graph();
  std::map<const Value*, std::string> names;
  std::set<std::string> functions;

  const std::string& name(const Value* v) { return names.try_emplace(v, v->name).first->second; }
  void name_outputs();
  void add_source(const Node& n);
  void add_node(const Node& n);
  void add_outputs();
  void finish();
  std::string summary() const;
};

// Output names are ONNX value names: another value of that name is renamed (`c/value`; no stag
// name has a '/'), unless it is an input or a parameter, whose names are the model's interface.
// An output computed by a node gives that node's result its name; one that is an input, a
// parameter or an output already named is an Identity.
void Exporter::name_outputs() {
  std::set<const Value*> renamed;
  for (const Output* o : part.outputs) {
    const Value* v = o->value;
    const Value* other = g.find(o->name);
    if (other && other != v && is_source(*other->def))
      throw ExportError(fmt::format("output '{}' has the name of {} '{}'", o->name, op_info(other->def->op).name, o->name));
    if (other && other != v) names[other] = o->name + "/value";
    if (o->name == v->name || renamed.count(v) || is_source(*v->def)) continue;
    names[v] = o->name;
    renamed.insert(v);
  }
}

void Exporter::add_source(const Node& n) {
  const Value* v = n.result();
  if (n.op == Op::input) {
    set_type(*graph.add_input(), name(v), v->type);
    return;
  }
  auto w = weights.find(v->name);
  auto bytes = static_cast<size_t>(*checked_numel(v->type.dims) * dtype_size(v->type.dtype));
  if (w == weights.end()) throw ExportError(fmt::format("no value for parameter '{}'", v->name));
  if (w->second.size() != bytes)
    throw ExportError(fmt::format("parameter '{}' is {} ({} bytes), its value holds {} bytes", v->name, to_string(v->type), bytes, w->second.size()));
  auto& t = *graph.add_initializer();
  t.set_name(name(v));
  t.set_data_type(onnx_import::to_elem_type(v->type.dtype));
  for (int64_t d : v->type.dims) t.add_dims(d);
  t.set_raw_data(w->second);
}

void Exporter::add_node(const Node& n) {
  if (is_source(n)) return add_source(n);
  const OpMapping& m = *find_mapping(n.op);
  Emit e{graph, n, {}, {}, functions};
  for (const Value* v : n.operands) e.in.push_back(name(v));
  for (const auto& r : n.results) e.out.push_back(name(r.get()));
  if (m.write) return m.write(e);
  auto& node = e.add(std::string(m.onnx), e.in, e.out);
  for (const auto& [from, to] : m.attrs)
    if (!empty_list(n.attr(from))) set_attr(node, to, n.attr(from));
}

void Exporter::add_outputs() {
  std::set<std::string> taken;
  for (const Output* o : part.outputs) {
    const std::string& have = name(o->value);
    if (have != o->name) {
      auto* id = graph.add_node();
      id->set_op_type("Identity");
      id->set_name(o->name);
      id->add_input(have);
      id->add_output(o->name);
    }
    if (!taken.insert(o->name).second) throw ExportError(fmt::format("output '{}' is given twice", o->name));
    set_type(*graph.add_output(), o->name, o->value->type);
  }
}

void Exporter::finish() {
  model.set_ir_version(onnx::IR_VERSION);
  model.set_producer_name("stag");
  model.set_doc_string(fmt::format("stag graph {}: its outputs but loss and metrics", g.name));
  graph.set_name(g.name);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  if (functions.empty()) return;
  auto* ours = model.add_opset_import();
  ours->set_domain(kStagDomain);
  ours->set_version(1);
  for (const auto& f : functions) *model.add_functions() = stag_function(f);
}

std::string Exporter::summary() const {
  std::vector<std::string> ins, outs;
  for (const Node* n : part.nodes)
    if (n->op == Op::input) ins.push_back(fmt::format("{} {}", n->result()->name, to_string(n->result()->type)));
  for (const Output* o : part.outputs) outs.push_back(fmt::format("{} {}", o->name, to_string(o->value->type)));
  return fmt::format("inputs {}; outputs {}; {} nodes, {} initializers", fmt::join(ins, ", "), fmt::join(outs, ", "), graph.node_size(),
                     graph.initializer_size());
}

}  // namespace

void check_exportable(const Graph& g) { check_part(g, part_of(g)); }

Exported export_model(const Graph& g, const Weights& weights) {
  Exporter w(g, weights);
  check_part(g, w.part);
  w.name_outputs();
  for (const Node* n : w.part.nodes) w.add_node(*n);
  w.add_outputs();
  w.finish();
  try {
    onnx::checker::check_model(w.model);
  } catch (const std::exception& e) {
    throw ExportError(fmt::format("ONNX's checker rejects the exported model (a bug in stag's exporter): {}", e.what()));
  }
  Exported out;
  if (!w.model.SerializeToString(&out.bytes)) throw ExportError("the model does not serialize: protobuf holds at most 2 GB");
  out.summary = w.summary();
  return out;
}

}  // namespace stag::onnx_export
