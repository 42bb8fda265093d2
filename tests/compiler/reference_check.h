#pragma once
// A compiled forward against the reference interpreter, for the kernel tests.

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "compiler/jit/jit_model.h"
#include "ir/random.h"
#include "ir/reference.h"
#include "runtime/thread_pool.h"
#include "tests/util.h"

namespace stag::test {

// g's compiled forward at `threads` and the reference interpreter, both on standard-normal
// inputs (stream `seed`, rounded to f32 whatever the input's type, f32 or f64).
struct ForwardPair {
  std::vector<rt::Tensor> got;
  RefResult want;
};

inline ForwardPair run_both(const Graph& g, const CompiledModel& compiled, int64_t seed, int threads) {
  std::map<std::string, RefTensor> feeds;
  std::vector<rt::Tensor> inputs;
  const auto& spec = compiled.model->manifest().function("forward");
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    rt::Tensor t(spec.inputs[i].dtype, spec.inputs[i].shape);
    std::vector<double> values;
    for (int64_t e = 0; e < t.numel(); ++e) {
      auto v = static_cast<float>(random_standard_normal(seed, static_cast<int64_t>(i), e));
      if (spec.inputs[i].dtype == rt::DType::f32) t.values<float>()[e] = v;
      else t.values<double>()[e] = v;
      values.push_back(v);
    }
    feeds[spec.inputs[i].name] = RefTensor(g.find(spec.inputs[i].name)->type, values);
    inputs.push_back(std::move(t));
  }
  std::vector<const rt::Tensor*> ptrs;
  for (const auto& t : inputs) ptrs.push_back(&t);
  stag_set_num_threads(threads);
  auto got = compiled.model->run("forward", ptrs);
  stag_set_num_threads(0);
  return {std::move(got), interpret(g, feeds)};
}

// Runs g's compiled forward at `threads` on standard-normal inputs (stream `seed`) and checks
// its one output against the reference interpreter: f32 sums of K products of standard
// normals round within about sqrt(K) ulps. `what` names the case in a failure.
inline void check_against_reference(const Graph& g, const CompiledModel& compiled, int64_t seed, double K, int threads, const std::string& what) {
  ForwardPair run = run_both(g, compiled, seed, threads);
  auto got = test::to_doubles(run.got[0]);
  const auto& want = run.want.outputs.begin()->second.data;
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO(fmt::format("{} threads {}: element {} got {} want {}", what, threads, i, got[i], want[i]));
    REQUIRE(std::fabs(got[i] - want[i]) <= 1e-5 * std::sqrt(K) * (1 + std::fabs(want[i])));
  }
}

}  // namespace stag::test
