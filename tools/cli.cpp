#include "tools/cli.h"

#include <fmt/format.h>

#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include <cstring>

#include "frontend/load.h"
#include "frontend/onnx/onnx.h"
#include "ir/analysis.h"
#include "ir/random.h"
#include "runtime/error.h"
#include "runtime/safetensors.h"
#include "runtime/trainer.h"

namespace stag::cli {

void ModelArgs::add_to(CLI::App& app) {
  app.add_option("file", file, "Model (.stag) or graph IR (.ir) file")->required();
  app.add_option("--batch", batch, "Bind the batch dimension of a .stag model")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app.add_flag("--train", train, "Lower a .stag model for a training step (batch norm, dropout active)");
  app.add_option("--model", model, "Which model of a .stag file holding several (default: the first)");
  app.add_option("--dim", dims, "Bind an ONNX model's symbolic dimension: NAME=N (repeatable)");
  app.add_option("--loss", loss, "An ONNX model's loss: KIND:OUTPUT:LABEL (cross_entropy, mse, huber, bce_with_logits)");
  app.add_flag("--decode", decode, "Lower a language model's decode step: one token, its cache or state as inputs and outputs");
  app.add_flag("--unroll", unroll, "Lower recurrent layers (RNN, LSTM, GRU) and for loops unrolled, a copy of the cell or body a step, instead of one scan");
  add_pass_options(app, passes);
}

void add_pass_options(CLI::App& app, PassOptions& o) {
  std::string names;
  for (const auto& p : all_passes()) names += fmt::format("\n  {:<16} {}", p.name, p.summary);
  app.add_option_function<std::string>(
         "--passes",
         [&o](const std::string& list) {
           std::vector<std::string> passes;
           if (list != "none")
             for (size_t at = 0; at <= list.size();) {
               size_t comma = list.find(',', at);
               if (comma == std::string::npos) comma = list.size();
               if (comma > at) passes.push_back(list.substr(at, comma - at));
               at = comma + 1;
             }
           o.passes = passes;
         },
         fmt::format("The optimizer's passes, comma separated, in order ('none': no pass; default: {}). Passes:{}",
                     fmt::join(default_pipeline(), ","), names))
      ->group("Optimizer");
  app.add_flag("--print-after-all", o.print_after_all, "Print the IR after every pass (to stderr)")->group("Optimizer");
  app.add_option("--print-after", o.print_after, "Print the IR after these passes")->delimiter(',')->group("Optimizer");
  app.add_option("--print-before", o.print_before, "Print the IR before these passes")->delimiter(',')->group("Optimizer");
  app.add_flag("--print-changed", o.print_changed, "With a print option: only passes that changed the IR")->group("Optimizer");
  app.add_flag("--verify-each", o.verify_each, "Verify the IR after every pass")->group("Optimizer");
  app.add_flag("--pass-stats", o.stats, "Print what each pass did, kernel counts and the workspace size")->group("Optimizer");
  app.add_flag("--time-passes", o.time, "Print the time each pass took")->group("Optimizer");
  app.add_flag("--check-numerics", o.check_numerics,
               "Check after every kernel that what it computed is finite: the first NaN or infinity stops the run naming "
               "its kernel and graph node (slow; for finding where a loss becomes NaN)")
      ->group("Optimizer");
  app.add_option("--scan-unroll", o.scan_unroll,
                 "Run N steps of every scan (a recurrent layer) per loop iteration: its body copied N times (N is lowered "
                 "to the largest divisor of the length not above it; default 1)")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}))
      ->group("Optimizer");
  app.add_option("--precision", o.precision,
                 "bf16: matmuls and convolutions multiply bf16-rounded operands and sum in f32, as PyTorch's CPU autocast "
                 "(weights, optimizer state and other ops stay f32; default: the train section's precision, else f32)")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->group("Optimizer");
}

std::unique_ptr<Graph> ModelArgs::load() const {
  try {
    check_pipeline(passes);
  } catch (const PassError& e) {
    throw Failure{kExitUsage, e.what()};
  }
  std::string error;
  auto text = read_source(file, error);
  if (!text) throw Failure{kExitUsage, error};
  Diagnostics diags;
  LoadOptions options;
  if (batch > 0) options.batch = batch;
  options.training = train;
  options.decode = decode;
  options.prefill = prefill;
  options.unroll = unroll;
  options.model = model;
  options.loss = loss;
  for (const auto& d : dims) {
    size_t eq = d.find('=');
    int64_t n = 0;
    try {
      n = eq == std::string::npos ? 0 : std::stoll(d.substr(eq + 1));
    } catch (const std::exception&) {
    }
    if (eq == std::string::npos || eq == 0 || n < 1 || n > (int64_t{1} << 30))
      throw Failure{kExitUsage, fmt::format("--dim {}: expected NAME=N with N between 1 and 2^30", d)};
    options.dims[d.substr(0, eq)] = n;
  }
  auto graph = load_model(file, *text, options, diags);
  if (!graph) {
    fmt::print(stderr, "{}", diags.render());
    throw Failure{kExitBadInput, {}};
  }
  return graph;
}

