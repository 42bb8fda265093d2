// TensorProto and value types to stag types and reference tensors, external data confined to
// the model's directory.
#include "frontend/onnx/tensor.h"

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "frontend/onnx/ctx.h"

namespace stag::onnx_import {

namespace fs = std::filesystem;

std::string elem_type_name(int32_t t) {
  return onnx::TensorProto_DataType_IsValid(t) ? onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(t))
                                                : fmt::format("type {}", t);
}

DType to_dtype(int32_t t) {
  switch (t) {
    case onnx::TensorProto::FLOAT: return DType::f32;
    case onnx::TensorProto::DOUBLE: return DType::f64;
    case onnx::TensorProto::INT32: return DType::i32;
    case onnx::TensorProto::INT64: return DType::i64;
    case onnx::TensorProto::BOOL: return DType::b8;
    default: fail(fmt::format("element type {} is not supported (stag has FLOAT, DOUBLE, INT32, INT64, BOOL)", elem_type_name(t)));
  }
}

int32_t to_elem_type(DType t) {
  switch (t) {
    case DType::f32: return onnx::TensorProto::FLOAT;
    case DType::f64: return onnx::TensorProto::DOUBLE;
    case DType::i32: return onnx::TensorProto::INT32;
    case DType::i64: return onnx::TensorProto::INT64;
    case DType::b8: return onnx::TensorProto::BOOL;
  }
  return onnx::TensorProto::UNDEFINED;
}

Type checked_type(DType dtype, const Dims& dims, std::string_view what) {
  for (int64_t d : dims)
    if (d == 0) fail(fmt::format("{} has a dimension of size 0; stag's tensors are never empty", what));
  Type t{dtype, dims};
  if (auto e = type_error(t); !e.empty()) fail(fmt::format("{}: {}", what, e));
  return t;
}

namespace {

template <typename T>
std::vector<double> from_bytes(const std::string& raw, size_t n) {
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, raw.data() + i * sizeof(T), sizeof(T));
    out[i] = static_cast<double>(v);
  }
  return out;
}

std::vector<double> decode_raw(DType dtype, const std::string& raw, size_t n) {
  if (raw.size() != n * static_cast<size_t>(dtype_size(dtype)))
    fail(fmt::format("raw data holds {} bytes, {} elements of {} need {}", raw.size(), n, dtype_name(dtype),
                     n * static_cast<size_t>(dtype_size(dtype))));
  switch (dtype) {
    case DType::f32: return from_bytes<float>(raw, n);
    case DType::f64: return from_bytes<double>(raw, n);
    case DType::i32: return from_bytes<int32_t>(raw, n);
    case DType::i64: return from_bytes<int64_t>(raw, n);
    case DType::b8: return from_bytes<uint8_t>(raw, n);
  }
  return {};
}

template <typename Field>
std::vector<double> from_field(const Field& f, size_t n) {
  if (static_cast<size_t>(f.size()) != n) fail(fmt::format("holds {} values, its shape needs {}", f.size(), n));
  return std::vector<double>(f.begin(), f.end());
}

std::vector<double> decode_fields(const onnx::TensorProto& t, DType dtype, size_t n) {
  switch (dtype) {
    case DType::f32: return from_field(t.float_data(), n);
    case DType::f64: return from_field(t.double_data(), n);
    case DType::i64: return from_field(t.int64_data(), n);
    default: return from_field(t.int32_data(), n);  // INT32 and BOOL
  }
}

// A relative path that stays inside `dir` once symbolic links are resolved.
fs::path confined_path(const std::string& dir, const std::string& location) {
  fs::path rel(location);
  if (rel.empty() || rel.is_absolute()) fail(fmt::format("external data location '{}' must be a relative path", location));
  std::error_code ec;
  fs::path base = fs::weakly_canonical(dir.empty() ? fs::path(".") : fs::path(dir), ec);
  fs::path full = fs::weakly_canonical(base / rel, ec);
  auto [b, f] = std::mismatch(base.begin(), base.end(), full.begin(), full.end());
  if (ec || b != base.end()) fail(fmt::format("external data location '{}' leaves the model's directory", location));
  return full;
}

std::string read_external(const onnx::TensorProto& t, const std::string& dir, size_t bytes) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : t.external_data()) {
    if (kv.key() == "location") location = kv.value();
    if (kv.key() == "offset") offset = std::stoll(kv.value());
    if (kv.key() == "length") length = std::stoll(kv.value());
  }
  fs::path path = confined_path(dir, location);
  if (offset < 0 || (length >= 0 && static_cast<size_t>(length) != bytes))
    fail(fmt::format("external data of '{}' has offset {} and length {}; {} bytes are needed", t.name(), offset, length, bytes));
  std::ifstream in(path, std::ios::binary);
  std::string raw(bytes, '\0');
  if (!in || !in.seekg(offset) || !in.read(raw.data(), static_cast<std::streamsize>(bytes)))
    fail(fmt::format("cannot read {} bytes at offset {} of '{}'", bytes, offset, location));
  return raw;
}

}  // namespace

RefTensor to_ref(const onnx::TensorProto& t, const std::string& dir) {
  std::string what = fmt::format("tensor '{}'", t.name());
  if (t.has_segment()) fail(what + " is segmented, which is not supported");
  DType dtype = to_dtype(t.data_type());
  Type type = checked_type(dtype, Dims(t.dims().begin(), t.dims().end()), what);
  auto n = static_cast<size_t>(*checked_numel(type.dims));
  if (n > (size_t{1} << 31) / static_cast<size_t>(dtype_size(dtype))) fail(what + " is larger than 2 GB");
  std::vector<double> data;
  try {
    if (t.data_location() == onnx::TensorProto::EXTERNAL)
      data = decode_raw(dtype, read_external(t, dir, n * static_cast<size_t>(dtype_size(dtype))), n);
    else
      data = t.has_raw_data() ? decode_raw(dtype, t.raw_data(), n) : decode_fields(t, dtype, n);
  } catch (const std::invalid_argument&) {
    fail(what + ": an external data offset or length is not a number");
  } catch (const std::out_of_range&) {
    fail(what + ": an external data offset or length is out of range");
  } catch (const ConvertError& e) {
    fail(fmt::format("{}: {}", what, e.what()));
  }
  return RefTensor(type, std::move(data));
}

RefTensor read_tensor(const std::string& bytes, const std::string& dir, std::string* name) {
  onnx::TensorProto t;
  if (!t.ParseFromString(bytes)) throw std::runtime_error("not a serialized ONNX TensorProto");
  if (name) *name = t.name();
  try {
    return to_ref(t, dir);
  } catch (const ConvertError& e) {
    throw std::runtime_error(e.what());
  }
}

}  // namespace stag::onnx_import
