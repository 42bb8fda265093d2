// .npy: round trips, NumPy's own files, hand-built headers of every version, and corrupt files.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include "runtime/npy.h"
#include "test_util.h"

using namespace stag::rt;
using namespace stag::rt::test;
using Catch::Matchers::Contains;

namespace {

Tensor patterned(DType dt, Shape shape) {
  Tensor t(dt, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) {
    switch (dt) {
      case DType::f32: t.values<float>()[i] = 0.25f * static_cast<float>(i) - 3.0f; break;
      case DType::f64: t.values<double>()[i] = std::ldexp(1.0 + static_cast<double>(i), -40); break;
      case DType::i32: t.values<int32_t>()[i] = static_cast<int32_t>(i * 7919 - 100000); break;
      case DType::i64: t.values<int64_t>()[i] = (int64_t{1} << 40) - i * 3; break;
      case DType::b8: t.values<bool>()[i] = (i % 3) == 1; break;
    }
  }
  return t;
}

// Preamble + header text + data, with the header length field sized for the version.
std::vector<std::byte> npy(int major, std::string_view header, std::string_view data = "",
                           int minor = 0) {
  std::string s = "\x93NUMPY";
  s.push_back(static_cast<char>(major));
  s.push_back(static_cast<char>(minor));
  size_t n = header.size();
  for (int i = 0; i < (major == 1 ? 2 : 4); ++i) s.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  s += header;
  s += data;
  return bytes_of(s);
}

std::string f32_bytes(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.begin(), s.size());
  return s;
}

const std::string kF32_2 = f32_bytes({1.5f, -2.0f});

}  // namespace

TEST_CASE("npy round trips every dtype and shape", "[npy]") {
  TempDir dir;
  const std::vector<Shape> shapes = {{}, {1}, {5}, {3, 7}, {2, 1, 3}, {0}, {4, 0, 2},
                                     {1, 1, 1, 1, 1}, {17, 13}, {1000003}};
  for (DType dt : {DType::f32, DType::f64, DType::i32, DType::i64, DType::b8}) {
    for (const Shape& s : shapes) {
      Tensor t = patterned(dt, s);
      INFO(t.type_string());
      auto bytes = encode_npy(t);
      CHECK((bytes.size() - static_cast<size_t>(t.nbytes())) % 64 == 0);
      CHECK(identical(decode_npy(bytes), t));
      auto path = dir / "t.npy";
      write_npy(path, t);
      CHECK(identical(read_npy(path), t));
      CHECK(read_bytes(path) == bytes);
    }
  }
  CHECK(dir.entries() == std::vector<std::string>{"t.npy"});
}

TEST_CASE("npy files written by NumPy read, and re-encode to the same bytes", "[npy]") {
  Tensor a = read_npy(fixture("np_f32_2x3.npy"));
  CHECK(a.type_string() == "f32[2,3]");
  CHECK(a.at<float>({1, 2}) == 1.5f);
  CHECK(a.at<float>({0, 0}) == -1.0f);

  Tensor s = read_npy(fixture("np_f64_scalar.npy"));
  CHECK(s.type_string() == "f64[]");
  CHECK(s.values<double>()[0] == 3.25);

  Tensor i = read_npy(fixture("np_i32_5.npy"));
  CHECK(i.type_string() == "i32[5]");
  CHECK(i.values<int32_t>()[4] == 2147483647);
  CHECK(i.values<int32_t>()[3] == -4);

  Tensor l = read_npy(fixture("np_i64_2x1x3.npy"));
  CHECK(l.type_string() == "i64[2,1,3]");
  CHECK(l.at<int64_t>({1, 0, 2}) == 2);

  Tensor b = read_npy(fixture("np_bool_4.npy"));
  CHECK(b.type_string() == "bool[4]");
  CHECK(b.values<bool>()[0]);
  CHECK(!b.values<bool>()[1]);

  Tensor e = read_npy(fixture("np_f32_0x3.npy"));
  CHECK(e.type_string() == "f32[0,3]");

  for (const char* f : {"np_f32_2x3.npy", "np_f64_scalar.npy", "np_i32_5.npy", "np_i64_2x1x3.npy",
                        "np_bool_4.npy", "np_f32_0x3.npy"}) {
    INFO(f);
    CHECK(encode_npy(read_npy(fixture(f))) == read_bytes(fixture(f)));
  }
}

