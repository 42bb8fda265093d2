// The commands that use a trained GAN: `stag sample` draws a grid of its images, `stag eval`
// scores them with a trained classifier.

#include <fmt/format.h>

#include "ir/train_config.h"
#include "runtime/data/dataset.h"
#include "runtime/data/rng.h"
#include "runtime/trainer.h"
#include "runtime/error.h"
#include "runtime/gan_trainer.h"
#include "runtime/image.h"
#include "runtime/run_dir.h"
#include "runtime/safetensors.h"
#include "runtime/state_map.h"
#include "tools/gan_program.h"

namespace stag::cli {

namespace {

/// The generator's weights from a checkpoint (or run folder) of the GAN, checked to be its own.
void load_generator(rt::Model& sampler, const std::string& weights, const fe::GanSpec& spec) {
  std::string path = rt::resolve_checkpoint(weights, rt::Prefer::last).string();
  auto file = rt::read_safetensors(path);
  auto model = file.metadata.find("model");
  if (model != file.metadata.end() && model->second != spec.name)
    throw rt::Error(fmt::format("{} is a checkpoint of '{}', not of the GAN '{}'", path, model->second, spec.name));
  sampler.load_model_params(file.tensors, path);
}

double range_attr(const rt::Manifest& m, int i) { return rt::gan_settings_from_manifest(m).image_low * (1 - i) + rt::gan_settings_from_manifest(m).image_high * i; }

rt::Tensor uniform_images(const rt::Tensor& like, int64_t n, uint64_t seed) {
  rt::Shape shape = like.shape();
  shape[0] = n;
  rt::Tensor t(rt::DType::f32, shape);
  rt::Rng rng(seed);
  for (float& x : t.values<float>()) x = static_cast<float>(rng.uniform01());
  return t;
}

void print_scores(const char* what, const GanScorer::Scores& s) {
  fmt::print("{:<28} {:>16.4f} {:>16.4f}\n", what, s.classifier_score, s.frechet_distance);
}

}  // namespace

int run_gan_sample(const ModelArgs& model, const GanSampleArgs& args, const fe::GanSpec& spec) {
  CompiledModel c = compile_gan_sampler(model, spec);
  try {
    load_generator(*c.model, args.weights, spec);
    rt::Tensor images = rt::generate_images(*c.model, rt::gan_noise(c.model->manifest(), args.count, args.seed));
    rt::Shape shape = images.shape();
    shape[0] = args.count;
    rt::Tensor first = rt::Tensor::from<float>(shape, images.values<float>().subspan(0, images.values<float>().size() / images.shape()[0] * args.count));
    rt::GridOptions o{args.columns, static_cast<float>(range_attr(c.model->manifest(), 0)),
                      static_cast<float>(range_attr(c.model->manifest(), 1)), 2, args.scale};
    rt::write_image_grid(args.out, first, o);
    fmt::print("wrote {} images of {} ({}) to {}\n", args.count, spec.name, spec.generator, args.out);
  } catch (const rt::Error& e) {
    throw Failure{kExitBadInput, e.what()};
  }
  return kExitOk;
}

int run_gan_eval(const ModelArgs& model, const std::string& weights, const std::string& data, const ScoreArgs& score,
                 const fe::GanSpec& spec) {
  if (!score.enabled()) throw Failure{kExitUsage, "a GAN is scored by a classifier: give --classifier MODEL --classifier-weights CKPT"};
  CompiledModel c = compile_gan_sampler(model, spec);
  try {
    load_generator(*c.model, weights, spec);
    double low = range_attr(c.model->manifest(), 0), high = range_attr(c.model->manifest(), 1);
    GanScorer scorer(score, data, low, high);
    int64_t n = scorer.test_images().shape()[0];
    fmt::print("scores by {} against the {} test images of {}:\n", score.model, n, data);
    fmt::print("{:<28} {:>16} {:>16}\n", "images", "classifier_score", "frechet_distance");
    print_scores("test images", scorer.images(scorer.test_images(), n));
    print_scores("uniform noise", scorer.images(uniform_images(scorer.test_images(), score.count, 1), score.count));
    print_scores(fmt::format("{} ({} images)", spec.name, score.count).c_str(), scorer.generator(*c.model, 1));
  } catch (const rt::Error& e) {
    throw Failure{kExitBadInput, e.what()};
  }
  return kExitOk;
}

namespace {

/// Rows of `columns` test images, each above its reconstruction: f32 [2 * ceil(n / c) * c, C, H, W].
rt::Tensor originals_over_reconstructions(const rt::Tensor& x, const std::vector<float>& recon, int64_t n, int64_t columns) {
  rt::Shape shape = x.shape();
  int64_t rows = (n + columns - 1) / columns;
  shape[0] = 2 * rows * columns;
  rt::Tensor grid(rt::DType::f32, shape);
  size_t size = x.values<float>().size() / static_cast<size_t>(x.shape()[0]);
  auto out = grid.values<float>();
  for (int64_t i = 0; i < n; ++i) {
    int64_t r = i / columns, c = i % columns;
    auto src = x.values<float>().subspan(static_cast<size_t>(i) * size, size);
    std::copy(src.begin(), src.end(), out.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(2 * r * columns + c) * size));
    std::copy(recon.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(i) * size), recon.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(i + 1) * size),
              out.begin() + static_cast<ptrdiff_t>(static_cast<size_t>((2 * r + 1) * columns + c) * size));
  }
  return grid;
}

}  // namespace

int run_reconstruction_sample(const ModelArgs& model, const GanSampleArgs& args) {
  auto graph = model.load();
  CompiledModel c = compile_jit(*graph, {.passes = model.passes});
  try {
    std::string path = rt::resolve_checkpoint(args.weights, rt::Prefer::best).string();
    auto file = rt::read_safetensors(path);
    c.model->load_model_params(file.tensors, path);
    const auto& f = c.model->manifest().function("forward");
    int out = -1;
    for (size_t i = 0; i < f.outputs.size(); ++i)
      if (f.outputs[i].name == "reconstruction") out = static_cast<int>(i);
    rt::Dataset test = rt::load_example_split(train_config(*graph).data.value_or("fashion-mnist"), true);
    rt::materialize_features(test);
    int64_t batch = f.inputs.at(0).shape.at(0), n = std::min<int64_t>(args.count, test.size());
    std::vector<float> recon;
    size_t size = test.features.values<float>().size() / static_cast<size_t>(test.size());
    for (int64_t b = 0; b < n; b += batch) {
      rt::Tensor x(rt::DType::f32, f.inputs[0].shape);
      size_t rows = static_cast<size_t>(std::min(batch, test.size() - b));
      auto src = test.features.values<float>().subspan(static_cast<size_t>(b) * size, rows * size);
      std::copy(src.begin(), src.end(), x.values<float>().begin());
      auto r = c.model->run("forward", {&x});
      auto v = r[static_cast<size_t>(out)].values<float>();
      recon.insert(recon.end(), v.begin(), v.end());
    }
    rt::GridOptions o{args.columns, 0.f, 1.f, 2, args.scale};
    rt::write_image_grid(args.out, originals_over_reconstructions(test.features, recon, n, args.columns), o);
    fmt::print("wrote {} test images of {} above their reconstructions to {}\n", n, graph->name, args.out);
  } catch (const rt::Error& e) {
    throw Failure{kExitBadInput, e.what()};
  }
  return kExitOk;
}

bool reconstructs(const ModelArgs& model) {
  auto graph = model.load();
  for (const auto& o : graph->outputs)
    if (o.name == "reconstruction") return true;
  return false;
}

}  // namespace stag::cli
