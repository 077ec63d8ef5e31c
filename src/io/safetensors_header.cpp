#include "rlaif/safetensors_header.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "rlaif/error.h"

namespace rlaif {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference implementation's limit is 100 MB

}  // namespace

size_t safetensors_dtype_size(const std::string& dtype, const std::string& where) {
  static const std::map<std::string, size_t> kSizes = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
                                                       {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}};
  auto it = kSizes.find(dtype);
  if (it == kSizes.end())
    throw Error(
        "unknown dtype \"" + dtype + "\"", where,
        "supported dtypes: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL; convert the file with another tool");
  return it->second;
}

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t size, const std::string& path) {
  SafetensorsHeader h;
  if (size < 8)
    throw Error("file is truncated: " + std::to_string(size) + " bytes, less than the 8-byte header length", path,
                "the download or copy was probably interrupted; fetch the file again");

  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];  // little-endian
  if (n > kMaxHeaderBytes)
    throw Error("absurd header length " + std::to_string(n) + " bytes (limit 100 MB)", path,
                "this is not a safetensors file, or its first 8 bytes are corrupt");
  if (8 + n > size)
    throw Error("file is truncated: header says " + std::to_string(n) + " bytes of JSON but the file has " +
                    std::to_string(size) + " bytes in all",
                path, "fetch the file again");

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + n);
  } catch (const std::exception& e) {
    throw Error(std::string("header is not valid JSON: ") + e.what(), path, "the file is corrupt");
  }
  if (!header.is_object()) throw Error("header is not a JSON object", path, "the file is corrupt");

  h.data_offset = 8 + n;
  const uint64_t data_size = size - 8 - n;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      if (!it->is_object()) throw Error("__metadata__ is not an object", path);
      for (auto m2 = it->begin(); m2 != it->end(); ++m2) {
        if (!m2->is_string()) throw Error("__metadata__ value \"" + m2.key() + "\" is not a string", path);
        h.metadata[m2.key()] = m2->get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor " + name;
    const auto& v = *it;
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets") ||
        !v["dtype"].is_string() || !v["shape"].is_array() || !v["data_offsets"].is_array() ||
        v["data_offsets"].size() != 2)
      throw Error("header entry must have string dtype, array shape and two data_offsets", where,
                  "the file is corrupt");
    SafetensorsEntry e;
    e.dtype = v["dtype"].get<std::string>();
    const size_t element = safetensors_dtype_size(e.dtype, where);
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) throw Error("shape holds a negative or non-integer dimension", where);
      uint64_t dim = d.get<uint64_t>();
      if (dim > (1ull << 40) || (dim && numel > (1ull << 50) / dim)) throw Error("shape is absurdly large", where);
      e.shape.push_back(static_cast<int64_t>(dim));
      numel *= dim;
    }
    for (const auto& o : v["data_offsets"])
      if (!o.is_number_unsigned()) throw Error("data_offsets are not non-negative integers", where);
    e.begin = v["data_offsets"][0].get<uint64_t>();
    e.end = v["data_offsets"][1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_size)
      throw Error("data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                      ") fall outside the data section of " + std::to_string(data_size) + " bytes",
                  where, "the file is truncated or its header is corrupt");
    uint64_t want = numel * element;
    if (e.end - e.begin != want)
      throw Error("byte count " + std::to_string(e.end - e.begin) + " disagrees with dtype " + e.dtype +
                      " and shape (" + std::to_string(want) + " bytes expected)",
                  where, "the header is corrupt");
    spans.emplace_back(e.begin, e.end);
    h.entries[name] = std::move(e);
  }
  std::sort(spans.begin(), spans.end());
  uint64_t at = 0;
  for (const auto& s : spans) {
    if (s.first < at) {
      std::string who;
      for (const auto& kv : h.entries)
        if (kv.second.begin == s.first) who = kv.first;
      throw Error("tensor data overlap at byte " + std::to_string(s.first), path + ": tensor " + who,
                  "the header is corrupt");
    }
    if (s.first > at)
      throw Error("hole in the data section at bytes [" + std::to_string(at) + ", " + std::to_string(s.first) + ")",
                  path, "the header is corrupt (the format requires the data to be fully indexed)");
    at = s.second;
  }
  if (at != data_size)
    throw Error("data section has " + std::to_string(data_size - at) + " bytes past the last tensor", path,
                "the header is corrupt or the file has trailing garbage");
  return h;
}

}  // namespace rlaif
