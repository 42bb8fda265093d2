// Whole catalog models in training mode: the directional derivative of the loss along a random
// unit direction, by central differences on the reference interpreter, equals the dot product of
// that direction with the autodiff gradient.

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "frontend/load.h"
#include "ir/builder.h"
#include "tests/autodiff/check.h"
#include "tests/util.h"

using namespace stag;
using namespace stag::test;

namespace {

// The exclusive upper bound of the integer values an input may hold: the vocabulary of the
// embeddings and the class count of the losses it reaches (through shape ops), or 4 (a step).
int64_t index_bound(const Graph& g, const Value* v) {
  int64_t bound = INT64_MAX;
  for (const auto& n : g.nodes)
    for (size_t i = 0; i < n->operands.size(); ++i) {
      if (n->operands[i] != v) continue;
      switch (n->op) {
        case Op::embedding: bound = std::min(bound, n->operands[0]->type.dims[0]); break;
        case Op::cross_entropy:
        case Op::nll: bound = std::min(bound, n->operands[0]->type.dims[1]); break;
        case Op::one_hot: bound = std::min(bound, n->i("num_classes")); break;
        case Op::reshape: case Op::flatten: case Op::transpose: case Op::slice: case Op::cast:
        case Op::broadcast_to: case Op::concat: case Op::split:
          for (const auto& r : n->results) bound = std::min(bound, index_bound(g, r.get()));
          break;
        default: break;
      }
    }
  return bound == INT64_MAX ? 4 : bound;
}

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// Inputs drawn at random; trainable weights scaled by 1/sqrt(fan_in) so activations stay O(1)
// through deep models; norm scales near 1; running variances positive.
std::map<std::string, RefTensor> random_feeds(const Graph& g, Rng& r) {
  std::map<std::string, RefTensor> feeds;
  for (const auto& n : g.nodes) {
    if (n->op != Op::input && n->op != Op::parameter) continue;
    const Value* v = n->result();
    RefTensor t = RefTensor::filled(v->type, 0);
    int64_t fan_in = v->type.rank() >= 2 ? t.numel() / v->type.dims[0] : 1;
    bool trainable = n->op == Op::parameter && n->b("trainable");
    for (double& x : t.data) {
      if (is_int(v->type.dtype)) x = static_cast<double>(r.pick(0, index_bound(g, v) - 1));
      else if (n->op == Op::input) x = r.normal();
      else if (has(v->name, "var")) x = r.uniform(0.5, 1.5);
      else if (!trainable) x = 0.1 * r.normal();
      else if (v->type.rank() >= 2) x = r.uniform(-1, 1) / std::sqrt(static_cast<double>(fan_in));
      else if (has(v->name, "weight") || has(v->name, "gamma") || has(v->name, "scale")) x = 1 + 0.1 * r.normal();
      else x = 0.1 * r.normal();
    }
    feeds[v->name] = std::move(t);
  }
  return feeds;
}

// A model without a loss of its own (the GAN's generator, whose loss is the discriminator's
// judgment of its image) is checked with a stand-in: a random weighting of its first output,
// i.e. a random upstream gradient, summed.
void add_standin_loss(Graph& g, Rng& r) {
  for (const auto& o : g.outputs)
    if (o.name == "loss") return;
  Builder b(g);
  Value* out = g.outputs.at(0).value;
  Floats w;
  for (int64_t i = 0; i < *checked_numel(out->type.dims); ++i) w.push_back(r.normal());
  b.output("loss", b.sum({b.mul({out, b.constant(out->type, w)})}));
}

struct ModelCase {
  std::filesystem::path file;
  std::string model;  // empty: the file's only model
  bool operator==(const ModelCase&) const = default;
};

std::vector<ModelCase> catalog() {
  std::vector<ModelCase> cases;
  std::regex model_decl(R"(^model\s+(\w+))");
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(STAG_SOURCE_DIR) / "models")) {
    if (e.path().extension() != ".stag") continue;
    std::string text = slurp(e.path());
    std::vector<std::string> names;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      std::smatch m;
      if (std::regex_search(line, m, model_decl)) names.push_back(m[1]);
    }
    if (names.size() <= 1) cases.push_back({e.path(), ""});
    else
      for (const auto& n : names) cases.push_back({e.path(), n});
  }
  std::sort(cases.begin(), cases.end(), [](const auto& a, const auto& b) {
    return std::tie(a.file, a.model) < std::tie(b.file, b.model);
  });
  return cases;
}

