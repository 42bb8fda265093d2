#pragma once
/// The commands' view of a `gan` declaration: finding it in a model file and compiling its
/// program (compiler/train/gan.h) for training and sampling.

#include <optional>

#include "compiler/jit/jit_model.h"
#include "compiler/train/gan.h"
#include "frontend/gan.h"
#include "runtime/quality.h"
#include "tools/cli.h"

namespace stag::cli {

/// The GAN a command's model arguments name (see fe::find_gan); nullopt for IR files and for
/// `.stag` files without a GAN. Prints diagnostics and throws Failure on error.
std::optional<fe::GanLookup> find_gan(const ModelArgs& args);

/// Throws the Failure for training one model of a GAN alone.
[[noreturn]] void refuse_member(const ModelArgs& args, const fe::GanSpec& spec);

/// The GAN's three graphs (compiler/train/gan.h), the sampling graph carrying the settings the
/// runtime reads (gan.*, train.epochs, train.data). Prints diagnostics and throws Failure on error.
GanGraphs gan_graphs(const TrainProgramArgs& program, const fe::GanSpec& spec);

/// The GAN's graphs for one of `processes` data-parallel processes (GanOptions::split): the batch
/// (--batch, else the generator's) is the global one and each process's steps take its share; the
/// sampling graph carries the attribute dp.processes. Throws Failure when the batch does not split
/// evenly.
GanGraphs gan_split_graphs(const TrainProgramArgs& program, const fe::GanSpec& spec, int processes);

/// A split GAN's functions: forward (sampling), d_gradients, d_update, g_gradients, g_update.
std::vector<std::pair<std::string, const Graph*>> gan_split_functions(const GanGraphs& g);

/// The functions a GAN program compiles: `forward` (sampling) and, when the discriminator steps
/// once per generator step, `pair_step` (both steps in one function, G(z) computed once; built
/// into `g`), else or when `separate` `d_step` and `g_step`.
std::vector<std::pair<std::string, const Graph*>> gan_functions(GanGraphs& g, const fe::GanSpec& spec, bool separate);

/// The kernels of a GAN program's steps (every function but sampling's).
size_t gan_step_kernels(const kir::Program& p);

/// Builds and compiles the GAN's functions (gan_functions). The optimizer flags of `program`
/// apply to both models.
CompiledModel compile_gan(const TrainProgramArgs& program, const fe::GanSpec& spec, bool profile, bool separate = false);

/// The GAN's sampling function alone (`forward`: noise to images), for commands that only draw.
CompiledModel compile_gan_sampler(const ModelArgs& model, const fe::GanSpec& spec);

/// `--classifier MODEL --classifier-weights CKPT [--score-count N]`: a trained classifier (with
/// `logits` and `features` outputs) that scores a GAN's images.
struct ScoreArgs {
  std::string model, weights;
  int64_t count = 10000;

  void add_to(CLI::App& app);
  bool enabled() const { return !model.empty(); }
};

/// The classifier compiled, and its view of the real test images.
class GanScorer {
 public:
  /// `low`, `high`: the generator's range, mapped to the classifier's [0, 1].
  GanScorer(const ScoreArgs& args, const std::string& data, double low, double high);
  struct Scores {
    double classifier_score, frechet_distance;
  };
  /// Scores `count` images the generator makes from noise of `seed`.
  Scores generator(rt::Model& gan, uint64_t seed);
  /// The same for images given in [0, 1] (the test set itself, noise), for calibration.
  Scores images(const rt::Tensor& images01, int64_t n);
  const rt::Tensor& test_images() const { return test_; }

 private:
  CompiledModel classifier_;
  rt::Tensor test_;
  rt::ClassifierView real_;
  int64_t count_;
  double low_, high_;
};

/// `stag eval` of a GAN: the classifier scores of its generator's images, beside those of the test
/// images themselves (two halves) and of uniform noise, for scale.
int run_gan_eval(const ModelArgs& model, const std::string& weights, const std::string& data, const ScoreArgs& score,
                 const fe::GanSpec& spec);

/// `stag sample` of a GAN: a PNG grid of generated images (flags in tools/cmd_sample.cpp).
struct GanSampleArgs {
  std::string weights, out = "samples.png";
  int64_t count = 64, columns = 8;
  int scale = 2;
  uint64_t seed = 0;
};
int run_gan_sample(const ModelArgs& model, const GanSampleArgs& args, const fe::GanSpec& spec);

/// True when the model has a `reconstruction` output (an autoencoder).
bool reconstructs(const ModelArgs& model);
/// `stag sample` of an autoencoder: rows of test images, each above its reconstruction.
int run_reconstruction_sample(const ModelArgs& model, const GanSampleArgs& args);

}  // namespace stag::cli
