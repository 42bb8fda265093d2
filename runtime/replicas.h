#pragma once
/// What every data-parallel training loop does between its compiled functions (train() and
/// train_gan()): take its rows of the global batch, average a step's loss and gradients over the
/// processes with the stop votes riding along, and check that the replicas agree.

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/tensor.h"
#include "runtime/trainer.h"

namespace stag::rt {

/// Rows [start, start + count) of a batch tensor.
Tensor rows_of(const Tensor& t, int64_t start, int64_t count);

/// A process's stop request, as one more value of an all-reduce: SIGTERM (what mpirun sends every
/// process on Ctrl-C) counts 1024 and SIGINT 1, so that the mean times the processes tells
/// whether any saw SIGTERM (exact in f32 for up to 1023 processes).
float stop_vote(int signal);
/// The signal the processes agreed to stop by (0: none), from the mean of their votes.
int agreed_stop(float mean, int ranks);

/// Replaces every tensor of `shared` (f32) by its mean over the ranks, all through one
/// all-reduce of `buffer`, with `rider` as one more value; returns the rider's mean. Throws Error
/// for a tensor of another element type.
float average_over_ranks(const Collective& dp, std::span<Tensor* const> shared, float rider, std::vector<float>& buffer);

/// FNV-1a over the bytes of every parameter and optimizer state but BatchNorm's running
/// statistics (per process): equal on every rank while the replicas agree.
uint64_t params_hash(Model& model);

/// --check-replicas: every rank compares all ranks' hashes, so all of them stop alike; throws
/// Error naming `step` and the first rank that differs from rank 0.
void check_replicas(const Collective& dp, Model& model, int64_t step);

}  // namespace stag::rt
