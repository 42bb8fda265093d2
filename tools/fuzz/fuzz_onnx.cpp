// Fuzzes an ONNX model through the importer: protobuf parsing, the checker, the converters and
// the shape rules; an accepted model's IR reads back.

#include "tools/fuzz/fuzz_target.h"
#include "tools/fuzz/model_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 1 << 20) return 0;
  stag::fuzz::load_and_check("fuzz.onnx", stag::fuzz::text_of(data, size), false);
  return 0;
}
