// Reading and validating safetensors files.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "runtime/checked.h"
#include "runtime/half.h"
#include "runtime/safetensors.h"
#include "runtime/safetensors_dtypes.h"
#include "runtime/validate.h"

namespace stag::rt {

namespace {

using nlohmann::json;

struct DuplicateKey {
  std::string key;
};

// nlohmann keeps the last of duplicate keys silently; a weights file naming a tensor twice is
// ambiguous, so the parse callback refuses it.
json parse_header_json(const std::string& text, const std::string& file) {
  std::vector<std::set<std::string>> open;
  auto cb = [&open](int, json::parse_event_t ev, json& parsed) {
    switch (ev) {
      case json::parse_event_t::object_start: open.emplace_back(); break;
      case json::parse_event_t::object_end: open.pop_back(); break;
      case json::parse_event_t::key:
        if (!open.back().insert(parsed.get<std::string>()).second)
          throw DuplicateKey{parsed.get<std::string>()};
        break;
      default: break;
    }
    return true;
  };
  try {
    return json::parse(text, cb);
  } catch (const DuplicateKey& d) {
    throw Error(fmt::format("{}: safetensors header has the key \"{}\" more than once", file, d.key));
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: safetensors header is not valid JSON: {}", file, e.what()));
  }
}

int64_t as_size(const json& v, const std::string& file, const std::string& what) {
  if (!v.is_number_unsigned())
    throw Error(fmt::format("{}: {} must be non-negative integers, got {}", file, what, v.dump()));
  uint64_t u = v.get<uint64_t>();
  if (u > static_cast<uint64_t>(INT64_MAX))
    throw Error(fmt::format("{}: {} value {} does not fit in int64", file, what, u));
  return static_cast<int64_t>(u);
}

SafetensorsEntry parse_entry(const std::string& name, const json& v, const std::string& file) {
  std::string where = fmt::format("tensor \"{}\"", name);
  if (!v.is_object()) throw Error(fmt::format("{}: {} is not a JSON object", file, where));
  for (const auto& [k, _] : v.items())
    if (k != "dtype" && k != "shape" && k != "data_offsets")
      throw Error(fmt::format("{}: {} has an unexpected field \"{}\"", file, where, k));
  for (const char* k : {"dtype", "shape", "data_offsets"})
    if (!v.contains(k)) throw Error(fmt::format("{}: {} has no \"{}\"", file, where, k));

  SafetensorsEntry e;
  e.name = name;
  const json& dt = v["dtype"];
  if (!dt.is_string()) throw Error(fmt::format("{}: {}: dtype is not a string", file, where));
  e.file_dtype = dt.get<std::string>();
  auto st = safetensors_dtype(e.file_dtype);
  if (!st)
    throw Error(fmt::format("{}: {}: unsupported dtype \"{}\" (supported: F32 F64 I32 I64 BOOL, "
                            "and F16 BF16 converted to f32)",
                            file, where, e.file_dtype));
  e.dtype = st->loads_as;

  const json& sh = v["shape"];
  if (!sh.is_array()) throw Error(fmt::format("{}: {}: shape is not an array", file, where));
  if (sh.size() > kMaxRank)
    throw Error(fmt::format("{}: {}: shape has rank {}, more than {}", file, where, sh.size(), kMaxRank));
  for (const json& d : sh) e.shape.push_back(as_size(d, file, where + " shape entries"));

  const json& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2)
    throw Error(fmt::format("{}: {}: data_offsets must be an array [begin, end]", file, where));
  e.begin = as_size(off[0], file, where + " data_offsets");
  e.end = as_size(off[1], file, where + " data_offsets");
  if (e.end < e.begin)
    throw Error(fmt::format("{}: {}: data_offsets [{}, {}] end before they begin", file, where,
                            e.begin, e.end));

