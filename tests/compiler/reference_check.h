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

// Runs g's compiled forward at `threads` on standard-normal inputs (stream `seed`) and checks
// its one output against the reference interpreter: f32 sums of K products of standard
// normals round within about sqrt(K) ulps. `what` names the case in a failure.
inline void check_against_reference(const Graph& g, const CompiledModel& compiled, int64_t seed, double K, int threads, const std::string& what) {
  std::map<std::string, RefTensor> feeds;
  std::vector<rt::Tensor> inputs;
  const auto& spec = compiled.model->manifest().function("forward");
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    rt::Tensor t(spec.inputs[i].dtype, spec.inputs[i].shape);
    std::vector<double> values;
    for (int64_t e = 0; e < t.numel(); ++e) {
      auto v = static_cast<float>(random_standard_normal(seed, static_cast<int64_t>(i), e));
      t.values<float>()[e] = v;
      values.push_back(v);
    }
    feeds[spec.inputs[i].name] = RefTensor(g.find(spec.inputs[i].name)->type, values);
    inputs.push_back(std::move(t));
  }
  std::vector<const rt::Tensor*> ptrs;
  for (const auto& t : inputs) ptrs.push_back(&t);
  stag_set_num_threads(threads);
  auto got = test::to_doubles(compiled.model->run("forward", ptrs)[0]);
  stag_set_num_threads(0);
  RefResult ref = interpret(g, feeds);
  const auto& want = ref.outputs.begin()->second.data;
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO(fmt::format("{} threads {}: element {} got {} want {}", what, threads, i, got[i], want[i]));
    REQUIRE(std::fabs(got[i] - want[i]) <= 1e-5 * std::sqrt(K) * (1 + std::fabs(want[i])));
  }
}

}  // namespace stag::test
