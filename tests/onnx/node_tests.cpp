// The ONNX backend node tests (Debian's libonnx-testdata) through the importer: each test's
// model is imported, run by the reference interpreter and compiled, and both are compared with
// the expected outputs. A test stag cannot import must end in a clear error (a diagnostic, never
// a crash); a test it imports must match.
//
// Tolerance, as ONNX's backend tests: |got - want| <= atol + rtol * |want| with rtol 1e-3 and
// atol 1e-5 (ONNX uses 1e-7; stag's f32 kernels reassociate sums, so a little more absolute
// room for values near zero). NaN matches NaN, infinities match by sign.
//
// The tests that pass are listed in node_tests_passing.txt (--expect): one of them failing to
// pass, or a test passing that is not listed, fails the run, so the count can only be raised on
// purpose (regenerate the list with --list-passing).
//
// usage: onnx_node_tests DATA_DIR [--shard I/N] [--only NAME] [--expect FILE] [--list-passing] [--by-op] [--verbose]
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "compiler/jit/jit_model.h"
#include "frontend/load.h"
#include "frontend/onnx/onnx.h"
#include "frontend/onnx/proto.h"
#include "ir/reference.h"
#include "tests/util.h"

namespace fs = std::filesystem;
using namespace stag;

namespace {

constexpr double kRtol = 1e-3, kAtol = 1e-5;

// Tests whose reference run matches but whose compiled code does not: a compiler bug the
// importer cannot work around, reported as KNOWN and kept out of the pass count. A known
// failure that starts passing fails the run, so the list cannot go stale.
const std::set<std::string> kKnownCompilerFailures = {};

enum class Status { pass, unsupported, fail, known };

struct Outcome {
  Status status = Status::fail;
  std::string detail;
  std::set<std::string> ops;
};

struct TestData {
  std::vector<RefTensor> inputs, outputs;
};

std::string slurp(const fs::path& p) {
  std::string error;
  auto text = read_source(p.string(), error);
  if (!text) throw std::runtime_error(error);
  return *text;
}

std::vector<RefTensor> read_all(const fs::path& dir, const std::string& prefix) {
  std::vector<RefTensor> out;
  for (int i = 0;; ++i) {
    fs::path p = dir / fmt::format("{}_{}.pb", prefix, i);
    if (!fs::exists(p)) return out;
    out.push_back(onnx_import::read_tensor(slurp(p), dir.string()));
  }
}

std::set<std::string> op_types(const std::string& bytes) {
  onnx::ModelProto m;
  std::set<std::string> ops;
  if (m.ParseFromString(bytes))
    for (const auto& n : m.graph().node()) ops.insert(n.op_type());
  return ops;
}

bool close(double got, double want) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::fabs(got - want) <= kAtol + kRtol * std::fabs(want);
}

// Empty when `got` matches `want`, else the first difference.
std::string compare(const std::string& what, const RefTensor& got, const RefTensor& want) {
  if (got.type != want.type) return fmt::format("{}: {} instead of {}", what, to_string(got.type), to_string(want.type));
  for (size_t i = 0; i < got.data.size(); ++i)
    if (!close(got.data[i], want.data[i])) return fmt::format("{}: element {} is {} instead of {}", what, i, got.data[i], want.data[i]);
  return {};
}

rt::DType rt_dtype(DType d) { return static_cast<rt::DType>(static_cast<int>(d)); }

rt::Tensor to_rt(const RefTensor& t) {
  rt::Tensor out(rt_dtype(t.type.dtype), rt::Shape(t.type.dims.begin(), t.type.dims.end()));
  for (size_t i = 0; i < t.data.size(); ++i) {
    switch (t.type.dtype) {
      case DType::f32: out.values<float>()[i] = static_cast<float>(t.data[i]); break;
      case DType::f64: out.values<double>()[i] = t.data[i]; break;
      case DType::i32: out.values<int32_t>()[i] = static_cast<int32_t>(t.data[i]); break;
      case DType::i64: out.values<int64_t>()[i] = static_cast<int64_t>(t.data[i]); break;
      case DType::b8: out.values<bool>()[i] = t.data[i] != 0; break;
    }
  }
  return out;
}

RefTensor from_rt(const rt::Tensor& t, const Type& type) { return RefTensor(type, test::to_doubles(t)); }

