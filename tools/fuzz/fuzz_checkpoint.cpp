// Fuzzes safetensors files as `--weights`, `--init-from` and `--resume` read them: the header,
// dtypes, offsets and sizes, then a checkpoint's resume state in its metadata (step, the data
// loader's position, a text classifier's tokenizer).

#include "runtime/data/loader.h"
#include "runtime/data/subword.h"
#include "runtime/safetensors.h"
#include "runtime/state_map.h"
#include "tools/fuzz/fuzz_target.h"

using namespace stag;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::expect_user_error_only([&] {
    auto file = rt::decode_safetensors(fuzz::bytes_of(data, size), "fuzz.safetensors");
    rt::StateMap meta(file.metadata.begin(), file.metadata.end());
    fuzz::expect_user_error_only([&] { rt::parse_int(rt::state_get(meta, "step"), "step"); });
    fuzz::expect_user_error_only([&] { rt::LoaderState::restore(meta); });
    fuzz::expect_user_error_only([&] { rt::restore_tokenizer(meta); });
  });
  return 0;
}
