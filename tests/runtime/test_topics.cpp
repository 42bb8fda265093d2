// Text classification data: fortune entries, the fortunes' topics and their fixed split, text CSV
// files and the word table.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <set>

#include "runtime/data/text.h"
#include "runtime/data/topics.h"
#include "runtime/error.h"

using namespace stag::rt;
using Catch::Matchers::Contains;

namespace {

std::string csv_error(const std::string& text) {
  try {
    parse_text_csv(text, "t.csv");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

bool have_fortunes() { return std::filesystem::exists(std::filesystem::path(kFortunesDir) / "science"); }

}  // namespace

TEST_CASE("fortune files split at lines holding only %", "[topics]") {
  CHECK(split_fortunes("one\nline\n%\ntwo\n%\n\n%\n100% three\n") ==
        std::vector<std::string>{"one\nline", "two", "100% three"});
  CHECK(split_fortunes("%\nfirst\n%") == std::vector<std::string>{"first"});
  CHECK(split_fortunes("").empty());
}

TEST_CASE("the split by hash depends on the text alone and has every part", "[topics]") {
  std::map<Part, int> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string t = "text number " + std::to_string(i);
    CHECK(part_of(t) == part_of(std::string(t)));
    ++seen[part_of(t)];
  }
  CHECK(seen[Part::test] > 60);
  CHECK(seen[Part::validation] > 60);
  CHECK(seen[Part::train] > 700);
}

TEST_CASE("every fortune is labelled with its file, and the parts are disjoint", "[topics]") {
  if (!have_fortunes()) {
    WARN("the fortunes package is not installed");
    return;
  }
  LabeledTexts d = read_fortune_topics(kFortunesDir);
  REQUIRE(d.texts.size() == d.labels.size());
  CHECK(d.classes.size() >= 30);
  CHECK(std::find(d.classes.begin(), d.classes.end(), "ascii-art") == d.classes.end());  // 10 fortunes
  // Each text is an entry of its class's file.
  for (size_t i = 0; i < d.texts.size(); i += 997) {
    auto file = std::filesystem::path(kFortunesDir) / d.classes[static_cast<size_t>(d.labels[i])];
    auto entries = split_fortunes(read_text_corpus(file));
    CHECK(std::find(entries.begin(), entries.end(), d.texts[i]) != entries.end());
  }
  std::set<std::string> test, rest;
  for (const auto& t : d.texts) (part_of(t) == Part::test ? test : rest).insert(t);
  for (const auto& t : test) CHECK(!rest.count(t));
  CHECK(test.size() > d.texts.size() / 20);
}

TEST_CASE("text CSV: quoted fields, class names in sorted order", "[topics][csv]") {
  LabeledTexts d = parse_text_csv("id,label,text\n1,spam,\"buy, now\"\n2,ham,\"two\nlines, \"\"quoted\"\"\"\n\n3,spam,x\n", "t.csv");
  CHECK(d.texts == std::vector<std::string>{"buy, now", "two\nlines, \"quoted\"", "x"});
  CHECK(d.classes == std::vector<std::string>{"ham", "spam"});
  CHECK(d.labels == std::vector<int64_t>{1, 0, 1});
}

TEST_CASE("text CSV errors name the file and line", "[topics][csv]") {
  CHECK_THAT(csv_error("text,label\nfine,a\n,b\n"), Contains("t.csv:3: the row has no text"));
  CHECK_THAT(csv_error("text,label\n\"two\nlines\",a\n,b\n"), Contains("t.csv:4: the row has no text"));
  CHECK_THAT(csv_error("text,label\nfine,a\n\"  \n \",b\n"), Contains("t.csv:3: the row has no text"));  // blanks only
  CHECK_THAT(csv_error("text,label\nfine,a\nshort\n"), Contains("t.csv:3: 1 fields"));
  CHECK_THAT(csv_error("text,label\nfine,\n"), Contains("t.csv:2: the row has no label"));
  CHECK_THAT(csv_error("words,label\nfine,a\n"), Contains("t.csv:1: the header names no 'text' column"));
  CHECK_THAT(csv_error("text,label\n"), Contains("no rows"));
}

TEST_CASE("the word table: [CLS] first, commonest words, unknown and padding", "[topics]") {
  std::vector<std::string> texts = {"the cat, the dog", "The CAT sat", "ignored text"};
  WordTable t = WordTable::build(texts, {0, 1}, 5);  // room for two words: the, cat
  CHECK(words_of("It's 2 o'clock!") == std::vector<std::string>{"it's", "2", "o'clock"});
  CHECK(t.encode("the dog cat", 6) == std::vector<int64_t>{1, 3, 2, 4, 0, 0});
  CHECK(t.encode("the the the the", 3) == std::vector<int64_t>{1, 3, 3});
  WordTable back = WordTable::restore(t.save());
  CHECK(back.encode("cat the ignored", 5) == t.encode("cat the ignored", 5));
  CHECK(back.vocab() == 5);
  CHECK_THROWS_WITH(WordTable::restore({}), Contains("no word tokenizer"));
}
