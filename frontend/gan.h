#pragma once
/// A `gan` declaration of a `.stag` file: which of its models generates, which discriminates,
/// and how the pair is trained against each other.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ir/diag.h"

namespace stag::fe {

/// The pair as `gan NAME { ... }` declares it, each setting checked.
struct GanSpec {
  std::string name;
  Loc loc;
  std::string generator, discriminator;  ///< model names of the same file
  /// non_saturating (the DCGAN paper's BCE), minimax (G minimises log(1 - D(G(z)))),
  /// least_squares (LSGAN, targets 1 and 0) or hinge.
  std::string loss = "non_saturating";
  int64_t d_steps = 1;              ///< discriminator steps per generator step
  double real_low = -1, real_high = 1;  ///< real images in [0, 1] are mapped to this range
  std::optional<int64_t> epochs;
  std::optional<std::string> data;
};

/// What a file and a `--model` choice name.
struct GanLookup {
  enum Kind {
    None,    ///< no GAN involved: the choice is a plain model
    Pair,    ///< the GAN `spec` (named, or the file's GAN when no model is chosen)
    Member,  ///< the chosen model is `spec`'s generator or discriminator
  } kind = None;
  GanSpec spec;
};

struct File;

/// Checks the file's GAN declarations and resolves `model` (empty: the file's GAN if it has one).
/// Errors go to `diags` and give nullopt.
std::optional<GanLookup> resolve_gan(const File& ast, const std::string& model, Diagnostics& diags);

/// Parses the file and resolves `model` (empty: the file's GAN if it has one). Errors in the
/// GAN's settings go to `diags` and give nullopt; a syntax error too.
std::optional<GanLookup> find_gan(std::string_view text, const std::string& file, const std::string& model,
                                  Diagnostics& diags);

}  // namespace stag::fe
