// Sampling from language models. The filters follow transformers' logits warpers in their order
// (temperature, top-k, top-p), so a seed's text depends on these settings alone.
#include "runtime/sample.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>

#include "runtime/data/rng.h"
#include "runtime/error.h"

namespace stag::rt {

namespace {

int64_t argmax(std::span<const float> z) { return std::max_element(z.begin(), z.end()) - z.begin(); }

// Zeroes every probability below the k-th largest (ties with it stay).
void keep_top_k(std::vector<double>& p, int64_t k) {
  if (k <= 0 || k >= static_cast<int64_t>(p.size())) return;
  std::vector<double> sorted = p;
  std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<>());
  double kth = sorted[static_cast<size_t>(k - 1)];
  for (double& x : p)
    if (x < kth) x = 0;
}

// Drops the least likely tokens while their running total stays <= 1 - top_p; the most likely
// token always stays.
void keep_top_p(std::vector<double>& p, double top_p) {
  if (top_p >= 1) return;
  std::vector<size_t> order(p.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] < p[b]; });
  double total = std::accumulate(p.begin(), p.end(), 0.0), cum = 0;
  for (size_t i = 0; i + 1 < order.size(); ++i) {
    cum += p[order[i]] / total;
    if (cum > 1 - top_p) break;
    p[order[i]] = 0;
  }
}

}  // namespace

std::vector<double> sampling_distribution(std::span<const float> logits, const SamplingOptions& o) {
  std::vector<double> p(logits.size());
  double top = logits[static_cast<size_t>(argmax(logits))];
  for (size_t i = 0; i < p.size(); ++i) p[i] = std::exp((logits[i] - top) / o.temperature);
  keep_top_k(p, o.top_k);
  keep_top_p(p, o.top_p);
  double total = std::accumulate(p.begin(), p.end(), 0.0);
  for (double& x : p) x /= total;
  return p;
}

int64_t sample_token(std::span<const float> logits, const SamplingOptions& o, uint64_t counter) {
  if (o.temperature == 0) return argmax(logits);
  std::vector<double> p = sampling_distribution(logits, o);
  double u = Rng(derive_seed(o.seed, RngStream::sample, counter)).uniform01(), cum = 0;
  int64_t last = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0) continue;
    cum += p[i];
    last = static_cast<int64_t>(i);
    if (u < cum) return last;
  }
  return last;  // rounding left u above the total: the last token that can be drawn
}

bool has_function(const Manifest& m, const std::string& name) {
  return std::any_of(m.functions.begin(), m.functions.end(), [&](const FunctionSpec& f) { return f.name == name; });
}

Decoder::Decoder(Model& model, std::string function, std::string prefill)
    : model_(model), function_(std::move(function)), prefill_(has_function(model.manifest(), prefill) ? prefill : "") {
  const FunctionSpec& f = model.manifest().function(function_);
  for (size_t i = 0; i < f.inputs.size(); ++i) {
    const BufferSpec& in = f.inputs[i];
    inputs_.push_back(Tensor(in.dtype, in.shape));
    if (in.name == "pos") pos_in_ = static_cast<int>(i);
    for (size_t o = 0; o < f.outputs.size(); ++o)
      if (f.outputs[o].name == in.name + ".next") carried_.emplace_back(static_cast<int>(i), static_cast<int>(o));
  }
  for (size_t o = 0; o < f.outputs.size(); ++o)
    if (f.outputs[o].name == "logits") logits_out_ = static_cast<int>(o);
  if (logits_out_ < 0 || f.inputs.empty()) throw Error(fmt::format("{}: a decode step needs a token input and a `logits` output", function_));
  vocab_ = f.outputs[static_cast<size_t>(logits_out_)].shape.back();
  auto it = model.manifest().attrs.find("context");
  if (pos_in_ >= 0) {
    if (it == model.manifest().attrs.end()) throw Error(fmt::format("{}: the decode step does not say its context length", function_));
    context_ = nlohmann::json::parse(it->second).get<int64_t>();
  }
}

void Decoder::reset() {
  for (Tensor& t : inputs_) t = Tensor(t.dtype(), t.shape());
  window_.clear();
  start_ = 0;
}

void Decoder::feed(int64_t token) {
  inputs_[static_cast<size_t>(token_in_)].values<int64_t>()[0] = token;
  if (pos_in_ >= 0) inputs_[static_cast<size_t>(pos_in_)].values<int64_t>()[0] = position();
  std::vector<const Tensor*> args;
  for (const Tensor& t : inputs_) args.push_back(&t);
  auto out = model_.run(function_, args);
  for (auto [i, o] : carried_) inputs_[static_cast<size_t>(i)] = std::move(out[static_cast<size_t>(o)]);
  logits_ = std::move(out[static_cast<size_t>(logits_out_)]);
  window_.push_back(token);
}

