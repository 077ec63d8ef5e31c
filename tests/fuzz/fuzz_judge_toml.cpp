// libFuzzer target for judge.toml (the judge's configuration: backend, servers, limits, rubric, template, graders,
// panel): JudgeConfig::from_toml on arbitrary bytes. Invariants checked: the only exception is rlaif::Error (a message
// naming the file and key); a configuration it returns validates again without error, and its rubric renders a judge
// prompt for a sample.
// Build and run: bash tests/fuzz/run.sh SECONDS BUILD_DIR judge_toml
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "backend_names.h"
#include "rlaif/error.h"
#include "rlaif/judge.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/fuzz_judge_toml." + std::to_string(getpid()) + ".toml";
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  rlaif::JudgeConfig c;
  try {
    c = rlaif::JudgeConfig::from_toml(path);
  } catch (const rlaif::Error&) {
    return 0;  // a bad file, reported
  }
  c.validate(path);  // what from_toml returned is valid: this must not throw
  rlaif::render_judge_prompt(c.tmpl, c.rubric, {"a prompt", "a completion", "a reference"});
  for (const auto& g : c.graders) g.grade("a completion", "a reference", "a prompt");
  return 0;
}
