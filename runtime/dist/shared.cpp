// Averaging through an MPI shared-memory window: counters a slot say how far each process got,
// so a process polls memory instead of MPI.

#include "runtime/dist/shared.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <cstring>

namespace stag::dist {

namespace {

// Slots: the blocking mean (id -1) and the first buckets. A slot holds a buffer of up to
// kSlotFloats (4 MB) as copied in, then as much for the process's sums (apart: the next
// exchange's copy, of another size, must not land on sums a slower process still reads); a
// process's part is the counters then the slots, pages touched only once used.
constexpr int kSlots = 4;
constexpr size_t kSlotFloats = size_t{1} << 20;
constexpr size_t kLine = 64;
constexpr size_t kHeader = 4096;  // 2 counters a slot, each on its own cache line
static_assert(2 * kSlots * kLine <= kHeader);
enum Counter { kArrived = 0, kSummed = 1 };

// The processes map the same pages, so C++ atomics order their copies and sums as between threads
// (a window on one machine is MPI's unified memory model): a release store of a counter after
// the writes, an acquire load before the reads.
uint64_t load(uint64_t* counter) { return std::atomic_ref<uint64_t>(*counter).load(std::memory_order_acquire); }
void store(uint64_t* counter, uint64_t value) { std::atomic_ref<uint64_t>(*counter).store(value, std::memory_order_release); }

constexpr size_t kPartBytes = kHeader + 2 * kSlots * kSlotFloats * sizeof(float);

// Open MPI backs a shared window with a file in /dev/shm; touching pages past that filesystem's
// room is SIGBUS, and a container's /dev/shm is often 64 MB. So the window is taken only where
// twice every process's part fits, by every process's own look (they share one /dev/shm).
bool shm_has_room(MPI_Comm node, int processes) {
  struct statvfs fs {};
  int room = statvfs("/dev/shm", &fs) == 0 &&
             static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize) >= 2.0 * processes * kPartBytes;
  int all = 0;
  MPI_Allreduce(&room, &all, 1, MPI_INT, MPI_MIN, node);
  return all != 0;
}

}  // namespace

std::unique_ptr<NodeMemory> NodeMemory::open() {
  int world = 0, rank = 0, local = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  MPI_Comm_size(node, &local);
  if (world < 2 || local != world || !shm_has_room(node, local)) {
    MPI_Comm_free(&node);
    return nullptr;
  }
  MPI_Info info;
  MPI_Info_create(&info);
  MPI_Info_set(info, "alloc_shared_noncontig", "true");  // each part on its own pages, near its process
  void* base = nullptr;
  MPI_Win window;
  MPI_Win_allocate_shared(static_cast<MPI_Aint>(kPartBytes), 1, info, node, &base, &window);
  MPI_Info_free(&info);
  std::vector<std::byte*> parts(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    MPI_Aint size = 0;
    int unit = 0;
    MPI_Win_shared_query(window, r, &size, &unit, &parts[static_cast<size_t>(r)]);
  }
  std::memset(base, 0, kHeader);
  MPI_Barrier(node);  // every counter zero before any process reads one
  return std::unique_ptr<NodeMemory>(new NodeMemory(node, window, std::move(parts)));
}

NodeMemory::NodeMemory(MPI_Comm node, MPI_Win window, std::vector<std::byte*> parts)
    : node_(node), window_(window), parts_(std::move(parts)), epochs_(kSlots, 0) {}

NodeMemory::~NodeMemory() {
  MPI_Win_free(&window_);
  MPI_Comm_free(&node_);
}

int NodeMemory::slot(int id, size_t floats) const { return id + 1 < kSlots && floats <= kSlotFloats ? id + 1 : -1; }

float* NodeMemory::copied(int rank, int slot) const {
  return reinterpret_cast<float*>(parts_[static_cast<size_t>(rank)] + kHeader) + 2 * static_cast<size_t>(slot) * kSlotFloats;
}

float* NodeMemory::sums(int rank, int slot) const { return copied(rank, slot) + kSlotFloats; }

uint64_t* NodeMemory::counter(int rank, int slot, int which) const {
  return reinterpret_cast<uint64_t*>(parts_[static_cast<size_t>(rank)] + (2 * static_cast<size_t>(slot) + static_cast<size_t>(which)) * kLine);
}

// A slot is reused only once every rank is past the previous exchange in it: a rank copies in
// the next buffer after it saw every rank's sums, so after every rank read its copy; and it stores
// its next sums after every rank copied in the next buffer, so after every rank copied the sums.
SharedAverage::SharedAverage(std::span<float> values, NodeMemory& memory, int slot)
    : values_(values), memory_(memory), slot_(slot), epoch_(++memory.epochs_[static_cast<size_t>(slot)]) {
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks_);
  float* mine = memory_.copied(rank_, slot_);
  for (int b = 0; b < ranks_; ++b) {
    std::span<float> block = block_of(values_, b, ranks_);
    if (b != rank_) std::copy(block.begin(), block.end(), mine + (block.data() - values_.data()));
  }
  store(memory_.counter(rank_, slot_, kArrived), epoch_);
}

bool SharedAverage::all_reached(int which) const {
  for (int r = 0; r < ranks_; ++r)
    if (load(memory_.counter(r, slot_, which)) < epoch_) return false;
  return true;
}

// Own values, plus ranks r+1, r+2, ... around, as the ring adds them; the sums go to this rank's
// buffer and its slot, where the others copy them from.
void SharedAverage::sum_own_block() {
  std::span<float> own = block_of(values_, rank_, ranks_);
  ptrdiff_t at = own.data() - values_.data();
  float* out = own.data();
  float* shared = memory_.sums(rank_, slot_);
  auto n = static_cast<ptrdiff_t>(own.size());
  for (int k = 1; k < ranks_ - 1; ++k) {
    const float* in = memory_.copied((rank_ + k) % ranks_, slot_) + at;
    for (ptrdiff_t i = 0; i < n; ++i) out[i] += in[i];
  }
  const float* last = memory_.copied((rank_ + ranks_ - 1) % ranks_, slot_) + at;
  float scale = 1.0f / static_cast<float>(ranks_);
  for (ptrdiff_t i = 0; i < n; ++i) shared[i] = out[i] = (out[i] + last[i]) * scale;
}

void SharedAverage::copy_sums() {
  for (int b = 0; b < ranks_; ++b) {
    std::span<float> block = block_of(values_, b, ranks_);
    if (b != rank_) std::copy_n(memory_.sums(b, slot_), block.size(), block.data());
  }
}

bool SharedAverage::advance() {
  if (done_) return true;
  if (!summed_) {
    if (!all_reached(kArrived)) return false;
    sum_own_block();
    store(memory_.counter(rank_, slot_, kSummed), epoch_);
    summed_ = true;
  }
  if (!all_reached(kSummed)) return false;
  copy_sums();
  done_ = true;
  return true;
}

}  // namespace stag::dist
