// Classifier score and Fréchet distance in double precision. The matrix square root's trace is
// the sum of the square roots of the eigenvalues of S_a^1/2 S_b S_a^1/2, which is symmetric and
// has the eigenvalues of S_a S_b, so two symmetric eigen-decompositions suffice.

#include "runtime/quality.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "runtime/error.h"

namespace stag::rt {

namespace {

int output_of(const FunctionSpec& f, const std::string& name) {
  for (size_t i = 0; i < f.outputs.size(); ++i)
    if (f.outputs[i].name == name) return static_cast<int>(i);
  throw Error(fmt::format("the classifier '{}' has no output '{}'{}", f.name, name,
                          name == "features" ? ": add `output features = ...` (its penultimate layer) to its forward" : ""));
}

using Matrix = std::vector<double>;

Matrix multiply(const Matrix& a, const Matrix& b, int64_t n) {
  Matrix c(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < n; ++j) c[i * n + j] += a[i * n + k] * b[k * n + j];
  return c;
}

std::vector<double> means(const ClassifierView& v) {
  std::vector<double> mu(static_cast<size_t>(v.dims), 0.0);
  for (int64_t i = 0; i < v.n; ++i)
    for (int64_t j = 0; j < v.dims; ++j) mu[j] += v.features[i * v.dims + j] / static_cast<double>(v.n);
  return mu;
}

Matrix covariance(const ClassifierView& v, const std::vector<double>& mu) {
  int64_t d = v.dims;
  Matrix s(static_cast<size_t>(d * d), 0.0);
  for (int64_t i = 0; i < v.n; ++i)
    for (int64_t a = 0; a < d; ++a)
      for (int64_t b = 0; b < d; ++b) s[a * d + b] += (v.features[i * d + a] - mu[a]) * (v.features[i * d + b] - mu[b]);
  for (double& x : s) x /= static_cast<double>(std::max<int64_t>(v.n - 1, 1));
  return s;
}

/// V diag(sqrt(max(λ, 0))) V^T of a symmetric positive semi-definite matrix.
Matrix psd_sqrt(const Matrix& s, int64_t n) {
  Matrix v;
  auto lambda = symmetric_eigenvalues(s, n, &v);
  Matrix r(static_cast<size_t>(n * n), 0.0);
  for (int64_t k = 0; k < n; ++k) {
    double root = std::sqrt(std::max(lambda[k], 0.0));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) r[i * n + j] += v[i * n + k] * root * v[j * n + k];
  }
  return r;
}

void rotate(Matrix& a, Matrix* v, int64_t n, int64_t p, int64_t q) {
  double theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q]);
  double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
  double c = 1 / std::sqrt(t * t + 1), s = t * c;
  for (int64_t k = 0; k < n; ++k) {
    double akp = a[k * n + p], akq = a[k * n + q];
    a[k * n + p] = c * akp - s * akq;
    a[k * n + q] = s * akp + c * akq;
  }
  for (int64_t k = 0; k < n; ++k) {
    double apk = a[p * n + k], aqk = a[q * n + k];
    a[p * n + k] = c * apk - s * aqk;
    a[q * n + k] = s * apk + c * aqk;
  }
  if (v)
    for (int64_t k = 0; k < n; ++k) {
      double vkp = (*v)[k * n + p], vkq = (*v)[k * n + q];
      (*v)[k * n + p] = c * vkp - s * vkq;
      (*v)[k * n + q] = s * vkp + c * vkq;
    }
}

double off_diagonal(const Matrix& a, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      if (i != j) sum += a[i * n + j] * a[i * n + j];
  return sum;
}

}  // namespace

std::vector<double> symmetric_eigenvalues(std::vector<double> a, int64_t n, std::vector<double>* vectors) {
  if (vectors) {
    vectors->assign(static_cast<size_t>(n * n), 0.0);
    for (int64_t i = 0; i < n; ++i) (*vectors)[i * n + i] = 1;
  }
  double scale = 0;
  for (double x : a) scale += x * x;
  for (int sweep = 0; sweep < 100 && off_diagonal(a, n) > 1e-26 * scale; ++sweep)
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = p + 1; q < n; ++q)
        if (a[p * n + q] != 0) rotate(a, vectors, n, p, q);
  std::vector<double> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(a[i * n + i]);
  return out;
}

ClassifierView classify(Model& classifier, const Tensor& images, int64_t n) {
  const FunctionSpec& f = classifier.manifest().function("forward");
  int logits = output_of(f, "logits"), features = output_of(f, "features");
  ClassifierView v{n, f.outputs[logits].shape.back(), f.outputs[features].shape.back(), {}, {}};
  int64_t batch = f.inputs.at(0).shape.at(0);
  size_t row = images.values<float>().size() / static_cast<size_t>(images.shape().at(0));
  std::vector<Tensor> inputs;
  for (const auto& in : f.inputs) inputs.emplace_back(in.dtype, in.shape);
  std::vector<const Tensor*> args;
  for (const auto& t : inputs) args.push_back(&t);
  for (int64_t b = 0; b < n; b += batch) {
    int64_t rows = std::min(batch, n - b);
    auto src = images.values<float>().subspan(static_cast<size_t>(b) * row, static_cast<size_t>(rows) * row);
    std::copy(src.begin(), src.end(), inputs[0].values<float>().begin());
    auto out = classifier.run("forward", args);
    auto z = out[logits].values<float>(), h = out[features].values<float>();
    for (int64_t i = 0; i < rows; ++i) {
      const float* r = z.data() + i * v.classes;
      double mx = *std::max_element(r, r + v.classes), sum = 0;
      for (int64_t c = 0; c < v.classes; ++c) sum += std::exp(r[c] - mx);
      for (int64_t c = 0; c < v.classes; ++c) v.probs.push_back(std::exp(r[c] - mx) / sum);
      for (int64_t j = 0; j < v.dims; ++j) v.features.push_back(h[i * v.dims + j]);
    }
  }
  return v;
}

double classifier_score(const ClassifierView& v) {
  std::vector<double> marginal(static_cast<size_t>(v.classes), 0.0);
  for (int64_t i = 0; i < v.n; ++i)
    for (int64_t c = 0; c < v.classes; ++c) marginal[c] += v.probs[i * v.classes + c] / static_cast<double>(v.n);
  double kl = 0;
  for (int64_t i = 0; i < v.n; ++i)
    for (int64_t c = 0; c < v.classes; ++c) {
      double p = v.probs[i * v.classes + c];
      if (p > 0) kl += p * (std::log(p) - std::log(marginal[c]));
    }
  return std::exp(kl / static_cast<double>(v.n));
}

double frechet_distance(const ClassifierView& a, const ClassifierView& b) {
  if (a.dims != b.dims) throw Error(fmt::format("features of {} and {} dimensions cannot be compared", a.dims, b.dims));
  int64_t d = a.dims;
  auto mu_a = means(a), mu_b = means(b);
  Matrix s_a = covariance(a, mu_a), s_b = covariance(b, mu_b);
  Matrix root_a = psd_sqrt(s_a, d);
  auto lambda = symmetric_eigenvalues(multiply(multiply(root_a, s_b, d), root_a, d), d);
  double dist = 0;
  for (int64_t j = 0; j < d; ++j) dist += (mu_a[j] - mu_b[j]) * (mu_a[j] - mu_b[j]) + s_a[j * d + j] + s_b[j * d + j];
  for (double l : lambda) dist -= 2 * std::sqrt(std::max(l, 0.0));
  // Identical statistics cancel to a rounding error of either sign; the distance is >= 0.
  return std::max(dist, 0.0);
}

}  // namespace stag::rt
