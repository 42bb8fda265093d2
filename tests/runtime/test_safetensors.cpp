// safetensors: round trips, the reference implementation's bytes, fixtures, and corrupt files.
#include <catch2/catch.hpp>

#include <bit>
#include <cstring>

#include "runtime/safetensors.h"
#include "test_util.h"

using namespace stag::rt;
using namespace stag::rt::test;
using Catch::Matchers::Contains;

namespace {

// 8-byte little-endian size, header text, data.
std::vector<std::byte> st(std::string_view header, std::string_view data = "") {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return bytes_of(s + std::string(header) + std::string(data));
}

std::vector<std::byte> u8s(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int x : v) out.push_back(static_cast<std::byte>(x));
  return out;
}

std::map<std::string, Tensor> sample() {
  std::map<std::string, Tensor> m;
  m.emplace("w", Tensor::from<float>({2, 3}, {1, 2, 3, 4, 5, 6}));
  m.emplace("b", Tensor::from<float>({3}, {-1, 0, 1}));
  m.emplace("step", Tensor::from<int64_t>({}, {77}));
  m.emplace("labels", Tensor::from<int32_t>({5}, {0, 1, 2, 3, 4}));
  m.emplace("mask", Tensor::from<bool>({3}, {true, false, true}));
  m.emplace("d", Tensor::from<double>({1, 1}, {1e-310}));
  m.emplace("empty", Tensor(DType::f32, {0, 4}));
  m.emplace("odd", Tensor::from<bool>({1}, {true}));  // makes later data unaligned unless sorted
  return m;
}

std::vector<NamedTensor> refs(const std::map<std::string, Tensor>& m) {
  std::vector<NamedTensor> r;
  for (const auto& [k, v] : m) r.push_back({k, &v});
  return r;
}

}  // namespace

