// The GAN quality scores on cases with known answers: the Fréchet distance of a set to itself,
// to a shifted or scaled copy; the classifier score of confident, balanced and uniform predictions.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "runtime/data/rng.h"
#include "runtime/quality.h"

using namespace stag::rt;

namespace {

ClassifierView random_features(int64_t n, int64_t d, uint64_t seed) {
  ClassifierView v{n, 0, d, {}, {}};
  Rng rng(seed);
  // Correlated dimensions, so that the covariance is not diagonal.
  for (int64_t i = 0; i < n; ++i) {
    double shared = rng.uniform(-1, 1);
    for (int64_t j = 0; j < d; ++j) v.features.push_back(0.3 * static_cast<double>(j) + shared * static_cast<double>(j % 3) + rng.uniform(-1, 1));
  }
  return v;
}

double trace_of_covariance(const ClassifierView& v) {
  double t = 0;
  for (int64_t j = 0; j < v.dims; ++j) {
    double mu = 0, ss = 0;
    for (int64_t i = 0; i < v.n; ++i) mu += v.features[i * v.dims + j] / static_cast<double>(v.n);
    for (int64_t i = 0; i < v.n; ++i) ss += std::pow(v.features[i * v.dims + j] - mu, 2);
    t += ss / static_cast<double>(v.n - 1);
  }
  return t;
}

}  // namespace

TEST_CASE("quality: symmetric eigenvalues by Jacobi rotations", "[quality]") {
  auto l = symmetric_eigenvalues({2, 1, 0, 1, 2, 0, 0, 0, 5}, 3);
  std::sort(l.begin(), l.end());
  CHECK(l[0] == Approx(1).margin(1e-12));
  CHECK(l[1] == Approx(3).margin(1e-12));
  CHECK(l[2] == Approx(5).margin(1e-12));
}

TEST_CASE("quality: the Fréchet distance of features to themselves is 0, to a shifted copy the shift's square", "[quality]") {
  ClassifierView a = random_features(400, 12, 7);
  CHECK(std::abs(frechet_distance(a, a)) < 1e-8);
  ClassifierView b = a;
  for (int64_t i = 0; i < b.n; ++i)
    for (int64_t j = 0; j < b.dims; ++j) b.features[i * b.dims + j] += 0.5;
  CHECK(frechet_distance(a, b) == Approx(12 * 0.25).epsilon(1e-9));
}

TEST_CASE("quality: a copy scaled by k is (k-1)^2 (|mu|^2 + Tr S) away", "[quality]") {
  ClassifierView a = random_features(300, 10, 3), b = a;
  double k = 1.7, mu2 = 0;
  for (double& x : b.features) x *= k;
  for (int64_t j = 0; j < a.dims; ++j) {
    double mu = 0;
    for (int64_t i = 0; i < a.n; ++i) mu += a.features[i * a.dims + j] / static_cast<double>(a.n);
    mu2 += mu * mu;
  }
  CHECK(frechet_distance(a, b) == Approx((k - 1) * (k - 1) * (mu2 + trace_of_covariance(a))).epsilon(1e-8));
  CHECK(frechet_distance(a, random_features(300, 10, 4)) < 0.2 * frechet_distance(a, b));
}

TEST_CASE("quality: the classifier score is C for confident balanced predictions, 1 for identical ones", "[quality]") {
  ClassifierView v{40, 4, 0, {}, {}};
  for (int64_t i = 0; i < v.n; ++i)
    for (int64_t c = 0; c < 4; ++c) v.probs.push_back(c == i % 4 ? 1.0 : 0.0);
  CHECK(classifier_score(v) == Approx(4).epsilon(1e-12));
  for (int64_t i = 0; i < v.n; ++i)
    for (int64_t c = 0; c < 4; ++c) v.probs[i * 4 + c] = c == 2 ? 0.7 : 0.1;
  CHECK(classifier_score(v) == Approx(1).epsilon(1e-12));
}
