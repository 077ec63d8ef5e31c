#include "rlaif/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "rlaif/atomic_file.h"
#include "rlaif/error.h"

namespace rlaif {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference implementation's limit is 100 MB

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
};
const DtypeInfo kDtypes[] = {
    {"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
    {"I64", torch::kInt64},   {"I32", torch::kInt32},   {"I16", torch::kInt16},   {"I8", torch::kInt8},
    {"U8", torch::kUInt8},    {"BOOL", torch::kBool},
};

}  // namespace

torch::ScalarType safetensors_dtype(const std::string& dtype, const std::string& where) {
  for (const auto& d : kDtypes)
    if (dtype == d.name) return d.type;
  throw Error("unknown dtype \"" + dtype + "\"", where,
              "supported dtypes: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL; convert the file with another tool");
}

std::string safetensors_dtype_name(torch::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  throw Error(std::string("cannot write tensors of type ") + c10::toString(t) + " to safetensors");
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(std::string("cannot open: ") + std::strerror(errno), path, "check that the file exists");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw Error("cannot stat file", path);
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    throw Error("file is truncated: " + std::to_string(size) + " bytes, less than the 8-byte header length", path,
                "the download or copy was probably interrupted; fetch the file again");
  }
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) throw Error(std::string("cannot memory-map: ") + std::strerror(errno), path);
  map_ = std::shared_ptr<void>(m, [size](void* p) { ::munmap(p, size); });
  const auto* bytes = static_cast<const uint8_t*>(m);

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

  data_ = bytes + 8 + n;
  const uint64_t data_size = size - 8 - n;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      if (!it->is_object()) throw Error("__metadata__ is not an object", path);
      for (auto m2 = it->begin(); m2 != it->end(); ++m2) {
        if (!m2->is_string()) throw Error("__metadata__ value \"" + m2.key() + "\" is not a string", path);
        metadata_[m2.key()] = m2->get<std::string>();
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
    torch::ScalarType type = safetensors_dtype(e.dtype, where);
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
    uint64_t want = numel * c10::elementSize(type);
    if (e.end - e.begin != want)
      throw Error("byte count " + std::to_string(e.end - e.begin) + " disagrees with dtype " + e.dtype +
                      " and shape (" + std::to_string(want) + " bytes expected)",
                  where, "the header is corrupt");
    spans.emplace_back(e.begin, e.end);
    entries_[name] = std::move(e);
  }
  std::sort(spans.begin(), spans.end());
  uint64_t at = 0;
  for (const auto& s : spans) {
    if (s.first < at) {
      std::string who;
      for (const auto& kv : entries_)
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
}

torch::Tensor SafetensorsFile::get(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw Error("tensor not found", path_ + ": tensor " + name);
  const SafetensorsEntry& e = it->second;
  torch::ScalarType type = safetensors_dtype(e.dtype, path_);
  const uint8_t* p = data_ + e.begin;
  auto keep = map_;
  auto t = torch::from_blob(
      const_cast<uint8_t*>(p), e.shape, [keep](void*) {}, torch::TensorOptions().dtype(type));
  if (reinterpret_cast<uintptr_t>(p) % c10::elementSize(type) != 0) t = t.clone();  // unaligned: copy once
  return t;
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, torch::Tensor>> order;
  for (const auto& nt : tensors) order.emplace_back(nt.first, nt.second.detach().to(torch::kCPU).contiguous());
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    size_t ea = a.second.element_size(), eb = b.second.element_size();
    return ea != eb ? ea > eb : a.first < b.first;
  });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const auto& nt : order) {
    uint64_t nbytes = nt.second.numel() * nt.second.element_size();
    header[nt.first] = {{"dtype", safetensors_dtype_name(nt.second.scalar_type())},
                        {"shape", nt.second.sizes().vec()},
                        {"data_offsets", {off, off + nbytes}}};
    off += nbytes;
  }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h.push_back(' ');
  uint8_t len[8];
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  AtomicFile f(path);
  f.write(len, 8);
  f.write(h);
  for (const auto& nt : order) f.write(nt.second.data_ptr(), nt.second.numel() * nt.second.element_size());
  f.commit();
}

}  // namespace rlaif