TEST_CASE("safetensors round trip with metadata", "[safetensors]") {
  auto m = sample();
  SafetensorsMetadata meta{{"step", "1200"}, {"epoch", "3"}, {"note", "héllo \"quoted\"\n"}};
  auto bytes = encode_safetensors(refs(m), meta);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  CHECK(n % 8 == 0);

  SafetensorsFile f = decode_safetensors(bytes);
  CHECK(f.metadata == meta);
  REQUIRE(f.tensors.size() == m.size());
  for (const auto& [k, v] : m) {
    INFO(k);
    CHECK(identical(f.tensors.at(k), v));
  }

  // Sorted by dtype alignment, so every tensor's data sits at a multiple of its element size.
  auto idx = read_safetensors_index(MemorySource(bytes));
  CHECK(idx.data_start == 8 + static_cast<int64_t>(n));
  for (const auto& e : idx.entries) CHECK((idx.data_start + e.begin) % dtype_size(e.dtype) == 0);
  CHECK(idx.entries.front().file_dtype == "I64");
  CHECK(idx.entries.back().file_dtype == "BOOL");

  TempDir dir;
  write_safetensors(dir / "ckpt.safetensors", m, meta);
  CHECK(read_bytes(dir / "ckpt.safetensors") == bytes);
  SafetensorsFile g = read_safetensors(dir / "ckpt.safetensors");
  CHECK(identical(g.tensors.at("w"), m.at("w")));
  CHECK(g.metadata.at("epoch") == "3");
  CHECK(dir.entries() == std::vector<std::string>{"ckpt.safetensors"});

  // No tensors and no metadata: the reference writes "{}" and six spaces.
  CHECK(encode_safetensors({}) == u8s({8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '}));
  CHECK(decode_safetensors(encode_safetensors({})).tensors.empty());
}

TEST_CASE("safetensors bytes match the reference implementation's own tests", "[safetensors]") {
  // safetensors/src/tensor.rs, test_serialization and test_serialization_forced_alignement.
  Tensor attn = Tensor::from<float>({1, 2, 3}, {0, 1, 2, 3, 4, 5});
  std::vector<NamedTensor> one{{"attn.0", &attn}};
  auto expected = st(R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})");
  // No padding: the header is already 64 bytes.
  CHECK(expected.size() == 72);
  auto data = attn.bytes();
  expected.insert(expected.end(), data.begin(), data.end());
  CHECK(encode_safetensors(one) == expected);

  Tensor attn4 = Tensor::from<float>({1, 1, 2, 3}, {0, 1, 2, 3, 4, 5});
  std::vector<NamedTensor> two{{"attn0", &attn4}};
  auto expected2 = st(R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       )");
  expected2.insert(expected2.end(), attn4.bytes().begin(), attn4.bytes().end());
  CHECK(encode_safetensors(two) == expected2);

  // test_empty with metadata {"framework": "pt"}.
  CHECK(encode_safetensors({}, {{"framework", "pt"}}) ==
        st(R"({"__metadata__":{"framework":"pt"}}     )"));
}

TEST_CASE("safetensors fixture written by the reference rules", "[safetensors]") {
  SafetensorsFile f = read_safetensors(fixture("reference.safetensors"));
  CHECK(f.metadata == SafetensorsMetadata{{"step", "42"}, {"epoch", "3"}, {"format", "pt"}});
  CHECK(f.tensors.at("layer1.weight").type_string() == "f32[2,3]");
  CHECK(f.tensors.at("layer1.weight").at<float>({1, 2}) == 1.25f);
  CHECK(f.tensors.at("layer1.bias").values<float>()[2] == 1.5f);
  CHECK(f.tensors.at("step").values<int64_t>()[0] == 1234567890123);
  CHECK(f.tensors.at("labels").values<int32_t>()[2] == 4);
  CHECK(f.tensors.at("mask").at<bool>({1, 1}));
  CHECK(!f.tensors.at("mask").at<bool>({0, 1}));
  CHECK(f.tensors.at("ref.f64").values<double>()[0] == 1e-300);
  CHECK(f.tensors.at("Zeta").type_string() == "f32[0]");
  // Writing the same tensors reproduces the file byte for byte.
  std::vector<NamedTensor> r = refs(f.tensors);
  CHECK(encode_safetensors(r, f.metadata) == read_bytes(fixture("reference.safetensors")));
}

TEST_CASE("safetensors F16 and BF16 load as f32", "[safetensors]") {
  SafetensorsFile f = read_safetensors(fixture("half.safetensors"));
  auto idx = read_safetensors_index(FileSource(fixture("half.safetensors")));
  CHECK(idx.entries.size() == 4);
  for (const char* name : {"h", "b"}) {
    INFO(name);
    const Tensor& got = f.tensors.at(name);
    const Tensor& want = f.tensors.at(std::string(name) + "_expected");
    CHECK(got.dtype() == DType::f32);
    CHECK(identical(got, want));
  }
  CHECK(f.tensors.at("h").values<float>()[6] == 5.9604645e-08f);  // smallest subnormal half
}

TEST_CASE("safetensors: corrupt files give clear errors", "[safetensors]") {
  auto fails = [](const std::vector<std::byte>& b, const std::string& msg) {
    CHECK_THROWS_WITH(decode_safetensors(b, "m.safetensors"),
                      Contains("m.safetensors: ") && Contains(msg));
  };
  const std::string f8(8, '\0');
  SECTION("header size") {
    fails(u8s({1, 0, 0}), "too short for the 8-byte header size");
    fails(u8s({0x10, 0, 0, 0, 0, 0, 0, 0, '{', '}'}), "header size 16 runs past the end of the file (10 bytes)");
    fails(u8s({0, 0xe1, 0xf5, 0x05, 0, 0, 0, 0, '{', '}'}), "header size 100000000 runs past");
    fails(u8s({1, 0xe1, 0xf5, 0x05, 0, 0, 0, 0, '{', '}'}), "header size 100000001 exceeds the limit of 100000000 bytes");
    fails(u8s({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'}), "exceeds the limit");
  }
  SECTION("JSON") {
    fails(st("{\"a\":"), "not valid JSON");
    fails(st("{\"a\":{}} x"), "not valid JSON");
    fails(st(std::string("{\"\xff\":{}}")), "not valid JSON");
    fails(st("[1,2]"), "header is not a JSON object");
    fails(st("\"str\""), "header is not a JSON object");
    fails(st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", std::string(16, '\0')),
          "has the key \"a\" more than once");
  }
  SECTION("entries") {
    fails(st(R"({"a":[1]})"), "tensor \"a\" is not a JSON object");
    fails(st(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", f8), "tensor \"a\" has no \"dtype\"");
    fails(st(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", f8), "has no \"shape\"");
    fails(st(R"({"a":{"dtype":"F32","shape":[2]}})", f8), "has no \"data_offsets\"");
    fails(st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", f8), "unexpected field \"x\"");
    fails(st(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})", f8), "tensor \"a\": unsupported dtype \"U8\"");
    fails(st(R"({"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", f8), "unsupported dtype \"F8_E4M3\"");
    fails(st(R"({"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}})", f8), "unsupported dtype \"f32\"");
    fails(st(R"({"a":{"dtype":3,"shape":[2],"data_offsets":[0,8]}})", f8), "dtype is not a string");
    fails(st(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", f8), "shape is not an array");
    fails(st(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", f8), "shape entries must be non-negative integers, got -2");
    fails(st(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", f8), "must be non-negative integers, got 2.0");
    fails(st(R"({"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,8]}})", f8), "does not fit in int64");
    fails(st(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", f8), "overflows int64 bytes");
    fails(st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", f8), "data_offsets must be an array [begin, end]");
    fails(st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", f8), "end before they begin");
    fails(st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,"8"]}})", f8), "data_offsets must be non-negative integers");
    fails(st(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", f8), "data_offsets [0, 8] span 8 bytes but F32[3] needs 12");
    fails(st(R"({"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", "\x01\x03"), "bool element 1 has byte value 3");
  }
  SECTION("layout") {
    fails(st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", std::string(12, '\0')),
          "tensors \"a\" [0, 8] and \"b\" [4, 12] overlap");
    fails(st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", f8),
          "overlap");
    fails(st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})", std::string(20, '\0')),
          "gap of 4 unused bytes in the data section before tensor \"b\"");
    fails(st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", std::string(12, '\0')), "gap of 4 unused bytes");
    fails(st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "1234"), "data_offsets [0, 8] run past the end of the data section (4 bytes)");
    fails(st(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(12, '\0')), "the tensors cover 8 bytes but the data section has 12");
    fails(st(R"({})", "x"), "cover 0 bytes but the data section has 1");
  }
  SECTION("metadata") {
    fails(st(R"({"__metadata__":{"step":3}})"), "__metadata__ value for \"step\" is not a string: 3");
    fails(st(R"({"__metadata__":["a"]})"), "__metadata__ is not a JSON object");
  }
}

TEST_CASE("safetensors: writer refuses bad names before touching the disk", "[safetensors]") {
  TempDir dir;
  Tensor t = Tensor::from<float>({1}, {1});
  std::vector<NamedTensor> dup{{"a", &t}, {"a", &t}};
  CHECK_THROWS_WITH(write_safetensors(dir / "x.safetensors", dup), Contains("\"a\" given more than once"));
  std::vector<NamedTensor> reserved{{"__metadata__", &t}};
  CHECK_THROWS_WITH(write_safetensors(dir / "x.safetensors", reserved), Contains("reserved"));
  std::vector<NamedTensor> bad_utf8{{"\xff\xfe", &t}};
  CHECK_THROWS_WITH(write_safetensors(dir / "x.safetensors", bad_utf8), Contains("not valid UTF-8"));
  CHECK(dir.entries().empty());
}
