// IDX files, gzip and raw: good files, every corruption, and the real Fashion-MNIST.
#include <zlib.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>

#include "runtime/data/gzip.h"
#include "runtime/data/idx.h"
#include "test_util.h"

using namespace stag::rt;
using namespace stag::rt::test;
using Catch::Matchers::Contains;

namespace {

std::vector<std::byte> idx(uint8_t type, std::vector<uint32_t> dims, std::vector<uint8_t> data) {
  std::vector<std::byte> out = {std::byte{0}, std::byte{0}, std::byte{type},
                                static_cast<std::byte>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::byte>((d >> s) & 0xff));
  for (uint8_t v : data) out.push_back(static_cast<std::byte>(v));
  return out;
}

std::vector<std::byte> gzip(const std::vector<std::byte>& raw) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<std::byte> out(deflateBound(&zs, raw.size()) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

const std::vector<uint8_t> kPixels = {0, 255, 51, 102, 1, 2, 3, 4, 10, 20, 30, 40};

// Writes images [3,2,2] and labels [3] (gzip or raw) and returns their paths.
std::pair<std::filesystem::path, std::filesystem::path> write_pair(const TempDir& dir, bool gz,
                                                                   std::vector<uint8_t> labels = {
                                                                       7, 0, 3}) {
  auto im = idx(0x08, {3, 2, 2}, kPixels);
  auto lb = idx(0x08, {static_cast<uint32_t>(labels.size())}, labels);
  auto pi = dir / (gz ? "im.gz" : "im"), pl = dir / (gz ? "lb.gz" : "lb");
  write_bytes(pi, gz ? gzip(im) : im);
  write_bytes(pl, gz ? gzip(lb) : lb);
  return {pi, pl};
}

std::string idx_error(const std::vector<std::byte>& bytes) {
  try {
    decode_idx(bytes, "f.idx");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("IDX images and labels load raw and gzipped", "[idx]") {
  TempDir dir;
  for (bool gz : {false, true}) {
    auto [pi, pl] = write_pair(dir, gz);
    Dataset d = load_idx(pi, pl);
    // The images stay bytes; the model sees byte / 255 as f32.
    REQUIRE(d.images);
    CHECK(d.feature_dtype() == DType::f32);
    REQUIRE(d.feature_shape() == Shape{3, 1, 2, 2});
    CHECK(d.size() == 3);
    CHECK(std::equal(d.images->data.begin(), d.images->data.end(), kPixels.begin(), kPixels.end()));
    REQUIRE(d.labels.shape() == Shape{3});
    materialize_features(d);
    CHECK(!d.images);
    REQUIRE(d.features.shape() == Shape{3, 1, 2, 2});
    auto x = d.features.values<float>();
    for (size_t i = 0; i < kPixels.size(); ++i)
      CHECK(x[i] == static_cast<float>(kPixels[i]) / 255.0f);
    CHECK(x[0] == 0.0f);
    CHECK(x[1] == 1.0f);
    CHECK(d.labels.values<int64_t>()[0] == 7);
    CHECK(d.labels.values<int64_t>()[2] == 3);
  }
}

TEST_CASE("corrupt IDX headers and sizes are errors naming the file", "[idx]") {
  auto good = idx(0x08, {2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(decode_idx(good, "f.idx").dims == std::vector<int64_t>{2, 3});
  CHECK_THAT(idx_error(bytes_of("\0\0")),
             Contains("f.idx") && Contains("shorter than the 4-byte magic"));
  auto bad_magic = good;
  bad_magic[1] = std::byte{1};
  CHECK_THAT(idx_error(bad_magic), Contains("f.idx: not an IDX file: bad magic"));
  CHECK_THAT(idx_error(idx(0x0D, {2}, {0, 0, 0, 0, 0, 0, 0, 0})),
             Contains("float32") && Contains("only unsigned byte"));
  CHECK_THAT(idx_error(idx(0x42, {1}, {0})), Contains("unknown type 0x42"));
  CHECK_THAT(idx_error(idx(0x08, {}, {})), Contains("rank is 0"));
  auto short_header = idx(0x08, {2, 3}, {});
  short_header.resize(9);
  CHECK_THAT(idx_error(short_header),
             Contains("truncated IDX header") && Contains("needs 12 bytes"));
  CHECK_THAT(idx_error(idx(0x08, {2, 3}, {1, 2, 3, 4, 5})),
             Contains("truncated IDX data") && Contains("need 18 bytes, the file has 17"));
  CHECK_THAT(idx_error(idx(0x08, {2, 3}, {1, 2, 3, 4, 5, 6, 7, 8})), Contains("2 trailing bytes"));
  CHECK_THAT(idx_error(idx(0x08, {0xffffffff, 0xffffffff, 0xffffffff}, {})),
             Contains("more elements than fit in int64"));
  // Large but representable: must be reported as truncated, never allocated.
  CHECK_THAT(idx_error(idx(0x08, {0xffffffff, 0x7fffffff}, {})), Contains("truncated IDX data"));
  CHECK(decode_idx(idx(0x08, {0, 28, 28}, {}), "f").data.empty());
}

TEST_CASE("IDX ranks, counts and files are checked", "[idx]") {
  TempDir dir;
  auto [pi, pl] = write_pair(dir, true, {1, 2});
  CHECK_THROWS_WITH(load_idx(pi, pl), Contains(pi.string()) && Contains("3 images") &&
                                          Contains(pl.string()) && Contains("2 labels"));
  // Swapped files: the image file has rank 1.
  CHECK_THROWS_WITH(load_idx(pl, pi), Contains(pl.string()) && Contains("must have rank 3"));
  auto [pi2, pl2] = write_pair(dir, false);
  CHECK_THROWS_WITH(load_idx(pi2, pi2), Contains("labels must have rank 1"));
  CHECK_THROWS_WITH(load_idx(dir / "missing.gz", pl2),
                    Contains("missing.gz") && Contains("cannot open"));
}

TEST_CASE("corrupt gzip data is an error naming the file", "[idx][gzip]") {
  TempDir dir;
  auto raw = idx(0x08, {3, 2, 2}, kPixels);
  auto gz = gzip(raw);
  CHECK(gunzip(gz, "x.gz") == raw);
  auto truncated = gz;
  truncated.resize(gz.size() - 6);
  CHECK_THROWS_WITH(gunzip(truncated, "x.gz"), Contains("x.gz: truncated gzip data"));
  auto header_only = gz;
  header_only.resize(10);
  CHECK_THROWS_WITH(gunzip(header_only, "x.gz"), Contains("truncated gzip data"));
  auto crc = gz;
  crc[crc.size() - 5] ^= std::byte{0xff};  // inside the CRC-32 trailer
  CHECK_THROWS_WITH(gunzip(crc, "x.gz"), Contains("x.gz: corrupt gzip data"));
  auto garbage = gz;
  garbage.push_back(std::byte{'x'});
  CHECK_THROWS_WITH(gunzip(garbage, "x.gz"), Contains("1 trailing bytes after the gzip data"));
  // Concatenated members are one stream, as gzip(1) treats them.
  auto two = gz;
  two.insert(two.end(), gz.begin(), gz.end());
  auto both = raw;
  both.insert(both.end(), raw.begin(), raw.end());
  CHECK(gunzip(two, "x.gz") == both);
  CHECK_THROWS_WITH(gunzip(gz, "x.gz", 10), Contains("exceeds the limit of 10 bytes"));
  write_bytes(dir / "t.gz", truncated);
  CHECK_THROWS_WITH(read_idx(dir / "t.gz"),
                    Contains((dir / "t.gz").string()) && Contains("truncated gzip"));
}

// read_idx decompresses into the array as it reads: every way a file can be short, long or corrupt
// is an error naming the file, with decode_idx's message when it has one.
TEST_CASE("IDX files stream into their buffer, with errors naming the file", "[idx][gzip]") {
  TempDir dir;
  auto raw = idx(0x08, {3, 2, 2}, kPixels);
  auto read_error = [&](const std::vector<std::byte>& bytes, const std::string& file) {
    write_bytes(dir / file, bytes);
    try {
      read_idx(dir / file);
    } catch (const Error& e) {
      std::string msg = e.what();
      CHECK_THAT(msg, Contains((dir / file).string()));
      return msg;
    }
    return std::string("no error");
  };
  for (bool gz : {false, true}) {
    auto file_of = [&](const std::vector<std::byte>& b) { return gz ? gzip(b) : b; };
    std::string f = gz ? "a.gz" : "a";
    write_bytes(dir / f, file_of(raw));
    IdxArray a = read_idx(dir / f);
    CHECK(a.dims == std::vector<int64_t>{3, 2, 2});
    CHECK(std::equal(a.data.begin(), a.data.end(), kPixels.begin(), kPixels.end()));
    // The same messages as decode_idx for the same (decompressed) bytes.
    std::vector<std::vector<std::byte>> bad = {
        bytes_of("\0\0"),
        idx(0x0D, {2}, {0, 0, 0, 0, 0, 0, 0, 0}),
        idx(0x08, {}, {}),
        idx(0x08, {2, 3}, {}),  // truncated header, below
        idx(0x08, {2, 3}, {1, 2, 3, 4, 5}),
        idx(0x08, {2, 3}, {1, 2, 3, 4, 5, 6, 7, 8}),
        idx(0x08, {0xffffffff, 0xffffffff, 0xffffffff}, {}),
        idx(0x08, {0xffffffff, 0x7fffffff}, {}),  // never allocated: reported as truncated
        idx(0x08, {1000, 1000, 1000}, {1, 2}),
    };
    bad[3].resize(9);
    for (const auto& b : bad) {
      std::string want = idx_error(b);
      auto at = want.find("f.idx: ");
      REQUIRE(at == 0);
      CHECK_THAT(read_error(file_of(b), f), Contains(want.substr(7)));
    }
  }
  auto gz = gzip(raw);
  auto truncated = gz;
  truncated.resize(gz.size() - 6);
  CHECK_THAT(read_error(truncated, "t.gz"), Contains("truncated gzip data"));
  auto crc = gz;
  crc[crc.size() - 5] ^= std::byte{0xff};
  CHECK_THAT(read_error(crc, "c.gz"), Contains("corrupt gzip data"));
  auto body = gz;
  body[body.size() / 2] ^= std::byte{0x55};
  CHECK_THAT(read_error(body, "b.gz"), Contains("gzip data"));
  auto garbage = gz;
  garbage.push_back(std::byte{'x'});
  CHECK_THAT(read_error(garbage, "g.gz"), Contains("1 trailing bytes after the gzip data"));
  // Two members: one IDX file split across them.
  std::vector<std::byte> head(raw.begin(), raw.begin() + 7), tail(raw.begin() + 7, raw.end());
  auto two = gzip(head);
  auto second = gzip(tail);
  two.insert(two.end(), second.begin(), second.end());
  write_bytes(dir / "two.gz", two);
  CHECK(read_idx(dir / "two.gz").dims == std::vector<int64_t>{3, 2, 2});
  CHECK_THAT(read_error({}, "empty"), Contains("only 0 bytes"));
}

TEST_CASE("gzip streams decompress in pieces of any size", "[gzip]") {
  std::vector<std::byte> raw(300000);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<std::byte>((i * 7919) % 251);
  auto gz = gzip(raw);
  auto two = gz;
  two.insert(two.end(), gz.begin(), gz.end());
  for (size_t piece : {size_t{1}, size_t{4093}, size_t{1} << 20}) {
    MemorySource src(two, "two.gz");
    GzipReader r(src);
    std::vector<std::byte> out;
    std::vector<std::byte> buf(piece);
    for (;;) {
      size_t n = r.read(buf);
      out.insert(out.end(), buf.begin(), buf.begin() + static_cast<int64_t>(n));
      if (n < piece) break;
      if (piece == 1 && out.size() > 1000) break;  // a byte at a time: a prefix is enough
    }
    auto want = raw;
    want.insert(want.end(), raw.begin(), raw.end());
    want.resize(out.size());
    CHECK(out == want);
    if (piece > 1) {
      CHECK(out.size() == 2 * raw.size());
      CHECK(r.position() == static_cast<int64_t>(out.size()));
      CHECK(r.read(buf) == 0);
    }
  }
  // A wrong length trailer (ISIZE) is only a size hint for gunzip, and then a CRC/length error.
  CHECK(gunzip(gz, "x.gz") == raw);
  auto bad_isize = gz;
  bad_isize.back() ^= std::byte{0x10};
  CHECK_THROWS_WITH(gunzip(bad_isize, "x.gz"), Contains("x.gz: corrupt gzip data"));
  CHECK_THROWS_WITH(gunzip(gz, "x.gz", static_cast<int64_t>(raw.size()) - 1),
                    Contains("exceeds the limit"));
  CHECK(gunzip(gz, "x.gz", static_cast<int64_t>(raw.size())) == raw);
}

TEST_CASE("the real Fashion-MNIST files load", "[idx][fashion]") {
  if (!std::filesystem::exists(std::filesystem::path(kFashionMnistDir) /
                               "t10k-labels-idx1-ubyte.gz")) {
    WARN("skipped: Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)");
    return;
  }
  Dataset test = load_fashion_mnist("test");
  REQUIRE(test.feature_shape() == Shape{10000, 1, 28, 28});
  REQUIRE(test.labels.shape() == Shape{10000});
  Dataset train = load_fashion_mnist("train");
  REQUIRE(train.feature_shape() == Shape{60000, 1, 28, 28});
  // Published facts about the data set: balanced classes, the first labels, the pixel mean.
  std::vector<int64_t> counts(10);
  for (int64_t y : train.labels.values<int64_t>()) {
    REQUIRE(y >= 0);
    REQUIRE(y < 10);
    ++counts[y];
  }
  CHECK(counts == std::vector<int64_t>(10, 6000));
  auto tl = train.labels.values<int64_t>();
  CHECK(std::vector<int64_t>(tl.begin(), tl.begin() + 4) == std::vector<int64_t>{9, 0, 0, 3});
  CHECK(test.labels.values<int64_t>()[0] == 9);
  REQUIRE(train.images);
  double sum = 0;
  for (uint8_t v : train.images->data) sum += v / 255.0;
  CHECK(sum / static_cast<double>(train.images->data.size()) == Approx(0.2860).epsilon(1e-3));
  CHECK(fashion_mnist_classes().at(9) == "Ankle boot");
  CHECK_THROWS_WITH(load_fashion_mnist("valid"), Contains("unknown split 'valid'"));
}

TEST_CASE("large data buffers are whole huge pages, uninitialised, and free cleanly", "[idx]") {
  size_t n = kLargeBufferBytes + 12345;  // not a whole number of pages
  auto* p = static_cast<uint8_t*>(allocate_large_buffer(n));
  REQUIRE(p != nullptr);
  CHECK(reinterpret_cast<uintptr_t>(p) % (size_t{2} << 20) == 0);
  p[0] = 1;
  p[n - 1] = 2;
  CHECK(p[0] + p[n - 1] == 3);
  free_large_buffer(p, n);
  // ByteVector: small sizes from the ordinary heap, large ones from the above; growth copies.
  ByteVector v(10);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(i);
  v.resize(n);
  CHECK(reinterpret_cast<uintptr_t>(v.data()) % (size_t{2} << 20) == 0);
  CHECK(v[9] == 9);
  v[n - 1] = 7;
  ByteVector w = v;
  CHECK(w[9] == 9);
  CHECK(w[n - 1] == 7);
  v.resize(5);
  v.shrink_to_fit();
  CHECK(v[4] == 4);
}
