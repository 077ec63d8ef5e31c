// The safetensors header (https://huggingface.co/docs/safetensors), read and checked without libtorch: an 8-byte
// little-endian length N, N bytes of JSON, then the data section. Each JSON entry gives a tensor's dtype, shape and
// [begin, end) byte offsets into the data, which must cover it exactly, with no holes and no overlaps.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rlaif {

struct SafetensorsEntry {
  std::string dtype;  // "F32", "BF16", ... as in the header
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the start of the data section
};

struct SafetensorsHeader {
  std::map<std::string, SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;  // "__metadata__"
  uint64_t data_offset = 0;                     // where the data section starts: 8 + N
};

// Checks the whole header of a file of `size` bytes starting at `bytes`: the length (at most 100 MB and within the
// file), the JSON, each entry (known dtype, non-negative dimensions, offsets inside the data section, byte count =
// elements x dtype size) and the coverage of the data section. Anything else throws rlaif::Error naming `path` and
// the tensor.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t size, const std::string& path);

// Bytes per element of a safetensors dtype (F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL); throws rlaif::Error
// (with `where`) for another.
size_t safetensors_dtype_size(const std::string& dtype, const std::string& where);

}  // namespace rlaif