// The graph inputs in the model's order (constants bound at import are not inputs any more).
std::vector<std::string> model_inputs(const std::string& bytes) {
  onnx::ModelProto m;
  m.ParseFromString(bytes);
  std::set<std::string> inits;
  for (const auto& t : m.graph().initializer()) inits.insert(t.name());
  std::vector<std::string> names;
  for (const auto& v : m.graph().input())
    if (!inits.count(v.name())) names.push_back(v.name());
  return names;
}

// Imports the model; inputs a converter needs at compile time (a Reshape's shape) are bound to
// the test's values and the import repeated.
std::unique_ptr<Graph> import(const fs::path& model, const std::string& bytes, const std::vector<std::string>& names,
                              const TestData& data, std::string& error) {
  onnx_import::Options options;
  std::vector<std::string> wanted;
  options.wanted_constants = &wanted;
  for (int attempt = 0; attempt < 6; ++attempt) {  // one more bound input each time
    Diagnostics diags;
    auto g = onnx_import::import(model.string(), bytes, options, diags);
    if (g) return g;
    error = diags.render();
    if (!diags.has_errors()) error = "import failed without a diagnostic";
    if (wanted.empty()) return nullptr;
    for (const auto& w : wanted) {
      auto at = std::find(names.begin(), names.end(), w);
      if (at != names.end() && static_cast<size_t>(at - names.begin()) < data.inputs.size())
        options.constant_inputs[w] = data.inputs[static_cast<size_t>(at - names.begin())];
    }
    wanted.clear();
  }
  return nullptr;
}

std::map<std::string, RefTensor> feeds_of(const Graph& g, const fs::path& model, const std::vector<std::string>& names, const TestData& data) {
  std::map<std::string, RefTensor> feeds = onnx_import::initializers(model.string());
  for (size_t i = 0; i < names.size() && i < data.inputs.size(); ++i)
    if (const Value* v = g.find(onnx_import::ir_name(names[i])); v && v->def->op == Op::input) feeds[v->name] = data.inputs[i];
  return feeds;
}

std::string check_reference(const Graph& g, const std::map<std::string, RefTensor>& feeds, const TestData& data) {
  RefResult r = interpret(g, feeds);
  for (size_t i = 0; i < g.outputs.size() && i < data.outputs.size(); ++i)
    if (auto e = compare("reference output " + g.outputs[i].name, r.outputs.at(g.outputs[i].name), data.outputs[i]); !e.empty())
      return e;
  return {};
}

std::string check_compiled(const Graph& g, const std::map<std::string, RefTensor>& feeds, const TestData& data) {
  CompiledModel c = compile_jit(g);
  rt::Model& m = *c.model;
  for (const auto& p : m.manifest().params) {
    rt::Tensor t = to_rt(feeds.at(p.name));
    std::memcpy(m.param(p.name).data(), t.data(), static_cast<size_t>(t.nbytes()));
  }
  std::vector<rt::Tensor> inputs;
  for (const auto& in : m.manifest().function("forward").inputs) inputs.push_back(to_rt(feeds.at(in.name)));
  std::vector<const rt::Tensor*> ptrs;
  for (const auto& t : inputs) ptrs.push_back(&t);
  auto outs = m.run("forward", ptrs);
  for (size_t i = 0; i < g.outputs.size() && i < data.outputs.size(); ++i)
    if (auto e = compare("compiled output " + g.outputs[i].name, from_rt(outs[i], g.outputs[i].value->type), data.outputs[i]); !e.empty()) return e;
  return {};
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

Outcome run_test(const fs::path& dir) {
  Outcome o;
  fs::path model = dir / "model.onnx";
  std::string bytes = slurp(model);
  o.ops = op_types(bytes);
  TestData data;
  std::string data_error;
  try {
    data = {read_all(dir / "test_data_set_0", "input"), read_all(dir / "test_data_set_0", "output")};
  } catch (const std::exception& e) {
    data_error = e.what();
  }
  std::vector<std::string> names = model_inputs(bytes);
  std::string error;
  auto g = import(model, bytes, names, data, error);
  if (!g) return {Status::unsupported, first_line(error), o.ops};
  if (!data_error.empty()) return {Status::fail, "imported, but its test data cannot be read: " + data_error, o.ops};
  try {
    auto feeds = feeds_of(*g, model, names, data);
    if (auto e = check_reference(*g, feeds, data); !e.empty()) return {Status::fail, e, o.ops};
    std::string e = check_compiled(*g, feeds, data);
    bool known = kKnownCompilerFailures.count(dir.filename().string()) > 0;
    if (known) return {e.empty() ? Status::fail : Status::known, e.empty() ? "a known failure passes: take it off the list" : e, o.ops};
    if (!e.empty()) return {Status::fail, e, o.ops};
  } catch (const std::exception& e) {
    return {Status::fail, fmt::format("threw: {}", e.what()), o.ops};
  }
  return {Status::pass, {}, o.ops};
}

struct Args {
  fs::path data;
  int shard = 0, shards = 1;
  std::string only, expect;
  bool by_op = false, verbose = false, list_passing = false;
};

Args parse_args(int argc, char** argv) {
  Args a;
  if (argc < 2)
    throw std::runtime_error("usage: onnx_node_tests DATA_DIR [--shard I/N] [--only NAME] [--expect FILE] [--list-passing] [--by-op] [--verbose]");
  a.data = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--shard" && i + 1 < argc) std::sscanf(argv[++i], "%d/%d", &a.shard, &a.shards);
    else if (s == "--only" && i + 1 < argc) a.only = argv[++i];
    else if (s == "--expect" && i + 1 < argc) a.expect = argv[++i];
    else if (s == "--list-passing") a.list_passing = true;
    else if (s == "--by-op") a.by_op = true;
    else if (s == "--verbose") a.verbose = true;
    else throw std::runtime_error("unknown argument " + s);
  }
  return a;
}

