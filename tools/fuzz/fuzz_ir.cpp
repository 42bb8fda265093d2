// Fuzzes graph IR text: parser, verifier and shape rules, and the printer's round trip.

#include "tools/fuzz/fuzz_target.h"
#include "tools/fuzz/model_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 1 << 16) return 0;
  stag::fuzz::load_and_check("fuzz.ir", stag::fuzz::text_of(data, size), false);
  return 0;
}
