#pragma once
/// What the two ways of averaging a buffer over the ranks share: an exchange moved on by polling,
/// and the blocks the buffer is cut into, one summed by each rank.

#include <span>

namespace stag::dist {

/// One mean under way; the buffer holds every rank's mean once advance() says done.
class Averaging {
 public:
  virtual ~Averaging() = default;
  /// Moves the exchange on as far as it can without waiting; true once it is done.
  virtual bool advance() = 0;
};

/// Block `index` of `ranks` nearly equal ones of `values`, each a multiple of 16 floats (64
/// bytes) but the last. Rank b sums block b (the ring: b+1), always in the same order.
std::span<float> block_of(std::span<float> values, int index, int ranks);

}  // namespace stag::dist
