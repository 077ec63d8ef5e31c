// libFuzzer target for the command backend's output (what a reward program, e.g. an Amazon Nova reward Lambda, prints
// on stdout): read_command_output on arbitrary bytes, for a batch of 0-15 samples (the first byte). Invariants
// checked: no exception; every sample ends either ok, with a finite reward and finite scores, or failed with a cause.
// Build and run: bash tests/fuzz/run.sh SECONDS BUILD_DIR command_output
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "judge/command_backend.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::vector<rlaif::JudgeResult> results(data[0] % 16);
  const std::string out(reinterpret_cast<const char*>(data) + 1, size - 1);
  rlaif::read_command_output(out, results);
  for (const auto& r : results) {
    if (r.ok == !r.failure.empty()) std::abort();  // ok, or a cause: never both, never neither
    if (!r.ok) continue;
    if (!std::isfinite(r.verdict.reward) || !r.verdict.ok) std::abort();
    for (const auto& [name, value] : r.verdict.scores)
      if (!std::isfinite(value)) std::abort();
  }
  return 0;
}
