#pragma once
/// Text from a language model: drawing a token from logits (temperature, top-k and top-p with
/// Hugging Face's semantics, a counter-based generator so that a seed repeats), and a decoder
/// that runs a compiled decode step (the frontend's LoadOptions::decode) one token at a time,
/// carrying its key/value caches or recurrent state from call to call.

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "runtime/model.h"

namespace stag::rt {

/// How the next token is drawn.
struct SamplingOptions {
  double temperature = 1.0;  ///< 0: greedy (the argmax)
  int64_t top_k = 0;         ///< keep the k most likely tokens (and ties with the k-th); 0: all
  double top_p = 1.0;        ///< nucleus: drop the least likely tokens whose total is <= 1 - top_p
  uint64_t seed = 0;
};

/// The distribution a token is drawn from: softmax(logits / temperature), then top-k, then
/// top-p filtering (as transformers' TopKLogitsWarper and TopPLogitsWarper: the most likely token
/// always stays), renormalised. temperature must be > 0.
std::vector<double> sampling_distribution(std::span<const float> logits, const SamplingOptions& o);

/// Draws the `counter`-th token of a run: uniform number (seed, counter) against the
/// distribution's cumulative sum; with temperature 0, the argmax (the first of ties).
int64_t sample_token(std::span<const float> logits, const SamplingOptions& o, uint64_t counter);

/// Runs a model's decode function (inputs: the token [1, 1], `pos` when it has positions,
/// `cache.*` state; outputs: `logits` [1, 1, V] and `cache.*.next`) one token at a time.
class Decoder {
 public:
  /// `model` has the function `function`; its manifest attribute `context` bounds positions.
  /// When it also has the function `prefill` (LoadOptions::prefill), windows are encoded by one
  /// call of it rather than a decode step a token.
  explicit Decoder(Model& model, std::string function = "decode", std::string prefill = "prefill");
  /// Feeds `token` at the next position; returns the logits of the token after it. A model with
  /// positions that is at its context length first slides: it restarts at position 0 and
  /// re-encodes the last context/2 tokens (learned positions go no further than training did).
  std::span<const float> step(int64_t token);
  /// Feeds several tokens (from position 0 with a prefill function, in one call of it); returns
  /// the logits after the last.
  std::span<const float> feed_all(std::span<const int64_t> tokens);
  /// A new sequence: position 0, state zero.
  void reset();
  /// The next token's position.
  int64_t position() const { return static_cast<int64_t>(window_.size()); }
  /// The longest window (positions); 0 for recurrent models, whose state is carried unbounded.
  int64_t context() const { return context_; }
  /// The first position of the current window in the sequence fed since reset().
  int64_t window_start() const { return start_; }
  int64_t vocab() const { return vocab_; }

 private:
  void feed(int64_t token);
  void encode(std::span<const int64_t> tokens);
  void slide();
  Model& model_;
  std::string function_, prefill_;
  int token_in_ = 0, pos_in_ = -1, logits_out_ = -1;
  std::vector<Tensor> inputs_;
  std::vector<std::pair<int, int>> carried_;  ///< (input, output) of each cache
  std::vector<int64_t> window_;               ///< the tokens at positions 0, 1, ...
  Tensor logits_;
  int64_t context_ = 0, vocab_ = 0, start_ = 0;
};

/// Feeds `prompt` (at least one token) and draws `n` tokens, calling `emit` with each as it is
/// drawn (token i with counter i). Returns the tokens drawn.
std::vector<int64_t> generate(Decoder& d, std::span<const int64_t> prompt, int64_t n, const SamplingOptions& o,
                              const std::function<void(int64_t)>& emit = {});

/// The same by re-running the full forward function (tokens [1, T]) on the last T tokens for
/// every token: what the decode step saves, and its oracle.
std::vector<int64_t> generate_full(Model& model, std::span<const int64_t> prompt, int64_t n, const SamplingOptions& o,
                                   const std::function<void(int64_t)>& emit = {});

/// The full forward's logits [V] at the last of `tokens` (at most T; the rest of the window is
/// padding, which a causal model never reads).
std::vector<float> forward_last_logits(Model& model, std::span<const int64_t> tokens);

}  // namespace stag::rt