TEST_CASE("npy format versions 2.0 and 3.0 from NumPy", "[npy]") {
  for (const char* f : {"np_v2_i32_3.npy", "np_v3_i32_3.npy"}) {
    Tensor t = read_npy(fixture(f));
    CHECK(t.type_string() == "i32[3]");
    CHECK(t.values<int32_t>()[2] == 9);
  }
}

TEST_CASE("npy hand-built headers: every version and the literal syntax Python allows", "[npy]") {
  auto check = [](const std::vector<std::byte>& b, const char* type) {
    Tensor t = decode_npy(b);
    CHECK(t.type_string() == type);
    return t;
  };
  Tensor t = check(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", kF32_2), "f32[2]");
  CHECK(t.values<float>()[1] == -2.0f);
  check(npy(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }   \n", kF32_2), "f32[2]");
  check(npy(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", kF32_2), "f32[2]");
  // Double quotes, any key order, no trailing comma, newlines and tabs inside.
  check(npy(1, "{\"shape\": (1,2),\n\t\"fortran_order\":False,\"descr\":\"<f4\"}", kF32_2), "f32[1,2]");
  check(npy(1, "{'descr':'<f8','fortran_order':False,'shape':()}", std::string(8, '\0')), "f64[]");
  check(npy(1, "{'descr': '<i8', 'fortran_order': False, 'shape': ( 0 , 5 , ), }", ""), "i64[0,5]");
  // Version 1.0 headers may be up to 65535 bytes: a long run of padding.
  std::string padded = "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }" + std::string(60000, ' ') + "\n";
  check(npy(1, padded, std::string("\x01\x00\x01", 3)), "bool[3]");
}

TEST_CASE("npy: corrupt files give specific errors", "[npy]") {
  const std::string hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
  auto fails = [](const std::vector<std::byte>& b, const std::string& msg) {
    CHECK_THROWS_WITH(decode_npy(b, "x.npy"), Contains("x.npy: ") && Contains(msg));
  };
  SECTION("preamble") {
    fails(bytes_of("\x93NUMPY"), "shorter than the preamble");
    auto bad = npy(1, hdr, kF32_2);
    bad[1] = std::byte{'m'};
    fails(bad, "bad magic");
    fails(bytes_of("PK\x03\x04 this is a zip file"), "bad magic");
    fails(npy(4, hdr, kF32_2), "unsupported .npy format version 4.0");
    fails(npy(1, hdr, kF32_2, 1), "unsupported .npy format version 1.1");
    fails(npy(0, hdr, kF32_2), "unsupported .npy format version 0.0");
  }
  SECTION("header length") {
    auto b = npy(1, hdr, "");
    b.resize(40);  // cut inside the header
    fails(b, "truncated .npy header: it claims 58 bytes but the file has only 30");
    auto huge = npy(2, hdr, kF32_2);
    huge[8] = huge[9] = huge[10] = std::byte{0xff};
    huge[11] = std::byte{0x7f};
    fails(huge, "header length 2147483647 exceeds the limit");
    auto v2short = bytes_of(std::string("\x93NUMPY\x02\x00\x10\x00", 10));
    fails(v2short, "truncated .npy header length");
  }
  SECTION("data size") {
    fails(npy(1, hdr, kF32_2.substr(0, 7)), "truncated data: the header promises 8 bytes (f32[2]) but the file holds 7");
    fails(npy(1, hdr, ""), "truncated data");
    fails(npy(1, hdr, kF32_2 + "x"), "1 trailing bytes after the 8 bytes of data");
  }
  SECTION("dtype and order") {
    fails(npy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", kF32_2), "fortran_order is True");
    fails(npy(1, "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", "abcd"), "unsupported dtype '<f2'");
    fails(npy(1, "{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }", kF32_2), "unsupported dtype '>i4' (big-endian data)");
    fails(npy(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", kF32_2), "structured (record) dtypes are not supported");
    fails(npy(1, "{'descr': 'O', 'fortran_order': False, 'shape': (2,), }", kF32_2), "unsupported dtype 'O'");
    fails(npy(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", std::string("\x01\x02", 2)), "bool element 1 has byte value 2");
  }
  SECTION("shape") {
    fails(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", kF32_2), "negative dimension in shape");
    fails(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", kF32_2), "dimension in shape does not fit in int64");
    fails(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", kF32_2), "more elements than fit in int64");
    fails(npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693952,), }", kF32_2), "needs more bytes than fit in int64");
    fails(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", kF32_2), "shape (n) is not a tuple; write (n,)");
    fails(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': [2], }", kF32_2), "shape must be a tuple");
    fails(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,), }", kF32_2), "plain decimal integer");
    fails(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (02,), }", kF32_2), "leading zero");
    fails(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2 2), }", kF32_2), "expected ',' or ')' in shape");
    fails(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (,), }", kF32_2), "expected a non-negative integer");
    std::string deep = "{'descr': '<f4', 'fortran_order': False, 'shape': (" ;
    for (int i = 0; i < 70; ++i) deep += "1,";
    fails(npy(1, deep + "), }", kF32_2), "more than 64 dimensions");
  }
  SECTION("dictionary syntax") {
    fails(npy(1, "", ""), "expected the header to start with '{'");
    fails(npy(1, "'descr': '<f4'", ""), "expected the header to start with '{'");
    fails(npy(1, "{'descr': '<f4', 'fortran_order': False, }", kF32_2), "missing key 'shape'");
    fails(npy(1, "{'fortran_order': False, 'shape': (2,)}", kF32_2), "missing key 'descr'");
    fails(npy(1, "{'descr': '<f4', 'shape': (2,)}", kF32_2), "missing key 'fortran_order'");
    fails(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", kF32_2), "unexpected key 'extra'");
    fails(npy(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", kF32_2), "duplicate key 'descr'");
    fails(npy(1, "{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}", kF32_2), "expected ',' or '}' after a value");
    fails(npy(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", kF32_2), "fortran_order must be True or False");
    fails(npy(1, "{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}", kF32_2), "expected ',' or '}'");
    fails(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", kF32_2), "unexpected text after the header dictionary");
    fails(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", kF32_2), "expected ',' or '}'");
    fails(npy(1, "{'descr': '<f\\x34', 'fortran_order': False, 'shape': (2,)}", kF32_2), "escape sequences");
    fails(npy(1, "{descr: '<f4', 'fortran_order': False, 'shape': (2,)}", kF32_2), "expected a quoted key");
    fails(npy(1, "{'descr': '<f4", kF32_2), "unterminated string");
  }
}

TEST_CASE("npy files NumPy writes that the runtime refuses", "[npy]") {
  CHECK_THROWS_WITH(read_npy(fixture("np_fortran_2x3.npy")), Contains("np_fortran_2x3.npy: fortran_order is True"));
  CHECK_THROWS_WITH(read_npy(fixture("np_bigendian_f4.npy")), Contains("unsupported dtype '>f4' (big-endian data)"));
  CHECK_THROWS_WITH(read_npy(fixture("np_u8_3.npy")), Contains("unsupported dtype '|u1'"));
  CHECK_THROWS_WITH(read_npy("/nonexistent/dir/x.npy"), Contains("/nonexistent/dir/x.npy: cannot open"));
  CHECK_THROWS_WITH(read_npy("/tmp"), Contains("/tmp: not a regular file"));
}
