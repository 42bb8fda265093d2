// Fuzzes CSV files: numeric tables (features and a label column, by index or by header name) and
// text classification tables (text and label).

#include "runtime/data/csv.h"
#include "runtime/data/topics.h"
#include "tools/fuzz/fuzz_target.h"

using namespace stag;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto text = fuzz::text_of(data, size);
  fuzz::expect_user_error_only([&] { rt::parse_csv(text, "fuzz.csv"); });
  fuzz::expect_user_error_only([&] { rt::parse_csv(text, "fuzz.csv", {.header = false, .label_name = "", .label_index = 0}); });
  fuzz::expect_user_error_only([&] { rt::parse_csv(text, "fuzz.csv", {.label_name = "label"}); });
  fuzz::expect_user_error_only([&] { rt::parse_text_csv(text, "fuzz.csv"); });
  return 0;
}