// Fills the cache from position 0 with `tokens` (at most the context) in one prefill call: its
// cache outputs, of the same names, become the decode step's inputs.
void Decoder::encode(std::span<const int64_t> tokens) {
  reset();
  const FunctionSpec& f = model_.manifest().function(prefill_);
  std::vector<Tensor> in;
  for (const BufferSpec& b : f.inputs) in.push_back(Tensor(b.dtype, b.shape));
  std::copy(tokens.begin(), tokens.end(), in[0].values<int64_t>().begin());
  std::vector<const Tensor*> args;
  for (const Tensor& t : in) args.push_back(&t);
  auto out = model_.run(prefill_, args);
  const FunctionSpec& d = model_.manifest().function(function_);
  for (size_t o = 0; o < f.outputs.size(); ++o) {
    for (auto [i, next] : carried_)
      if (d.outputs[static_cast<size_t>(next)].name == f.outputs[o].name) inputs_[static_cast<size_t>(i)] = std::move(out[o]);
    if (f.outputs[o].name == "logits") {
      auto v = static_cast<size_t>(vocab_);
      logits_ = Tensor::from<float>({vocab_}, out[o].values<float>().subspan((tokens.size() - 1) * v, v));
    }
  }
  window_.assign(tokens.begin(), tokens.end());
}

void Decoder::slide() {
  int64_t keep = context_ / 2, start = start_ + position() - keep;
  std::vector<int64_t> last(window_.end() - keep, window_.end());
  if (!prefill_.empty() && keep > 0) {
    encode(last);
  } else {
    reset();
    for (int64_t t : last) feed(t);
  }
  start_ = start;
}

std::span<const float> Decoder::feed_all(std::span<const int64_t> tokens) {
  bool whole = !prefill_.empty() && position() == 0 && !tokens.empty() && static_cast<int64_t>(tokens.size()) <= context_;
  if (whole) {
    encode(tokens);
    return logits_.values<float>();
  }
  std::span<const float> z;
  for (int64_t t : tokens) z = step(t);
  return z;
}

std::span<const float> Decoder::step(int64_t token) {
  if (token < 0 || token >= vocab_) throw Error(fmt::format("token {} is not one of the {} in the vocabulary", token, vocab_));
  if (context_ > 0 && position() == context_) slide();
  feed(token);
  return logits_.values<float>();
}

std::vector<int64_t> generate(Decoder& d, std::span<const int64_t> prompt, int64_t n, const SamplingOptions& o,
                              const std::function<void(int64_t)>& emit) {
  if (prompt.empty()) throw Error("generation needs a prompt of at least one token");
  std::span<const float> logits = d.feed_all(prompt);
  std::vector<int64_t> drawn;
  for (int64_t i = 0; i < n; ++i) {
    drawn.push_back(sample_token(logits, o, static_cast<uint64_t>(i)));
    if (emit) emit(drawn.back());
    if (i + 1 < n) logits = d.step(drawn.back());
  }
  return drawn;
}

std::vector<float> forward_last_logits(Model& model, std::span<const int64_t> tokens) {
  const FunctionSpec& f = model.manifest().function("forward");
  int64_t T = f.inputs[0].shape[1], V = 0;
  if (tokens.empty() || static_cast<int64_t>(tokens.size()) > T) throw Error("forward_last_logits: 1 to T tokens");
  std::vector<Tensor> inputs;
  for (const BufferSpec& in : f.inputs) inputs.push_back(Tensor(in.dtype, in.shape));
  std::copy(tokens.begin(), tokens.end(), inputs[0].values<int64_t>().begin());
  std::vector<const Tensor*> args;
  for (const Tensor& t : inputs) args.push_back(&t);
  auto out = model.run("forward", args);
  for (size_t o = 0; o < f.outputs.size(); ++o)
    if (f.outputs[o].name == "logits") {
      V = f.outputs[o].shape.back();
      auto z = out[o].values<float>().subspan(static_cast<size_t>((static_cast<int64_t>(tokens.size()) - 1) * V), static_cast<size_t>(V));
      return {z.begin(), z.end()};
    }
  throw Error("forward: no `logits` output");
}

std::vector<int64_t> generate_full(Model& model, std::span<const int64_t> prompt, int64_t n, const SamplingOptions& o,
                                   const std::function<void(int64_t)>& emit) {
  auto T = static_cast<size_t>(model.manifest().function("forward").inputs[0].shape[1]);
  std::vector<int64_t> seq(prompt.begin(), prompt.end()), drawn;
  for (int64_t i = 0; i < n; ++i) {
    size_t from = seq.size() > T ? seq.size() - T : 0;
    auto logits = forward_last_logits(model, std::span<const int64_t>(seq).subspan(from));
    drawn.push_back(sample_token(logits, o, static_cast<uint64_t>(i)));
    seq.push_back(drawn.back());
    if (emit) emit(drawn.back());
  }
  return drawn;
}

}  // namespace stag::rt
