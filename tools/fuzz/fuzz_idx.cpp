// Fuzzes IDX image and label files, raw or gzip, through both readers: decoding bytes in memory
// and the streaming reader of a file (which sizes its buffer from the header before inflating).

#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "runtime/data/gzip.h"
#include "runtime/data/idx.h"
#include "tools/fuzz/fuzz_target.h"

using namespace stag;

namespace {

void use(rt::IdxArray a) {
  if (a.dims.size() == 1) rt::idx_labels_to_tensor(a, "fuzz.idx");
  else if (a.dims.size() == 3) rt::idx_images(std::move(a), "fuzz.idx");
}

// The bytes as a file without touching the disk: the streaming reader takes a path.
void read_as_file(const uint8_t* data, size_t size) {
  int fd = ::memfd_create("fuzz.idx", 0);
  if (fd < 0) return;
  if (::write(fd, data, size) == static_cast<ssize_t>(size))
    fuzz::expect_user_error_only([&] { use(rt::read_idx("/proc/self/fd/" + std::to_string(fd))); });
  ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = fuzz::bytes_of(data, size);
  fuzz::expect_user_error_only([&] {
    if (rt::is_gzip(bytes)) use(rt::decode_idx(rt::gunzip(bytes, "fuzz.idx.gz", 1 << 26), "fuzz.idx"));
    else use(rt::decode_idx(bytes, "fuzz.idx"));
  });
  read_as_file(data, size);
  return 0;
}
