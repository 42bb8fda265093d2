#include "runtime/model.h"
#include "runtime/cpu.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "runtime/checks.h"
#include "runtime/error.h"
#include "runtime/memory.h"

namespace stag::rt {

namespace {

BufferSpec buffer_from(const nlohmann::json& j) {
  BufferSpec b;
  b.name = j.at("name").get<std::string>();
  auto dtype = dtype_from_name(j.at("dtype").get<std::string>());
  if (!dtype) throw Error(fmt::format("manifest: buffer '{}' has an unknown dtype", b.name));
  b.dtype = *dtype;
  b.shape = j.at("shape").get<Shape>();
  b.trainable = j.value("trainable", false);
  return b;
}

std::string describe(const BufferSpec& b) {
  return fmt::format("{}{}", dtype_name(b.dtype), shape_to_string(b.shape));
}

}  // namespace

const FunctionSpec& Manifest::function(const std::string& name) const {
  for (const auto& f : functions)
    if (f.name == name) return f;
  throw Error(fmt::format("model {} has no function '{}'", model, name));
}

Manifest Manifest::parse(const std::string& json) {
  try {
    auto j = nlohmann::json::parse(json);
    Manifest m;
    m.model = j.at("model").get<std::string>();
    for (const auto& p : j.at("params")) m.params.push_back(buffer_from(p));
    for (const auto& f : j.at("functions")) {
      FunctionSpec spec;
      spec.name = f.at("name").get<std::string>();
      for (const auto& b : f.at("inputs")) spec.inputs.push_back(buffer_from(b));
      for (const auto& b : f.at("outputs")) spec.outputs.push_back(buffer_from(b));
      // Absent from manifests written before the profiler: such a model only cannot be profiled.
      if (f.contains("kernels"))
        for (const auto& k : f.at("kernels"))
          spec.kernels.push_back({k.at("name").get<std::string>(), k.at("origin").get<std::string>(),
                                  k.at("flops").get<double>(), k.at("bytes").get<double>()});
      m.functions.push_back(std::move(spec));
    }
    m.workspace_bytes = j.at("workspace_bytes").get<int64_t>();
    m.checks = j.at("checks").get<std::vector<std::string>>();
    m.check_numerics = j.value("check_numerics", false);
    if (j.contains("isa")) m.isa = j.at("isa").get<std::string>();
    if (j.contains("attrs"))
      for (const auto& [key, value] : j.at("attrs").items()) m.attrs[key] = value.dump();
    return m;
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("the compiled model's manifest is malformed: {}", e.what()));
  }
}

Model::Model(Manifest manifest, std::function<Entry(const std::string&)> entry)
    : manifest_(std::move(manifest)), entry_(std::move(entry)) {
  if (!manifest_.isa.empty()) check_cpu_isa(manifest_.isa);
  // Before the first big allocation: a model too big for the machine is the user's to shrink.
  check_memory(memory_need(manifest_), available_memory(), manifest_.model);
  workspace_ = Tensor::long_lived(DType::b8, Shape{std::max<int64_t>(1, manifest_.workspace_bytes)});
  for (const auto& p : manifest_.params) params_.push_back(Tensor::long_lived(p.dtype, p.shape));
}

int Model::param_index(const std::string& name) const {
  for (size_t i = 0; i < manifest_.params.size(); ++i)
    if (manifest_.params[i].name == name) return static_cast<int>(i);
  return -1;
}

Tensor& Model::param(const std::string& name) {
  int i = param_index(name);
  if (i < 0) throw Error(fmt::format("model {} has no parameter '{}'", manifest_.model, name));
  return params_[i];
}

void Model::load_model_params(std::map<std::string, Tensor>& tensors, const std::string& source) {
  std::map<std::string, Tensor> mine;
  for (auto& [name, t] : tensors)
    if (param_index(name) >= 0) mine.emplace(name, std::move(t));
  load_params(mine, source);
}

void Model::load_params(std::map<std::string, Tensor>& tensors, const std::string& source) {
  std::vector<std::string> problems;
  for (const auto& p : manifest_.params) {
    auto it = tensors.find(p.name);
    if (it == tensors.end()) problems.push_back(fmt::format("missing parameter '{}' ({})", p.name, describe(p)));
    else if (it->second.dtype() != p.dtype || it->second.shape() != p.shape)
      problems.push_back(fmt::format("parameter '{}' is {} in the file, the model needs {}", p.name,
                                     it->second.type_string(), describe(p)));
  }
  for (const auto& [name, t] : tensors)
    if (param_index(name) < 0) problems.push_back(fmt::format("unexpected tensor '{}' ({})", name, t.type_string()));
  if (!problems.empty()) {
    std::string all;
    for (const auto& p : problems) all += "\n  " + p;
    throw Error(fmt::format("{}: does not fit model {}:{}", source, manifest_.model, all));
  }
  for (size_t i = 0; i < params_.size(); ++i) params_[i] = std::move(tensors.at(manifest_.params[i].name));
}

void Model::init(int64_t seed) {
  Tensor s = Tensor::from<int64_t>({}, {seed});
  run("init", {&s});
}

std::vector<Tensor> Model::run(const std::string& function, const std::vector<const Tensor*>& inputs) {
  std::vector<Tensor> outputs;
  for (const auto& o : manifest_.function(function).outputs)
    outputs.push_back(manifest_.check_numerics ? Tensor(o.dtype, o.shape) : Tensor::uninitialized(o.dtype, o.shape));
  run(function, inputs, outputs);
  return outputs;
}

void Model::run(const std::string& function, const std::vector<const Tensor*>& inputs, std::vector<Tensor>& outputs) {
  const FunctionSpec& spec = manifest_.function(function);
  Entry fn = entry_(function);
  if (!fn) throw Error(fmt::format("model {}: function '{}' is not in the compiled code", manifest_.model, function));
  if (inputs.size() != spec.inputs.size())
    throw Error(fmt::format("{}: expected {} inputs, got {}", function, spec.inputs.size(), inputs.size()));
  if (outputs.size() != spec.outputs.size())
    throw Error(fmt::format("{}: expected {} outputs, got {}", function, spec.outputs.size(), outputs.size()));
  std::vector<void*> in, out, params;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const BufferSpec& want = spec.inputs[i];
    if (inputs[i]->dtype() != want.dtype || inputs[i]->shape() != want.shape)
      throw Error(fmt::format("input '{}' must be {}, got {}", want.name, describe(want), inputs[i]->type_string()));
    in.push_back(const_cast<void*>(inputs[i]->data()));
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    const BufferSpec& want = spec.outputs[i];
    if (outputs[i].dtype() != want.dtype || outputs[i].shape() != want.shape)
      throw Error(fmt::format("output '{}' must be {}, got {}", want.name, describe(want), outputs[i].type_string()));
    out.push_back(outputs[i].data());
  }
  for (auto& p : params_) params.push_back(p.data());
  take_check_failure();  // a stale failure from an earlier, abandoned run is not ours
  fn(params.data(), in.data(), out.data(), workspace_.data());
  if (auto failure = take_check_failure()) {
    std::string msg = failure->code >= 0 && static_cast<size_t>(failure->code) < manifest_.checks.size()
                          ? manifest_.checks[failure->code]
                          : "a data check failed";
    auto at = msg.find("{}");
    if (at != std::string::npos) msg.replace(at, 2, std::to_string(failure->value));
    throw Error(fmt::format("{}: {}", manifest_.model, msg));
  }
}

}  // namespace stag::rt
