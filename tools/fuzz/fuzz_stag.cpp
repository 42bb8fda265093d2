// Fuzzes a `.stag` model description through the frontend: lexer, parser, lowering to graph IR
// for inference and for training, verification and shape rules.

#include "tools/fuzz/fuzz_target.h"
#include "tools/fuzz/model_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 1 << 16) return 0;
  auto text = stag::fuzz::text_of(data, size);
  if (stag::fuzz::load_and_check("fuzz.stag", text, false)) stag::fuzz::load_and_check("fuzz.stag", text, true);
  return 0;
}