std::vector<fs::path> test_dirs(const Args& a) {
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(a.data))
    if (e.is_directory() && e.path().filename().string().starts_with("test_")) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  std::vector<fs::path> mine;
  for (size_t i = 0; i < dirs.size(); ++i)
    if (static_cast<int>(i % static_cast<size_t>(a.shards)) == a.shard && (a.only.empty() || dirs[i].filename() == a.only)) mine.push_back(dirs[i]);
  return mine;
}

std::set<std::string> read_expected(const std::string& path) {
  std::set<std::string> names;
  if (path.empty()) return names;
  std::istringstream lines(slurp(path));
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line[0] != '#') names.insert(line);
  if (names.empty()) throw std::runtime_error(path + ": no test names");
  return names;
}

// A pass must be listed and a listed test must pass.
Outcome against_expected(Outcome o, const std::string& name, const std::set<std::string>& expected, const std::string& file) {
  if (expected.empty() || o.status == Status::fail) return o;
  bool listed = expected.count(name) > 0;
  if (o.status == Status::pass && !listed) return {Status::fail, "passes but is not listed in " + file + ": add it", o.ops};
  if (o.status != Status::pass && listed) return {Status::fail, "listed in " + file + " but does not pass: " + o.detail, o.ops};
  return o;
}

// Per op: how many tests using it pass, out of how many use it.
void print_by_op(const std::map<std::string, std::pair<int, int>>& by_op) {
  fmt::print("\n{:<28} {:>6} {:>6}\n", "op", "pass", "tests");
  for (const auto& [op, n] : by_op) fmt::print("{:<28} {:>6} {:>6}\n", op, n.first, n.second);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args a = parse_args(argc, argv);
    std::map<Status, int> counts;
    std::map<std::string, std::pair<int, int>> by_op;
    std::set<std::string> expected = read_expected(a.expect);
    for (const auto& dir : test_dirs(a)) {
      Outcome o = against_expected(run_test(dir), dir.filename().string(), expected, a.expect);
      if (a.list_passing && o.status == Status::pass) fmt::print("{}\n", dir.filename().string());
      ++counts[o.status];
      for (const auto& op : o.ops) by_op[op].first += o.status == Status::pass, ++by_op[op].second;
      if (o.status == Status::fail) fmt::print("FAIL {}: {}\n", dir.filename().string(), o.detail);
      if (o.status == Status::known) fmt::print("KNOWN {}: {}\n", dir.filename().string(), o.detail);
      else if (a.verbose) fmt::print("{} {}{}\n", o.status == Status::pass ? "PASS" : "UNSUPPORTED", dir.filename().string(), o.detail.empty() ? "" : ": " + o.detail);
    }
    if (a.by_op) print_by_op(by_op);
    if (a.list_passing) return counts[Status::fail] == 0 ? 0 : 1;
    fmt::print("{} passed, {} unsupported (a clear import error), {} known compiler failures, {} failed\n", counts[Status::pass],
               counts[Status::unsupported], counts[Status::known], counts[Status::fail]);
    return counts[Status::fail] == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "onnx_node_tests: {}\n", e.what());
    return 2;
  }
}
