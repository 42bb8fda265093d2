// The importer's driver: protobuf in, checks (opset, unsupported ops, cycles), inputs and
// initializers, one converter call per node in dependency order, outputs checked against the
// model's declared types.
#include <fmt/format.h>

#include <cctype>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>

#include <onnx/checker.h>

#include "frontend/onnx/ctx.h"
#include "frontend/onnx/tensor.h"
#include "frontend/onnx/version_convert.h"
#include "ir/verifier.h"

namespace stag::onnx_import {

namespace {

/// The opsets the converters follow; older models go through ONNX's version converter.
constexpr int64_t kMinOpset = 7, kMaxOpset = 17;

std::mutex weights_mutex;
std::map<std::string, std::map<std::string, RefTensor>>& weights_by_path() {
  static std::map<std::string, std::map<std::string, RefTensor>> m;
  return m;
}

bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'; }

// An unnamed node by its index and its first output that is not left out (an LSTM's Y may be).
// A graph output that no node, input or initializer of its own graph defines, searched through
// subgraphs too: libonnx's version converter dereferences one (its checker lets it through).
std::optional<std::string> undefined_output(const onnx::GraphProto& g) {
  std::set<std::string> defined;
  for (const auto& i : g.input()) defined.insert(i.name());
  for (const auto& t : g.initializer()) defined.insert(t.name());
  for (const auto& n : g.node()) {
    defined.insert(n.output().begin(), n.output().end());
    for (const auto& a : n.attribute()) {
      if (a.has_g())
        if (auto u = undefined_output(a.g())) return u;
      for (const auto& sub : a.graphs())
        if (auto u = undefined_output(sub)) return u;
    }
  }
  for (const auto& o : g.output())
    if (!defined.count(o.name())) return o.name();
  return std::nullopt;
}

std::string node_label(const onnx::NodeProto& n, int index) {
  if (!n.name().empty()) return fmt::format("'{}'", n.name());
  for (const auto& out : n.output())
    if (!out.empty()) return fmt::format("#{} (output '{}')", index, out);
  return fmt::format("#{}", index);
}

struct Importer {
  const std::string& path;
  const Options& options;
  Diagnostics& diags;
  std::string dir;
  onnx::ModelProto model;
  std::unique_ptr<Graph> graph;
  std::map<std::string, RefTensor> weights;
  std::map<std::string, std::string> names;  // IR name -> the ONNX name it came from
  bool batch_bound = false;                  // --batch bound a symbolic dimension

  std::string unique_name(const std::string& onnx_name);