namespace {

rt::Tensor to_tensor(const RefTensor& t) {
  rt::Tensor out(t.type.dtype == DType::f64 ? rt::DType::f64 : rt::DType::f32, rt::Shape(t.type.dims.begin(), t.type.dims.end()));
  for (size_t i = 0; i < t.data.size(); ++i) {
    if (t.type.dtype == DType::f64) out.values<double>()[i] = t.data[i];
    else out.values<float>()[i] = static_cast<float>(t.data[i]);
  }
  return out;
}

std::map<std::string, rt::Tensor> to_tensors(const std::map<std::string, RefTensor>& refs) {
  std::map<std::string, rt::Tensor> out;
  for (const auto& [name, t] : refs) out.emplace(name, to_tensor(t));
  return out;
}

}  // namespace

std::optional<std::string> onnx_source(const rt::Model& model) {
  auto it = model.manifest().attrs.find(onnx_import::kSourceAttr);
  if (it == model.manifest().attrs.end()) return std::nullopt;
  return nlohmann::json::parse(it->second).get<std::string>();
}

void init_params(rt::Model& model, int64_t seed) {
  model.init(seed);
  auto source = onnx_source(model);
  if (!source) return;
  for (auto& [name, t] : to_tensors(onnx_import::initializers(*source))) {
    if (model.param_index(name) < 0) continue;
    rt::Tensor& dst = model.param(name);
    if (dst.dtype() == t.dtype() && dst.shape() == t.shape()) dst = std::move(t);
  }
}

std::string initializers_as_safetensors(const std::string& onnx_path) {
  std::map<std::string, rt::Tensor> tensors = to_tensors(onnx_import::initializers(onnx_path));
  std::vector<rt::NamedTensor> named;
  for (const auto& [name, t] : tensors) named.push_back({name, &t});
  std::vector<std::byte> bytes = rt::encode_safetensors(named);
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

void init_from_file(rt::Model& model, const std::string& path) {
  if (!path.ends_with(".onnx")) {
    rt::init_from(model, rt::read_safetensors(path).tensors, path);
    return;
  }
  std::string error;
  auto bytes = read_source(path, error);
  if (!bytes) throw rt::Error(fmt::format("--init-from: {}", error));
  try {
    rt::init_from(model, to_tensors(onnx_import::read_initializers(path, *bytes)), path);
  } catch (const rt::Error&) {
    throw;
  } catch (const std::runtime_error& e) {
    throw rt::Error(fmt::format("--init-from {}", e.what()));
  }
}

void init_training(rt::Model& model, const std::string& init_from) {
  if (auto source = onnx_source(model)) rt::init_from(model, to_tensors(onnx_import::initializers(*source)), *source);
  if (!init_from.empty()) init_from_file(model, init_from);
}

rt::Tensor random_input(const Graph& g, const Value* v, const rt::BufferSpec& spec, int64_t seed, int64_t stream) {
  rt::Tensor t(spec.dtype, spec.shape);
  int64_t n = t.numel();
  int64_t range = v ? index_bound(g, v, 10) : 10;
  for (int64_t i = 0; i < n; ++i) {
    double normal = random_standard_normal(seed, stream, i);
    auto index = static_cast<int64_t>(random_uniform01(seed, stream, i) * static_cast<double>(range));
    switch (spec.dtype) {
      case rt::DType::f32: t.values<float>()[i] = static_cast<float>(normal); break;
      case rt::DType::f64: t.values<double>()[i] = normal; break;
      case rt::DType::i32: t.values<int32_t>()[i] = static_cast<int32_t>(index); break;
      case rt::DType::i64: t.values<int64_t>()[i] = index; break;
      case rt::DType::b8: t.values<bool>()[i] = index % 2; break;
    }
  }
  return t;
}

std::string cache_note(const CompileTimes& times) {
  if (times.cached_parts == 0) return "";
  return fmt::format(", {} of {} part{} from the JIT cache", times.cached_parts, times.parts, times.parts == 1 ? "" : "s");
}

void write_output(const std::string& path, const std::string& text) {
  if (path == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    if (std::fflush(stdout) != 0) throw Failure{kExitUsage, "cannot write to standard output"};
    return;
  }
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw Failure{kExitUsage, fmt::format("cannot write '{}'", path)};
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Failure{kExitUsage, fmt::format("cannot write '{}'", path)};
  }
}

std::vector<std::string>& command_line() {
  static std::vector<std::string> words;
  return words;
}

}  // namespace stag::cli
