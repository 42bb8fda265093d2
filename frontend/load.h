#pragma once
/// Loads a model from a file: graph IR text (`.ir`), a model description (`.stag`) or ONNX (`.onnx`).

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "ir/diag.h"
#include "ir/graph.h"

namespace stag {

/// Options a model file's compilation takes from the command line.
struct LoadOptions {
  /// Binds the batch dimension of a `.stag` model's inputs (its own default when unset).
  std::optional<int64_t> batch;
  /// Lowers a `.stag` model for a training step: batch norm uses batch statistics and updates
  /// its running statistics, dropout is active and keyed by the `%step` input.
  bool training = false;
  /// Lowers a `.stag` language model into its decode step: one token at batch 1 (token inputs
  /// [B, T] become [1, 1]), its position as the input `pos: i64[]`, every causal attention's
  /// key/value cache and every recurrent layer's state as inputs `cache.NAME` whose updated
  /// values are the outputs `cache.NAME.next`; `loss` and metrics are left out. Parameters keep
  /// their names, so the model's checkpoints load into it. The graph's attribute `context` is T.
  bool decode = false;
  /// Lowers the full forward (positions 0..T-1) giving, beside its outputs, every causal
  /// attention's keys and values as the outputs `cache.NAME.next` [B, heads, T, head_dim]: the
  /// decode step's cache after the window's tokens, in one call. `loss` and metrics are left out.
  bool prefill = false;
  /// Recurrent layers as today's unrolled steps, one copy of the cell a step, instead of a scan
  /// whose body is the cell, and `for` loops as copies of their body (for comparing against).
  bool unroll = false;
  /// Which model of a `.stag` file holding several (a GAN's generator and discriminator);
  /// empty: the first.
  std::string model;
  /// Binds an ONNX model's symbolic dimensions by name (`--dim N=8`); `batch` binds the rest.
  std::map<std::string, int64_t> dims;
  /// An ONNX model's loss, `KIND:OUTPUT:LABEL` (`--loss cross_entropy:logits:y`).
  std::string loss;
};

/// Files larger than this are refused before they are read: no model description or IR
/// text we produce comes near it, and it keeps bad input from costing memory.
inline constexpr size_t kMaxSourceBytes = size_t{1} << 30;

/// Reads a whole file. On failure returns nullopt with the reason in `error`.
std::optional<std::string> read_source(const std::string& path, std::string& error);

/// Parses and verifies the file: `.stag` files through the model language's frontend, anything
/// else as graph IR text. User errors go to `diags` and give nullptr.
std::unique_ptr<Graph> load_model(const std::string& path, const std::string& text,
                                  const LoadOptions& options, Diagnostics& diags);

}  // namespace stag
