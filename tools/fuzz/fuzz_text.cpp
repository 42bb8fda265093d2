// Fuzzes text data and tokenizers: a fortunes file split into entries, the word tokenizer built
// on them and applied, a saved byte vocabulary read back, and character sequences of the text.

#include <sys/mman.h>
#include <unistd.h>

#include <numeric>
#include <string>

#include "runtime/data/text.h"
#include "runtime/data/topics.h"
#include "tools/fuzz/fuzz_target.h"

using namespace stag;

namespace {

void tokenize_words(std::string_view text) {
  std::vector<std::string> texts = rt::split_fortunes(text);
  std::vector<int64_t> all(texts.size());
  std::iota(all.begin(), all.end(), 0);
  auto table = rt::WordTable::build(texts, all, 64);
  for (const auto& t : texts) table.encode(t, 16);
  rt::WordTable::restore(table.save());
}

void characters(std::string_view text) {
  auto vocab = rt::Vocabulary::build(text);
  auto ids = vocab.encode(text);
  if (vocab.decode(ids) != text) std::abort();
  if (ids.size() > 9) rt::make_sequences(ids, 8, 3);
}

void vocabulary_file(const uint8_t* data, size_t size) {
  int fd = ::memfd_create("fuzz.vocab", 0);
  if (fd < 0) return;
  if (::write(fd, data, size) == static_cast<ssize_t>(size))
    fuzz::expect_user_error_only([&] { rt::Vocabulary::load("/proc/self/fd/" + std::to_string(fd)); });
  ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 1 << 16) return 0;
  auto text = fuzz::text_of(data, size);
  fuzz::expect_user_error_only([&] { tokenize_words(text); });
  fuzz::expect_user_error_only([&] { characters(text); });
  vocabulary_file(data, size);
  return 0;
}
