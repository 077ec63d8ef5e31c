// [lora] of run.toml: which projections get LoRA adapters, their rank and scale (the adapters themselves are in
// rlaif/lora.h). Torch-free, so configuration readers include this alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rlaif {

extern const char* const kLoraProjections[7];  // q_proj k_proj v_proj o_proj gate_proj up_proj down_proj

struct LoraConfig {
  int64_t r = 16;
  double lora_alpha = 32;
  double lora_dropout = 0.05;
  // Module names (q_proj, ..., down_proj) or "all-linear" (every projection, not lm_head), as in PEFT.
  std::vector<std::string> target_modules = {"q_proj", "v_proj"};
  bool use_rslora = false;

  double scale() const;
  // Throws rlaif::Error naming `where` (e.g. "run.toml: [lora]") for r < 1, dropout outside [0, 1), unknown modules.
  void validate(const std::string& where) const;
};

}  // namespace rlaif
