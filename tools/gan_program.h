#pragma once
/// The commands' view of a `gan` declaration: finding it in a model file and compiling its
/// program (compiler/train/gan.h) for training and sampling.

#include <optional>

#include "compiler/jit/jit_model.h"
#include "frontend/gan.h"
#include "tools/cli.h"

namespace stag::cli {

/// The GAN a command's model arguments name (see fe::find_gan); nullopt for IR files and for
/// `.stag` files without a GAN. Prints diagnostics and throws Failure on error.
std::optional<fe::GanLookup> find_gan(const ModelArgs& args);

/// Throws the Failure for training one model of a GAN alone.
[[noreturn]] void refuse_member(const ModelArgs& args, const fe::GanSpec& spec);

/// Builds and compiles the GAN's functions: `forward` (sampling), `d_step` and `g_step`. The
/// optimizer flags of `program` apply to both models.
CompiledModel compile_gan(const TrainProgramArgs& program, const fe::GanSpec& spec, bool profile);

}  // namespace stag::cli