  auto numel = checked_numel(e.shape);
  auto nbytes = numel ? checked_mul(*numel, st->size) : std::nullopt;
  if (!nbytes)
    throw Error(fmt::format("{}: {}: shape {} overflows int64 bytes", file, where,
                            shape_to_string(e.shape)));
  if (*nbytes != e.end - e.begin)
    throw Error(fmt::format("{}: {}: data_offsets [{}, {}] span {} bytes but {}{} needs {}", file,
                            where, e.begin, e.end, e.end - e.begin, e.file_dtype,
                            shape_to_string(e.shape), *nbytes));
  return e;
}

SafetensorsMetadata parse_metadata(const json& v, const std::string& file) {
  if (!v.is_object())
    throw Error(fmt::format("{}: __metadata__ is not a JSON object of strings", file));
  SafetensorsMetadata m;
  for (const auto& [k, val] : v.items()) {
    if (!val.is_string())
      throw Error(fmt::format("{}: __metadata__ value for \"{}\" is not a string: {}", file, k,
                              val.dump()));
    m.emplace(k, val.get<std::string>());
  }
  return m;
}

// Like the reference: sorted by offsets, the tensors must tile [0, data_size) exactly.
void check_layout(std::vector<SafetensorsEntry>& es, int64_t data_size, const std::string& file) {
  std::sort(es.begin(), es.end(), [](const auto& a, const auto& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  int64_t at = 0;
  const SafetensorsEntry* prev = nullptr;
  for (const auto& e : es) {
    if (e.end > data_size)
      throw Error(fmt::format("{}: tensor \"{}\" data_offsets [{}, {}] run past the end of the data "
                              "section ({} bytes)",
                              file, e.name, e.begin, e.end, data_size));
    if (e.begin < at)
      throw Error(fmt::format("{}: tensors \"{}\" [{}, {}] and \"{}\" [{}, {}] overlap", file,
                              prev->name, prev->begin, prev->end, e.name, e.begin, e.end));
    if (e.begin > at)
      throw Error(fmt::format("{}: gap of {} unused bytes in the data section before tensor \"{}\" "
                              "(offset {})",
                              file, e.begin - at, e.name, e.begin));
    at = e.end;
    prev = &e;
  }
  if (at != data_size)
    throw Error(fmt::format("{}: the tensors cover {} bytes but the data section has {} "
                            "(trailing bytes)",
                            file, at, data_size));
}

}  // namespace

SafetensorsIndex read_safetensors_index(const ByteSource& src) {
  const std::string& file = src.name();
  const int64_t size = src.size();
  if (size < 8)
    throw Error(fmt::format("{}: not a safetensors file: {} bytes, too short for the 8-byte header "
                            "size",
                            file, size));
  std::array<std::byte, 8> nb{};
  src.read_at(0, nb);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint64_t>(nb[i]);
  if (n > static_cast<uint64_t>(kMaxSafetensorsHeaderBytes))
    throw Error(fmt::format("{}: safetensors header size {} exceeds the limit of {} bytes", file, n,
                            kMaxSafetensorsHeaderBytes));
  if (static_cast<int64_t>(n) > size - 8)
    throw Error(fmt::format("{}: safetensors header size {} runs past the end of the file ({} "
                            "bytes)",
                            file, n, size));
  std::string text(n, '\0');
  src.read_at(8, std::as_writable_bytes(std::span(text)));
  json h = parse_header_json(text, file);
  if (!h.is_object()) throw Error(fmt::format("{}: safetensors header is not a JSON object", file));

  SafetensorsIndex idx;
  idx.data_start = 8 + static_cast<int64_t>(n);
  for (const auto& [k, v] : h.items()) {
    if (k == "__metadata__")
      idx.metadata = parse_metadata(v, file);
    else
      idx.entries.push_back(parse_entry(k, v, file));
  }
  check_layout(idx.entries, size - idx.data_start, file);
  return idx;
}

SafetensorsFile decode_safetensors(const ByteSource& src) {
  SafetensorsIndex idx = read_safetensors_index(src);
  SafetensorsFile out;
  out.metadata = std::move(idx.metadata);
  for (auto& e : idx.entries) {
    Tensor t = Tensor::uninitialized(e.dtype, e.shape);
    int64_t at = idx.data_start + e.begin;
    if (e.file_dtype == "F16" || e.file_dtype == "BF16") {
      std::vector<uint16_t> raw(static_cast<size_t>(t.numel()));
      src.read_at(at, std::as_writable_bytes(std::span(raw)));
      auto conv = e.file_dtype == "F16" ? f16_to_f32 : bf16_to_f32;
      // The file is little-endian, and so is every host the runtime builds for.
      std::transform(raw.begin(), raw.end(), t.values<float>().begin(), conv);
    } else {
      src.read_at(at, t.bytes());
      if (t.dtype() == DType::b8) check_bool_bytes(t, src.name() + ": tensor \"" + e.name + "\"");
    }
    out.tensors.emplace(std::move(e.name), std::move(t));
  }
  return out;
}

SafetensorsFile decode_safetensors(std::span<const std::byte> bytes, std::string name) {
  return decode_safetensors(MemorySource(bytes, std::move(name)));
}

SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  return decode_safetensors(FileSource(path));
}

}  // namespace stag::rt
