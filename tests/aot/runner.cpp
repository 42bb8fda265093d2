// A program linked with an object from `stag compile` and the runtime alone (no LLVM): it
// initialises the model from a seed, runs forward on deterministic inputs, and writes inputs
// and outputs as .npy so the test can compare them with `stag run` on the same data.
// Usage: aot_runner OUT_DIR SEED

#include MODEL_HEADER

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "runtime/error.h"
#include "runtime/model.h"
#include "runtime/npy.h"

using namespace stag::rt;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s OUT_DIR SEED\n", argv[0]);
    return 2;
  }
  try {
    std::filesystem::path out = argv[1];
    std::filesystem::create_directories(out);
    Model model(Manifest::parse(MODEL_MANIFEST), [](const std::string& name) -> Entry {
      for (const auto& f : MODEL_FUNCTIONS)
        if (name == f.name) return f.entry;
      return nullptr;
    });
    model.init(std::strtoll(argv[2], nullptr, 10));
    std::vector<Tensor> inputs;
    std::vector<const Tensor*> ptrs;
    for (const auto& spec : model.manifest().function("forward").inputs) {
      Tensor t(spec.dtype, spec.shape);
      for (int64_t i = 0; i < t.numel(); ++i) {
        if (spec.dtype == DType::f32) t.values<float>()[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
        else if (spec.dtype == DType::i64) t.values<int64_t>()[i] = (i * 7) % 10;
        else throw Error("the runner fills f32 and i64 inputs only");
      }
      write_npy(out / ("in_" + spec.name + ".npy"), t);
      inputs.push_back(std::move(t));
    }
    for (const auto& t : inputs) ptrs.push_back(&t);
    auto outputs = model.run("forward", ptrs);
    const auto& specs = model.manifest().function("forward").outputs;
    for (size_t i = 0; i < outputs.size(); ++i) write_npy(out / (specs[i].name + ".npy"), outputs[i]);
    std::printf("%zu outputs written to %s\n", outputs.size(), out.c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "aot_runner: %s\n", e.what());
    return 1;
  }
  return 0;
}