// One model: the directional check in f64, then the gradient graph compiled in f32.
void check_model(const ModelCase& mc, bool training = true) {
  std::string label = mc.file.filename().string() + (mc.model.empty() ? "" : ":" + mc.model) + (training ? "" : " (eval)");
  Diagnostics diags;
  LoadOptions options;
  options.batch = 2;
  options.training = training;
  options.model = mc.model;
  auto g = load_model(mc.file.string(), slurp(mc.file), options, diags);
  INFO(diags.render());
  REQUIRE(g);
  Rng r(std::hash<std::string>{}(label));
  add_standin_loss(*g, r);
  auto ad = differentiate_ok(*g);
  auto feeds = random_feeds(*g, r);
  RefResult res = interpret(*ad, feeds);
  // A random direction over every trainable parameter, and the gradient's dot product with it.
  std::map<std::string, std::vector<double>> dir;
  double dot = 0, gnorm = 0, dnorm = 0;
  int params = 0;
  for (const auto& n : g->nodes) {
    if (n->op != Op::parameter || !n->b("trainable")) continue;
    ++params;
    const std::string& p = n->result()->name;
    const RefTensor& grad = res.outputs.at(grad_output_name(p));
    auto& d = dir[p];
    for (int64_t i = 0; i < grad.numel(); ++i) {
      d.push_back(r.normal());
      dot += d.back() * grad.data[i];
      gnorm += grad.data[i] * grad.data[i];
      dnorm += d.back() * d.back();
    }
  }
  REQUIRE(params > 0);
  // A unit direction: a step of kEps moves the parameters by kEps in all, so that a ReLU or
  // max-pool kink is crossed only when an activation lies within about kEps of it.
  for (auto& [p, d] : dir)
    for (double& x : d) x /= std::sqrt(dnorm);
  dot /= std::sqrt(dnorm);
  dnorm = 1;
  auto shifted = [&](double t, const std::string& only = {}) {
    auto f = feeds;
    for (auto& [p, d] : dir)
      if (only.empty() || p == only)
        for (size_t i = 0; i < d.size(); ++i) f.at(p).data[i] += t * d[i];
    return loss_at(*g, f);
  };
  double fd = (shifted(kEps) - shifted(-kEps)) / (2 * kEps);
  // Relative to |grad| |direction|: the dot product of random vectors can nearly cancel.
  double scale = std::sqrt(gnorm * dnorm), err = std::fabs(fd - dot);
  INFO(fmt::format("{}: {} parameters; finite differences {} autodiff {} (|g||v| = {})", label, params, fd, dot, scale));
  CHECK(err <= kAtol + kRtol * std::max(std::fabs(fd), 1e-2 * scale));
  if (err > kAtol + kRtol * std::max(std::fabs(fd), 1e-2 * scale))
    for (auto& [p, d] : dir) {  // which parameter's gradient is off
      double pd = 0;
      const RefTensor& grad = res.outputs.at(grad_output_name(p));
      for (size_t i = 0; i < d.size(); ++i) pd += d[i] * grad.data[i];
      double pfd = (shifted(kEps, p) - shifted(-kEps, p)) / (2 * kEps);
      WARN(fmt::format("  {}: finite differences {:.10g} autodiff {:.10g}", p, pfd, pd));
    }
  // The same gradient graph compiled to native code (f32), against the reference.
  std::map<std::string, RefTensor> rounded = feeds;
  for (auto& [name, t] : rounded)
    for (double& x : t.data) x = f32(x);
  check_compiled(*ad, rounded, label);
  WARN(fmt::format("{}: directional derivative {:.10g} vs autodiff {:.10g}, error {:.2g}", label, fd, dot, err));
}

ModelCase catalog_case(const std::string& file, const std::string& model = {}) {
  return {std::filesystem::path(STAG_SOURCE_DIR) / "models" / file, model};
}

// Every model of the catalog, one test each (they take seconds to compile); none is skipped.
const std::vector<ModelCase>& checked_models() {
  static const std::vector<ModelCase> all = {
      catalog_case("alexnet.stag"), catalog_case("autoencoder.stag"), catalog_case("bert.stag"),
      catalog_case("char_rnn.stag"), catalog_case("dcgan.stag", "discriminator"),
      catalog_case("dcgan.stag", "generator"), catalog_case("gpt.stag"), catalog_case("gru_lm.stag"),
      catalog_case("lenet5.stag"), catalog_case("lstm_lm.stag"), catalog_case("mlp.stag"),
      catalog_case("resnet.stag"), catalog_case("vgg.stag"), catalog_case("vit_tiny.stag"),
      catalog_case("bow_logreg.stag"), catalog_case("row_rnn.stag")};
  return all;
}

}  // namespace

TEST_CASE("every catalog model is checked", "[autodiff][models]") {
  for (const auto& mc : catalog()) {
    INFO(mc.file.string() << " " << mc.model);
    CHECK(std::find(checked_models().begin(), checked_models().end(), mc) != checked_models().end());
  }
}

#define MODEL_TEST(name, i) \
  TEST_CASE("catalog " name ": directional derivative equals autodiff, compiled gradients equal the reference", "[autodiff][models]") { check_model(checked_models().at(i)); }
MODEL_TEST("alexnet", 0)
MODEL_TEST("autoencoder", 1)
MODEL_TEST("bert", 2)
MODEL_TEST("char_rnn", 3)
MODEL_TEST("dcgan discriminator", 4)
MODEL_TEST("dcgan generator", 5)
MODEL_TEST("gpt", 6)
MODEL_TEST("gru_lm", 7)
MODEL_TEST("lenet5", 8)
MODEL_TEST("lstm_lm", 9)
MODEL_TEST("mlp", 10)
MODEL_TEST("resnet", 11)
MODEL_TEST("vgg", 12)
MODEL_TEST("vit_tiny", 13)
MODEL_TEST("bow_logreg", 14)
MODEL_TEST("row_rnn", 15)

// Inference mode too, where batch norm uses its running statistics and dropout is the identity.
TEST_CASE("catalog resnet and mlp in inference mode: directional derivative equals autodiff", "[autodiff][models]") {
  check_model(checked_models().at(11), false);
  check_model(checked_models().at(10), false);
}
