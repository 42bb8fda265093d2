#pragma once
/// A compiled model as the runtime sees it: its manifest (buffers by name, type and role),
/// its entry points, the parameter store and the workspace arena. The same code runs a model
/// compiled in process (JIT) and one linked ahead of time.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace stag::rt {

struct BufferSpec {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  bool trainable = false;  ///< parameters only
};

/// A kernel of a compiled function, for the profiler: where it came from and its static cost
/// per call (compiler/lower/cost.h).
struct KernelSpec {
  std::string name;
  std::string origin;  ///< the graph node, e.g. "%3 = matmul"
  double flops = 0;
  double bytes = 0;  ///< loads and stores, an upper bound on memory traffic
};

struct FunctionSpec {
  std::string name;
  std::vector<BufferSpec> inputs;
  std::vector<BufferSpec> outputs;
  std::vector<KernelSpec> kernels;  ///< in call order; ids in profiling builds count across functions
};

/// What a compiled program holds, written by the compiler as JSON and embedded in objects.
struct Manifest {
  std::string model;
  std::vector<BufferSpec> params;
  std::vector<FunctionSpec> functions;
  int64_t workspace_bytes = 0;
  std::vector<std::string> checks;  ///< messages of the data checks; "{}" is the bad value
  /// Compiled with --check-numerics: outputs start zeroed, since every element is checked.
  bool check_numerics = false;
  /// The model's graph attributes (batch, the training section train.*), each as JSON text.
  std::map<std::string, std::string> attrs;
  /// The instruction set the code was compiled for (runtime/cpu.h's names); empty in
  /// manifests written before it was recorded.
  std::string isa;

  const FunctionSpec& function(const std::string& name) const;
  static Manifest parse(const std::string& json);
};

/// The C signature of every program function.
using Entry = void (*)(void** params, void** inputs, void** outputs, void* workspace);

class Model {
 public:
  /// `entry` maps a function name to its entry point (nullptr if absent).
  Model(Manifest manifest, std::function<Entry(const std::string&)> entry);

  const Manifest& manifest() const { return manifest_; }
  std::vector<Tensor>& params() { return params_; }
  Tensor& param(const std::string& name);
  int param_index(const std::string& name) const;

  /// Fills every parameter by its init scheme, deterministically from `seed`.
  void init(int64_t seed);
  /// Takes every parameter from `tensors` (e.g. a safetensors file named `source`), as
  /// PyTorch's strict load_state_dict does: each must be there with its exact type, and no
  /// other tensor may be. Throws Error naming every problem; the parameters are unchanged then.
  void load_params(std::map<std::string, Tensor>& tensors, const std::string& source);
  /// The same, but tensors the model does not have (a checkpoint's optimizer state, when only
  /// the model is wanted) are ignored.
  void load_model_params(std::map<std::string, Tensor>& tensors, const std::string& source);
  /// Runs a function: inputs in manifest order, each of exactly the declared type. Returns
  /// the outputs in manifest order. Throws Error on a type mismatch or a failed data check.
  std::vector<Tensor> run(const std::string& function, const std::vector<const Tensor*>& inputs);
  /// The same, writing into `outputs`: tensors of the declared types the caller laid out (the
  /// gradients of a bucket side by side, BucketExchange::outputs).
  void run(const std::string& function, const std::vector<const Tensor*>& inputs, std::vector<Tensor>& outputs);

 private:
  Manifest manifest_;
  std::function<Entry(const std::string&)> entry_;
  std::vector<Tensor> params_;
  Tensor workspace_;
};

}  // namespace stag::rt
