#pragma once
/// --check-numerics (LowerOptions::check_numerics): checks that report the first NaN or infinity.

#include "compiler/lower/context.h"

namespace stag::lowering {

/// Checks of the function's inputs and of every parameter, as its first kernels.
void check_entry(LowerContext& cx);
/// Checks of what the function's last kernel stored, as the kernels right after it.
void check_stored(LowerContext& cx);

}  // namespace stag::lowering
