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
  SafetensorsHeader header = parse_safetensors_header(bytes, size, path);
  data_ = bytes + header.data_offset;
  entries_ = std::move(header.entries);
  metadata_ = std::move(header.metadata);
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
