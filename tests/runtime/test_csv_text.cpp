// CSV tables, text corpora and vocabularies, and .npy data sets.
#include <catch2/catch.hpp>
#include <filesystem>

#include "runtime/data/csv.h"
#include "runtime/data/npy_data.h"
#include "runtime/data/text.h"
#include "runtime/npy.h"
#include "test_util.h"

using namespace stag::rt;
using namespace stag::rt::test;
using Catch::Matchers::Contains;

namespace {

std::string csv_error(const std::string& text, CsvOptions o = {}) {
  try {
    parse_csv(text, "t.csv", o);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("CSV with a header and a named label column", "[csv]") {
  CsvOptions o;
  o.label_name = "species";
  Dataset d = parse_csv("a, species ,b\r\n1.5,2,-3\n\n 4e2 ,0, 0.25 \n", "t.csv", o);
  REQUIRE(d.features.shape() == Shape{2, 2});
  REQUIRE(d.labels.shape() == Shape{2});
  CHECK(d.features.at<float>({0, 0}) == 1.5f);
  CHECK(d.features.at<float>({0, 1}) == -3.0f);
  CHECK(d.features.at<float>({1, 0}) == 400.0f);
  CHECK(d.features.at<float>({1, 1}) == 0.25f);
  CHECK(d.labels.values<int64_t>()[0] == 2);
  CHECK(d.labels.values<int64_t>()[1] == 0);
}

TEST_CASE("CSV without a header, label by index", "[csv]") {
  CsvOptions o;
  o.header = false;
  o.label_index = 0;
  Dataset d = parse_csv("3,1,2\n1,4,5", "t.csv", o);
  CHECK(d.labels.values<int64_t>()[0] == 3);
  CHECK(d.features.at<float>({1, 1}) == 5.0f);
  o.label_index = -1;  // the last column
  d = parse_csv("3,1,2\n1,4,5\n", "t.csv", o);
  CHECK(d.labels.values<int64_t>()[1] == 5);
  o.delimiter = ';';
  d = parse_csv("1.5;7\n", "t.csv", o);
  CHECK(d.features.at<float>({0, 0}) == 1.5f);
}

TEST_CASE("bad CSV files give file:line errors", "[csv]") {
  CHECK_THAT(csv_error("a,b,c\n1,2,3\n4,5\n"), Contains("t.csv:3: 2 fields, expected 3"));
  CHECK_THAT(csv_error("a,b,c\n1,2,3\n4,x5,6\n"),
             Contains("t.csv:3: column 2 (b): 'x5' is not a number"));
  CHECK_THAT(csv_error("a,b\n1,\n"), Contains("t.csv:2: column 2 (b): '' is not a number"));
  CHECK_THAT(csv_error("a,b\n1,\"2\"\n"), Contains("'\"2\"' is not a number"));
  CHECK_THAT(csv_error("a,b\n1,2.5\n"),
             Contains("t.csv:2: label '2.5' is not a non-negative integer"));
  CHECK_THAT(csv_error("a,b\n1,-1\n"), Contains("label '-1'"));
  CsvOptions named;
  named.label_name = "y";
  CHECK_THAT(csv_error("a,b\n1,2\n", named), Contains("t.csv:1: no column named 'y'"));
  CsvOptions idx;
  idx.label_index = 5;
  CHECK_THAT(csv_error("a,b\n1,2\n", idx), Contains("label column 5 out of range for 2 columns"));
  CHECK_THAT(csv_error(""), Contains("t.csv: empty CSV file"));
  CHECK_THAT(csv_error("a\n1\n"), Contains("at least 2 columns"));
  CHECK_THROWS_WITH(load_csv("/nonexistent/x.csv"), Contains("/nonexistent/x.csv"));
}

TEST_CASE("CSV files load from disk, gzip too", "[csv]") {
  TempDir dir;
  write_bytes(dir / "d.csv", bytes_of("x,y,label\n0.5,1,1\n2,3,0\n"));
  Dataset d = load_csv(dir / "d.csv");
  CHECK(d.features.shape() == Shape{2, 2});
  CHECK(d.labels.values<int64_t>()[0] == 1);
  write_bytes(dir / "bad.csv", bytes_of("x,y,label\n0.5,1,1\n2,3\n"));
  CHECK_THROWS_WITH(load_csv(dir / "bad.csv"), Contains((dir / "bad.csv").string() + ":3:"));
}

TEST_CASE("a byte vocabulary and language-model sequences", "[text]") {
  TempDir dir;
  write_bytes(dir / "a.txt", bytes_of("hello\n"));
  Vocabulary v = Vocabulary::build(read_text_corpus(dir / "a.txt"));
  // Sorted distinct bytes: '\n' 'e' 'h' 'l' 'o'.
  CHECK(v.symbols() == std::vector<uint8_t>{'\n', 'e', 'h', 'l', 'o'});
  auto ids = v.encode("hello\n");
  CHECK(ids == std::vector<int64_t>{2, 1, 3, 3, 4, 0});
  CHECK(v.decode(ids) == "hello\n");
  CHECK_THROWS_WITH(v.encode("hex"), Contains("0x78 at offset 2"));
  CHECK_THROWS_WITH(v.decode(std::vector<int64_t>{5}), Contains("token id 5 out of range"));

  // T = 2: windows [h e][l l] with targets [e l][l o]; the tail "\n" cannot start a full window.
  Dataset s = make_sequences(ids, 2);
  REQUIRE(s.features.shape() == Shape{2, 2});
  REQUIRE(s.labels.shape() == Shape{2, 2});
  CHECK(v.decode(s.features.values<int64_t>()) == "hell");
  CHECK(v.decode(s.labels.values<int64_t>()) == "ello");
  // Stride 1: every position, target shifted by one.
  Dataset s1 = make_sequences(ids, 3, 1);
  REQUIRE(s1.features.shape() == Shape{3, 3});
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t t = 0; t < 3; ++t) {
      CHECK(s1.features.at<int64_t>({i, t}) == ids[i + t]);
      CHECK(s1.labels.at<int64_t>({i, t}) == ids[i + t + 1]);
    }
  CHECK(make_sequences(ids, 6).size() == 0);  // 6 tokens cannot give 6 inputs and 6 targets
  CHECK(make_sequences(ids, 5).size() == 1);
}

TEST_CASE("vocabularies save and load exactly, and reject bad files", "[text]") {
  TempDir dir;
  Vocabulary v = Vocabulary::build(std::string("zA \xe9\x01", 5));
  v.save(dir / "vocab.txt");
  Vocabulary w = Vocabulary::load(dir / "vocab.txt");
  CHECK(w == v);
  CHECK(w.id(0xe9) == v.id(0xe9));
  // A different text encodes with the saved ids, not with its own.
  CHECK(w.encode("A") == std::vector<int64_t>{2});
  auto bad = [&](const std::string& text) {
    write_bytes(dir / "bad.txt", bytes_of(text));
    try {
      Vocabulary::load(dir / "bad.txt");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(bad("hello\n1\n"), Contains("bad.txt:1: not a stag vocabulary"));
  CHECK_THAT(bad("stag-vocabulary bytes 1\n65\n300\n"), Contains("bad.txt:3: '300' is not a byte"));
  CHECK_THAT(bad("stag-vocabulary bytes 1\n66\n65\n"),
             Contains("bad.txt:3: byte values must be strictly increasing"));
  CHECK_THAT(bad("stag-vocabulary bytes 1\n65"), Contains("does not end in a newline"));
  CHECK_THAT(bad(""), Contains("empty vocabulary file"));
}

TEST_CASE("a directory corpus skips .dat indexes, symlinks and hidden files", "[text]") {
  TempDir dir;
  write_bytes(dir / "b", bytes_of("BB\n%\n"));
  write_bytes(dir / "a", bytes_of("AA\n"));
  write_bytes(dir / "a.dat", bytes_of("\x01\x02\x03"));
  write_bytes(dir / ".hidden", bytes_of("HH"));
  std::filesystem::create_symlink(dir / "a", dir / "a.u8");
  CHECK(read_text_corpus(dir.path()) == "AA\nBB\n%\n");
  CHECK(text_corpus_files(dir.path()).size() == 2);
  TempDir empty;
  CHECK_THROWS_WITH(read_text_corpus(empty.path()), Contains("no text files"));
  CHECK_THROWS_WITH(read_text_corpus(dir / "nope"), Contains("no such file"));
}

TEST_CASE("the fortunes corpus reads without duplicates", "[text]") {
  if (!std::filesystem::exists(std::filesystem::path(kFortunesDir) / "fortunes")) {
    WARN("skipped: the Debian package fortunes is not installed");
    return;
  }
  auto files = text_corpus_files(kFortunesDir);
  for (const auto& f : files) {
    CHECK(f.extension() != ".dat");
    CHECK(!std::filesystem::is_symlink(f));
  }
  std::string text = read_text_corpus(kFortunesDir);
  Vocabulary v = Vocabulary::build(text);
  CHECK(v.size() > 60);
  CHECK(v.size() <= 256);
  auto ids = v.encode(text);
  Dataset s = make_sequences(ids, 64);
  CHECK(s.size() == (static_cast<int64_t>(ids.size()) - 65) / 64 + 1);
}

TEST_CASE(".npy feature and label files form a data set", "[npy-data]") {
  TempDir dir;
  write_npy(dir / "x.npy", Tensor::from<double>({2, 2}, {1.5, 2, 3, 4}));
  write_npy(dir / "y.npy", Tensor::from<int32_t>({2}, {1, 0}));
  Dataset d = load_npy_dataset(dir / "x.npy", dir / "y.npy");
  CHECK(d.features.dtype() == DType::f32);
  CHECK(d.features.at<float>({0, 0}) == 1.5f);
  CHECK(d.labels.dtype() == DType::i64);
  CHECK(d.labels.values<int64_t>()[0] == 1);
  write_npy(dir / "y3.npy", Tensor::from<int64_t>({3}, {1, 0, 2}));
  CHECK_THROWS_WITH(load_npy_dataset(dir / "x.npy", dir / "y3.npy"),
                    Contains("2 examples") && Contains("3 labels"));
  write_npy(dir / "yf.npy", Tensor::from<float>({2}, {1, 0}));
  CHECK_THROWS_WITH(load_npy_dataset(dir / "x.npy", dir / "yf.npy"),
                    Contains("yf.npy: labels are f32"));
}
