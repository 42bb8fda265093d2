#include "compiler/codegen/manifest.h"

#include <fmt/format.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "compiler/lower/cost.h"
#include "compiler/target/host.h"

namespace stag {

std::string manifest_json(const kir::Program& p) {
  using nlohmann::json;
  auto spec = [](const kir::Buffer& b) {
    json j = {{"name", b.name}, {"dtype", std::string(dtype_name(b.type.dtype))}, {"shape", b.type.dims}};
    if (b.kind == kir::BufKind::Param) j["trainable"] = b.trainable;
    return j;
  };
  json params = json::array(), functions = json::array();
  for (const auto* b : p.of_kind(kir::BufKind::Param)) params.push_back(spec(*b));
  for (size_t f = 0; f < p.functions.size(); ++f) {
    // In argument order: the index the compiled function reads each pointer at.
    auto args = [&](kir::BufKind kind) {
      std::vector<const kir::Buffer*> of;
      for (const auto& b : p.buffers)
        if (b.function == static_cast<int>(f) && b.kind == kind) of.push_back(&b);
      std::stable_sort(of.begin(), of.end(), [](auto* a, auto* b) { return a->index < b->index; });
      json out = json::array();
      for (const auto* b : of) out.push_back(spec(*b));
      return out;
    };
    json inputs = args(kir::BufKind::Input), outputs = args(kir::BufKind::Output);
    // The kernel table a profiling build reports against (kernel ids count through the
    // functions in order), with the static cost that turns times into GFLOP/s and GB/s.
    json kernels = json::array();
    for (const auto& k : p.functions[f].kernels) {
      kir::Cost c = kir::cost(p, k);
      kernels.push_back({{"name", k.name}, {"origin", k.origin}, {"flops", c.flops}, {"bytes", c.bytes}});
    }
    functions.push_back({{"name", p.functions[f].name}, {"inputs", inputs}, {"outputs", outputs}, {"kernels", kernels}});
  }
  // Graph attributes as JSON values: the runtime reads the training section's defaults here.
  json attrs = json::object();
  for (const auto& [key, value] : p.attrs) {
    struct ToJson {
      json operator()(int64_t v) const { return v; }
      json operator()(double v) const { return v; }
      json operator()(bool v) const { return v; }
      json operator()(const std::string& v) const { return v; }
      json operator()(const Ints& v) const { return v; }
      json operator()(const Floats& v) const { return v; }
      json operator()(DType v) const { return std::string(dtype_name(v)); }
    };
    attrs[key] = std::visit(ToJson{}, value);
  }
  json j = {{"model", p.name}, {"params", params}, {"functions", functions},
            {"workspace_bytes", p.workspace_bytes}, {"checks", p.checks}, {"check_numerics", p.check_numerics}, {"attrs", attrs},
            // LLVM compiles for every feature the host has, whatever STAG_ISA chose for the GEMM.
            {"isa", isa_name(detected_isa())}};
  return j.dump();
}

}  // namespace stag
