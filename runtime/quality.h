#pragma once
/// How good a generator's images are, judged by a trained classifier as the field judges them
/// by Inception: the classifier score (Inception Score's formula) and the Fréchet distance
/// between the classifier's penultimate features of generated and of real images (FID's).

#include <cstdint>
#include <vector>

#include "runtime/model.h"

namespace stag::rt {

/// A classifier's view of N images: class probabilities [N, C] and features [N, F], row-major.
struct ClassifierView {
  int64_t n = 0, classes = 0, dims = 0;
  std::vector<double> probs, features;
};

/// Runs the classifier's forward (outputs `logits` and `features`; a label input, if any, is fed
/// zeros) on the first `n` images of f32 [M, C, H, W], in the range the classifier was trained on.
ClassifierView classify(Model& classifier, const Tensor& images, int64_t n);

/// exp(E_x KL(p(y|x) || p(y))), p(y) the mean of p(y|x): from 1 (one class, or no confidence) to C.
double classifier_score(const ClassifierView& v);

/// |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) of the features' means and covariances
/// (unbiased, as numpy's cov): 0 for identical statistics.
double frechet_distance(const ClassifierView& a, const ClassifierView& b);

/// Eigenvalues of a symmetric matrix (n x n, row-major) by cyclic Jacobi rotations; `vectors`,
/// when given, receives the eigenvectors as columns.
std::vector<double> symmetric_eigenvalues(std::vector<double> a, int64_t n, std::vector<double>* vectors = nullptr);

}  // namespace stag::rt
