// Reading and writing the safetensors format (https://huggingface.co/docs/safetensors), exactly as published:
// an 8-byte little-endian header length N, N bytes of JSON header, then the tensor data; each header entry gives
// dtype, shape and [begin, end) byte offsets into the data, which must cover it with no holes or overlaps.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "rlaif/safetensors_header.h"

namespace rlaif {

// A memory-mapped safetensors file. Opening validates the whole header; a file that lies (offsets out of range or
// overlapping, dtype/shape/byte count disagreeing, absurd header length, unknown dtype) throws rlaif::Error naming the
// file and the tensor. Tensors returned by get() view the mapping (no copy) and keep it alive.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return path_; }
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }

  // The tensor `name`, viewing the mapped file (read-only: do not write to it). Throws rlaif::Error if missing.
  torch::Tensor get(const std::string& name) const;

 private:
  std::string path_;
  std::shared_ptr<void> map_;  // the whole file, unmapped when the last viewer goes
  const uint8_t* data_ = nullptr;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Element type of a safetensors dtype string; throws rlaif::Error (with `where`) for a dtype we do not know.
torch::ScalarType safetensors_dtype(const std::string& dtype, const std::string& where);
std::string safetensors_dtype_name(torch::ScalarType t);

// Writes tensors (any CPU dtype in the table above) atomically to `path`, with `metadata` as "__metadata__".
// Data are laid out by decreasing element size, then name, so every tensor is aligned to its element size.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace rlaif
