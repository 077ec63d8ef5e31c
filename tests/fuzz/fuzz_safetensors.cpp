// libFuzzer target for safetensors files: parse_safetensors_header on arbitrary bytes (the header length, the JSON
// header, every entry, the coverage of the data section). Invariants checked: the only exception is rlaif::Error; a
// header it accepts has every entry inside the data section with its byte count equal to elements x dtype size, and
// the entries tile the data section exactly.
// Build and run: bash tests/fuzz/run.sh SECONDS BUILD_DIR safetensors
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <utility>
#include <vector>

#include "rlaif/error.h"
#include "rlaif/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rlaif::SafetensorsHeader h;
  try {
    h = rlaif::parse_safetensors_header(data, size, "fuzz.safetensors");
  } catch (const rlaif::Error&) {
    return 0;
  }
  if (h.data_offset < 8 || h.data_offset > size) std::abort();
  const uint64_t data_size = size - h.data_offset;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const auto& [name, e] : h.entries) {
    uint64_t numel = 1;
    for (int64_t d : e.shape) {
      if (d < 0) std::abort();
      numel *= static_cast<uint64_t>(d);
    }
    if (e.begin > e.end || e.end > data_size) std::abort();
    if (e.end - e.begin != numel * rlaif::safetensors_dtype_size(e.dtype, name)) std::abort();
    spans.emplace_back(e.begin, e.end);
  }
  std::sort(spans.begin(), spans.end());
  uint64_t at = 0;
  for (const auto& s : spans) {
    if (s.first != at) std::abort();
    at = s.second;
  }
  if (at != data_size) std::abort();
  return 0;
}
