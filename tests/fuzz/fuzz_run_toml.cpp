// libFuzzer target for run.toml and `--set key=value`: TrainConfig::from_toml on arbitrary bytes (up to the first
// NUL byte: the file; each NUL-separated piece after it: one --set assignment), then validate() for RL and for SFT.
// Invariants checked: the only exception is rlaif::Error (a message naming the file and key); a configuration that
// validates for RL has whole groups in its batch and at least one step for any data; the effective TOML that a run
// saves as run_config.toml (which `rlaif report` reads) reads back to the same configuration.
// Build and run: bash tests/fuzz/run.sh SECONDS BUILD_DIR run_toml
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "backend_names.h"
#include "rlaif/error.h"
#include "rlaif/train_config.h"

namespace {

void write(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/fuzz_run_toml." + std::to_string(getpid()) + ".toml";
  static const std::string again = "/tmp/fuzz_run_toml_again." + std::to_string(getpid()) + ".toml";
  const std::string input(reinterpret_cast<const char*>(data), size);
  size_t nul = input.find('\0');
  write(path, input.substr(0, nul));
  std::vector<std::string> overrides;
  while (nul != std::string::npos) {
    const size_t next = input.find('\0', nul + 1);
    overrides.push_back(input.substr(nul + 1, next == std::string::npos ? std::string::npos : next - nul - 1));
    nul = next;
  }
  rlaif::TrainConfig c;
  try {
    c = rlaif::TrainConfig::from_toml(path, overrides);
  } catch (const rlaif::Error&) {
    return 0;  // a bad file or assignment, reported
  }
  write(again, c.effective_toml);
  const auto reread = rlaif::TrainConfig::from_toml(again);  // what a run saves, it reads: this must not throw
  if (reread.effective_toml != c.effective_toml) std::abort();
  for (bool rl : {true, false}) {
    try {
      c.validate(path, rl);
    } catch (const rlaif::Error&) {
      continue;
    }
    if (c.generation_batch() < 1 || c.total_steps(1000, rl, 1) < 1) std::abort();
    if (rl && (c.prompts_per_step() < 1 || c.generation_batch() % c.num_generations != 0)) std::abort();
  }
  return 0;
}
