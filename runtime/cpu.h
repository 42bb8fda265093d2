#pragma once
/// The instruction sets of the CPU running a compiled program, from CPUID (no LLVM here): a
/// program compiled on one machine refuses, with a clear error, a host that lacks what its code
/// was compiled for.

#include <string>

namespace stag::rt {

/// The names compiler/target/host.h gives the ISA levels, in order; each includes the ones before.
/// Returns this CPU's level among generic, avx2, avx512, avx512bf16, amx.
std::string cpu_isa();

/// Throws rt::Error when `needed` (a manifest's `isa`) is above this CPU's level, or unknown.
void check_cpu_isa(const std::string& needed);

}  // namespace stag::rt
