#pragma once
/// The mean of a float buffer over processes on one machine through memory they share (an MPI
/// shared-memory window), as Open MPI's coll/sm and NCCL's shm transport do: each process copies
/// its buffer into its part of the window, sums one block of every process's copy and copies the
/// other blocks' sums back. No message, no handshake, no kernel call: on loopback the ring's
/// messages cost a handshake and a kernel copy each, which a small buffer does not amortize.

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "runtime/dist/average.h"

namespace stag::dist {

/// A window shared by all processes of MPI_COMM_WORLD, made when they are all on this machine:
/// each process's part holds a few slots, one per exchange in flight, and two counters a slot.
class NodeMemory {
 public:
  /// Collective over MPI_COMM_WORLD; null when its processes span machines (the ring then).
  static std::unique_ptr<NodeMemory> open();
  ~NodeMemory();  ///< collective: every process frees the window
  NodeMemory(const NodeMemory&) = delete;
  NodeMemory& operator=(const NodeMemory&) = delete;

  /// The slot exchange `id` (-1 and up, the same ids on every rank) of `floats` takes, or -1
  /// when it goes by the ring: a buffer larger than a slot, or an id past the slots.
  int slot(int id, size_t floats) const;

 private:
  friend class SharedAverage;
  NodeMemory(MPI_Comm node, MPI_Win window, std::vector<std::byte*> parts);
  float* copied(int rank, int slot) const;  ///< a process's buffer, but for the block it sums
  float* sums(int rank, int slot) const;    ///< the block it summed
  uint64_t* counter(int rank, int slot, int which) const;

  MPI_Comm node_;
  MPI_Win window_;
  std::vector<std::byte*> parts_;  ///< each process's part of the window, mapped here
  std::vector<uint64_t> epochs_;   ///< exchanges started a slot, the same count on every rank
};

/// One mean through a NodeMemory slot. Rank r sums block r of every rank's buffer in the ring's
/// order (its own, then ranks r+1, r+2, ... around), the last addition scaled by 1/ranks, so the
/// bits equal the ring's, and every rank copies the same sums.
class SharedAverage : public Averaging {
 public:
  /// Copies the blocks the other ranks sum into this rank's slot; `values` stays alive and
  /// unread by the caller until advance() says done.
  SharedAverage(std::span<float> values, NodeMemory& memory, int slot);
  bool advance() override;

 private:
  bool all_reached(int which) const;
  void sum_own_block();
  void copy_sums();

  std::span<float> values_;
  NodeMemory& memory_;
  int slot_, rank_, ranks_;
  uint64_t epoch_;
  bool summed_ = false, done_ = false;
};

}  // namespace stag::dist
