// Writing safetensors files, byte-compatible with the reference implementation.
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "runtime/safetensors.h"
#include "runtime/safetensors_dtypes.h"

namespace stag::rt {

namespace {

struct Planned {
  const NamedTensor* t;
  SafetensorsDType dt;
};

std::string header_text(std::span<const NamedTensor> tensors, const SafetensorsMetadata& metadata,
                        std::vector<Planned>& order, const std::string& target) {
  std::set<std::string_view> seen;
  for (const auto& nt : tensors) {
    if (nt.tensor == nullptr)
      throw Error(fmt::format("{}: tensor \"{}\" is null", target, nt.name));
    if (nt.name == "__metadata__")
      throw Error(fmt::format("{}: \"__metadata__\" is reserved and cannot name a tensor", target));
    if (!seen.insert(nt.name).second)
      throw Error(fmt::format("{}: tensor name \"{}\" given more than once", target, nt.name));
    order.push_back({&nt, safetensors_dtype(nt.tensor->dtype())});
  }
  // The reference order: larger-alignment dtypes first, then by name (bytewise).
  std::sort(order.begin(), order.end(), [](const Planned& a, const Planned& b) {
    if (a.dt.rank != b.dt.rank) return a.dt.rank > b.dt.rank;
    return a.t->name < b.t->name;
  });

  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    h["__metadata__"] = std::move(m);
  }
  int64_t offset = 0;
  for (const auto& p : order) {
    nlohmann::ordered_json e = nlohmann::ordered_json::object();
    e["dtype"] = p.dt.name;
    e["shape"] = p.t->tensor->shape();
    e["data_offsets"] = {offset, offset + p.t->tensor->nbytes()};
    offset += p.t->tensor->nbytes();
    h[p.t->name] = std::move(e);
  }
  std::string text;
  try {
    text = h.dump();
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: a tensor name or metadata string is not valid UTF-8 ({})", target,
                            e.what()));
  }
  // Spaces are JSON whitespace, so padding keeps the header valid while aligning the data to 8.
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

void write_to(ByteSink& sink, std::span<const NamedTensor> tensors,
              const SafetensorsMetadata& metadata, const std::string& target) {
  std::vector<Planned> order;
  std::string text = header_text(tensors, metadata, order, target);
  std::string n(8, '\0');
  for (int i = 0; i < 8; ++i) n[i] = static_cast<char>((static_cast<uint64_t>(text.size()) >> (8 * i)) & 0xff);
  sink.write(n);
  sink.write(text);
  for (const auto& p : order) sink.write(p.t->tensor->bytes());
}

}  // namespace

void write_safetensors(ByteSink& sink, std::span<const NamedTensor> tensors,
                       const SafetensorsMetadata& metadata) {
  write_to(sink, tensors, metadata, "safetensors");
}

std::vector<std::byte> encode_safetensors(std::span<const NamedTensor> tensors,
                                          const SafetensorsMetadata& metadata) {
  VectorSink sink;
  write_safetensors(sink, tensors, metadata);
  return std::move(sink.data);
}

void write_safetensors(const std::filesystem::path& path, std::span<const NamedTensor> tensors,
                       const SafetensorsMetadata& metadata) {
  // Validate and build the header before creating the temporary file, so bad arguments leave no
  // trace on disk.
  std::vector<Planned> order;
  header_text(tensors, metadata, order, path.string());
  AtomicFileWriter out(path);
  write_to(out, tensors, metadata, path.string());
  out.commit();
}

void write_safetensors(const std::filesystem::path& path,
                       const std::map<std::string, Tensor>& tensors,
                       const SafetensorsMetadata& metadata) {
  std::vector<NamedTensor> refs;
  refs.reserve(tensors.size());
  for (const auto& [name, t] : tensors) refs.push_back({name, &t});
  write_safetensors(path, refs, metadata);
}

}  // namespace stag::rt
