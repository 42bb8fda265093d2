// Fuzzes `.npy` arrays as `--input` and NumPy data sets read them.

#include "runtime/npy.h"
#include "tools/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stag::fuzz::expect_user_error_only([&] { stag::rt::decode_npy(stag::fuzz::bytes_of(data, size), "fuzz.npy"); });
  return 0;
}