  void error(const std::string& message) { diags.error({}, message, path); }
  bool parse(const std::string& bytes);
  bool read_opset(int64_t& opset);
  bool check_supported(int64_t opset);
  std::vector<int> dependency_order();
  Dims bind_dims(const onnx::ValueInfoProto& v);
  void add_inputs(Ctx& c);
  void check_batch_used(const Graph& g);
  void add_initializers(Ctx& c);
  bool convert_nodes(Ctx& c, const std::vector<int>& order);
  bool convert_node(Ctx& c, const onnx::NodeProto& n, int index);
  bool add_outputs(Ctx& c);
  void add_loss(Ctx& c);
  std::unique_ptr<Graph> run(const std::string& bytes);
};

std::string Importer::unique_name(const std::string& onnx_name) {
  std::string name = ir_name(onnx_name);
  auto [it, fresh] = names.emplace(name, onnx_name);
  if (!fresh && it->second != onnx_name) fail(fmt::format("the names '{}' and '{}' both become '{}' in stag's IR", it->second, onnx_name, name));
  return name;
}

bool Importer::parse(const std::string& bytes) {
  if (!model.ParseFromString(bytes)) {
    error("not an ONNX model: the protobuf is truncated or malformed");
    return false;
  }
  if (!model.has_graph()) {
    error("the ONNX model has no graph");
    return false;
  }
  bool external = false;
  try {
    // Our own confinement first: the checker would open the file to see that it exists.
    for (const auto& t : model.graph().initializer())
      if (t.data_location() == onnx::TensorProto::EXTERNAL) check_external_location(t, dir), external = true;
  } catch (const ConvertError& e) {
    error(e.what());
    return false;
  }
  try {
    // The checker looks for external data beside the file, which only the path tells it.
    if (external) onnx::checker::check_model(path);
    else onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    error(fmt::format("the ONNX checker rejects the model: {}", e.what()));
    return false;
  }
  return true;
}

bool Importer::read_opset(int64_t& opset) {
  opset = 0;
  for (const auto& o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
  if (opset > kMaxOpset) {
    error(fmt::format("opset {} is newer than the {} stag reads (ONNX 1.12)", opset, kMaxOpset));
    return false;
  }
  if (opset >= kMinOpset) return true;
  if (auto name = undefined_output(model.graph())) {
    error(fmt::format("opset {} needs conversion to opset {}, but the graph output '{}' is produced by no node, input or initializer", opset, kMinOpset, *name));
    return false;
  }
  if (auto why = convert_version_isolated(model, static_cast<int>(kMinOpset)); !why.empty()) {
    error(fmt::format("opset {} cannot be converted to opset {}: {}", opset, kMinOpset, why));
    return false;
  }
  opset = kMinOpset;
  return true;
}

// Every unsupported op in one error, each with its nodes, so that a user sees the whole gap.
bool Importer::check_supported(int64_t opset) {
  std::map<std::string, std::vector<std::string>> missing;
  const auto& nodes = model.graph().node();
  for (int i = 0; i < nodes.size(); ++i) {
    const auto& n = nodes[i];
    if (find_converter(n)) continue;
    bool default_domain = n.domain().empty() || n.domain() == "ai.onnx";
    missing[default_domain ? n.op_type() : n.domain() + "." + n.op_type()].push_back(node_label(n, i));
  }
  if (missing.empty()) return true;
  std::vector<std::string> parts;
  for (const auto& [op, where] : missing)
    parts.push_back(fmt::format("{} (node{} {})", op, where.size() > 1 ? "s" : "", fmt::join(where, ", ")));
  error(fmt::format("unsupported ONNX op{} (opset {}): {}", missing.size() > 1 ? "s" : "", opset, fmt::join(parts, "; ")));
  return false;
}

// Node indices in an order where every input is defined first; ONNX asks for topological
// order, but a graph with a cycle must be an error rather than a hang.
std::vector<int> Importer::dependency_order() {
  const auto& g = model.graph();
  std::set<std::string> defined;
  for (const auto& v : g.input()) defined.insert(v.name());
  for (const auto& t : g.initializer()) defined.insert(t.name());
  defined.insert("");
  std::vector<int> order, pending;
  for (int i = 0; i < g.node_size(); ++i) pending.push_back(i);
  for (bool progress = true; progress && !pending.empty();) {
    progress = false;
    std::vector<int> still;
    for (int i : pending) {
      const auto& n = g.node(i);
      bool ready = std::all_of(n.input().begin(), n.input().end(), [&](const std::string& s) { return defined.count(s); });
      if (!ready) {
        still.push_back(i);
        continue;
      }
      for (const auto& o : n.output()) defined.insert(o);
      order.push_back(i);
      progress = true;
    }
    pending = std::move(still);
  }
  if (pending.empty()) return order;
  std::vector<std::string> names;
  for (int i : pending) names.push_back(node_label(g.node(i), i));
  error(fmt::format("the graph has a cycle or reads undefined values: node{} {} never get{} all inputs",
                    names.size() > 1 ? "s" : "", fmt::join(names, ", "), names.size() > 1 ? "" : "s"));
  return {};
}

Dims Importer::bind_dims(const onnx::ValueInfoProto& v) {
  if (!v.type().has_tensor_type()) fail(fmt::format("input '{}' is not a tensor", v.name()));
  Dims dims;
  for (const auto& d : v.type().tensor_type().shape().dim()) {
    if (d.has_dim_value()) {
      dims.push_back(d.dim_value());
      continue;
    }
    auto it = options.dims.find(d.dim_param());
    if (it != options.dims.end()) dims.push_back(it->second);
    else if (options.batch) dims.push_back(*options.batch), batch_bound = true;
    else fail(fmt::format("dimension {} '{}' of input '{}' is symbolic: bind it with --dim {}=N or --batch N", dims.size(),
                          d.dim_param(), v.name(), d.dim_param().empty() ? "NAME" : d.dim_param()));
  }
  return dims;
}

void Importer::add_inputs(Ctx& c) {
  std::set<std::string> inits;
  for (const auto& t : model.graph().initializer()) inits.insert(t.name());
  for (const auto& v : model.graph().input()) {
    if (inits.count(v.name())) continue;  // IR version < 4 lists initializers as inputs too
    std::string what = fmt::format("input '{}'", v.name());
    DType dtype;
    try {
      dtype = to_dtype(v.type().tensor_type().elem_type());
    } catch (const ConvertError& e) {
      fail(fmt::format("{}: {}", what, e.what()));
    }
    Type type = checked_type(dtype, bind_dims(v), what);
    auto it = options.constant_inputs.find(v.name());
    if (it != options.constant_inputs.end()) {
      if (it->second.type != type) fail(fmt::format("{} is {}, its given value {}", what, to_string(type), to_string(it->second.type)));
      c.values[v.name()] = c.constant(type, it->second.data);
      continue;
    }
    c.values[v.name()] = c.b.input(unique_name(v.name()), type);
  }
}

// A model exported with a fixed batch keeps it: `--batch 64` on one of batch 4 would otherwise
// be ignored without a word (the batch that trains would not be the one asked for).
void Importer::check_batch_used(const Graph& g) {
  if (!options.batch || batch_bound) return;
  std::vector<std::string> fixed;
  for (Value* v : g.inputs()) {
    if (!v->type.dims.empty() && v->type.dims[0] == *options.batch) return;
    fixed.push_back(fmt::format("'{}' is {}", names.count(v->name) ? names.at(v->name) : v->name, to_string(v->type)));
  }
  fail(fmt::format("--batch {}: the model's batch was fixed at export ({}): export it with torch.onnx.export(..., "
                   "dynamic_axes={{NAME: {{0: 'batch'}}}}) to choose the batch here, or leave --batch out",
                   *options.batch, fmt::join(fixed, ", ")));
}

// Float initializers are the model's weights (parameters, starting from their values); the
// others (shapes, indices) are constants, known at import time.
void Importer::add_initializers(Ctx& c) {
  for (const auto& t : model.graph().initializer()) {
    RefTensor r = to_ref(t, dir);
    if (!is_float(r.type.dtype)) {
      c.values[t.name()] = c.constant(r.type, r.data);
      continue;
    }
    std::string name = unique_name(t.name());
    c.values[t.name()] = c.b.parameter(name, r.type);
    weights[name] = std::move(r);
  }
}

bool Importer::convert_node(Ctx& c, const onnx::NodeProto& n, int index) {
  c.node = &n;
  try {
    std::vector<Value*> results = find_converter(n)(c);
    for (int i = 0; i < n.output_size(); ++i) {
      if (n.output(i).empty()) continue;
      if (static_cast<size_t>(i) >= results.size() || !results[i])
        fail(fmt::format("output {} ('{}') is not supported", i, n.output(i)));
      if (results[i] == Ctx::empty_result()) c.empty.insert(n.output(i));
      else c.values[n.output(i)] = results[i];
    }
    return true;
  } catch (const std::exception& e) {  // ConvertError, and BuildError from the builder
    error(fmt::format("node {} ({}, opset {}): {}", node_label(n, index), n.op_type(), c.opset, e.what()));
    return false;
  }
}

bool Importer::convert_nodes(Ctx& c, const std::vector<int>& order) {
  bool ok = true;
  for (int i : order) {
    if (!convert_node(c, model.graph().node(i), i)) ok = false;
    if (!ok) break;  // later nodes would read the values this one did not make
  }
  return ok;
}

// The declared output types are checked, so that a converter's mistake is an error, not a
// silently different result.
bool Importer::add_outputs(Ctx& c) {
  for (const auto& o : model.graph().output()) {
    if (c.empty.count(o.name())) {
      error(fmt::format("output '{}' is an empty tensor; stag's tensors are never empty", o.name()));
      return false;
    }
    auto it = c.values.find(o.name());
    if (it == c.values.end()) {
      error(fmt::format("output '{}' is not computed by any node", o.name()));
      return false;
    }
    Value* v = it->second;
    const auto& tt = o.type().tensor_type();
    if (tt.elem_type() != 0 && tt.elem_type() != to_elem_type(v->type.dtype)) {
      error(fmt::format("output '{}' is declared {} but computes {}", o.name(), elem_type_name(tt.elem_type()), to_string(v->type)));
      return false;
    }
    bool static_shape = tt.has_shape() && std::all_of(tt.shape().dim().begin(), tt.shape().dim().end(), [](const auto& d) { return d.has_dim_value(); });
    Dims declared;
    for (const auto& d : tt.shape().dim()) declared.push_back(d.dim_value());
    if (static_shape && declared != v->type.dims) {
      error(fmt::format("output '{}' is declared {} but computes {}", o.name(), dims_to_string(declared), to_string(v->type)));
      return false;
    }
    c.b.output(unique_name(o.name()), v);
  }
  return true;
}

// Cross-entropy's classes are the scores' last axis, as a language model's [B, T, V] logits
// have them (PyTorch's loss would take axis 1): one label per row, the labels shaped as the
// leading axes.
Type cross_entropy_labels(const std::string& loss, const Type& scores) {
  if (scores.rank() < 2) fail(fmt::format("--loss '{}': cross_entropy needs scores of rank 2 or more, got {}", loss, to_string(scores)));
  return {DType::i64, Dims(scores.dims.begin(), scores.dims.end() - 1)};
}

// Scores [..., C] and labels [...] flattened to rows, as models/gpt.stag writes it.
Value* sequence_cross_entropy(Ctx& c, Value* scores, Value* labels) {
  if (scores->type.rank() == 2) return c.op(Op::cross_entropy, {scores, labels});
  int64_t classes = scores->type.dims.back(), rows = *checked_numel(scores->type.dims) / classes;
  return c.op(Op::cross_entropy, {c.reshape(scores, {rows, classes}), c.reshape(labels, {rows})});
}

void Importer::add_loss(Ctx& c) {
  size_t a = options.loss.find(':'), b = options.loss.find(':', a == std::string::npos ? a : a + 1);
  if (b == std::string::npos) fail(fmt::format("--loss '{}': expected KIND:OUTPUT:LABEL", options.loss));
  std::string kind = options.loss.substr(0, a), output = options.loss.substr(a + 1, b - a - 1), label = options.loss.substr(b + 1);
  auto op = op_from_name(kind);
  if (!op || !op_info(*op).has(Loss) || kind == "l1_penalty" || kind == "l2_penalty" || kind == "nll")
    fail(fmt::format("--loss '{}': the kind must be cross_entropy, mse, huber or bce_with_logits", options.loss));
  auto out = std::find_if(graph->outputs.begin(), graph->outputs.end(), [&](const Output& o) { return o.name == output || (names.count(o.name) && names.at(o.name) == output); });
  if (out == graph->outputs.end()) {
    std::vector<std::string> have;
    for (const auto& o : model.graph().output()) have.push_back(fmt::format("'{}'", o.name()));
    fail(fmt::format("--loss '{}': the model has no output '{}'; its outputs: {}", options.loss, output, fmt::join(have, ", ")));
  }
  if (c.values.count(label) || names.count(ir_name(label)))
    fail(fmt::format("--loss '{}': the label '{}' must be a new input, but the model already has a value of that name", options.loss, label));
  Value* scores = out->value;
  Type label_type = scores->type;
  if (*op == Op::cross_entropy) label_type = cross_entropy_labels(options.loss, scores->type);
  Value* y = c.b.input(unique_name(label), label_type);
  c.b.output("loss", *op == Op::cross_entropy ? sequence_cross_entropy(c, scores, y) : c.op(*op, {scores, y}));
  // The trainer, `stag eval` and `stag predict` score a classifier's `logits` output.
  bool has_logits = std::any_of(graph->outputs.begin(), graph->outputs.end(), [](const Output& o) { return o.name == "logits"; });
  if (*op == Op::cross_entropy && !has_logits) c.b.output("logits", scores);
}

std::unique_ptr<Graph> Importer::run(const std::string& bytes) {
  int64_t opset = 0;
  if (!parse(bytes) || !read_opset(opset) || !check_supported(opset)) return nullptr;
  std::vector<int> order = dependency_order();
  if (diags.has_errors()) return nullptr;
  // Named as its file, not its graph: exporters give every graph one name (PyTorch's torch_jit,
  // main_graph), and run folders and checkpoints are named by the model.
  std::string stem = std::filesystem::path(path).stem().string();
  std::string name = ir_name(stem.empty() ? "onnx" : stem);
  graph = std::make_unique<Graph>(name);
  Ctx c(*graph);
  c.opset = opset;
  c.dir = dir;
  try {
    add_inputs(c);
    check_batch_used(*graph);
    add_initializers(c);
  } catch (const std::exception& e) {
    error(e.what());
    return nullptr;
  }
  bool ok = false;
  try {
    ok = convert_nodes(c, order) && add_outputs(c);
    if (ok && !options.loss.empty()) add_loss(c);
  } catch (const std::exception& e) {  // ConvertError, and BuildError from the builder
    error(e.what());
    ok = false;
  }
  if (options.wanted_constants) *options.wanted_constants = c.wanted_constants;
  if (!ok) return nullptr;
  graph->set_attr(kSourceAttr, path);
  return std::move(graph);
}

}  // namespace

std::string ir_name(const std::string& onnx_name) {
  std::string s = onnx_name;
  for (char& ch : s)
    if (!ident_char(ch)) ch = '_';
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) s.insert(s.begin(), '_');
  return s;
}

std::unique_ptr<Graph> import(const std::string& path, const std::string& bytes, const Options& options, Diagnostics& diags) {
  Importer im{path, options, diags, std::filesystem::path(path).parent_path().string(), {}, {}, {}, {}};
  auto g = im.run(bytes);
  if (!g || !verify(*g, diags)) return nullptr;
  std::lock_guard lock(weights_mutex);
  weights_by_path()[path] = std::move(im.weights);
  return g;
}

const std::map<std::string, RefTensor>& initializers(const std::string& path) {
  static const std::map<std::string, RefTensor> none;
  std::lock_guard lock(weights_mutex);
  auto it = weights_by_path().find(path);
  return it == weights_by_path().end() ? none : it->second;
}

}  // namespace stag::onnx_import
