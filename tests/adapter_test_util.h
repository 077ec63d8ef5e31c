// A LoRA run's checkpoint in miniature, for the tests of everything that loads adapters (export, generate, serve,
// the local judge).
#pragma once

#include <string>

#include "rlaif/lora.h"
#include "rlaif/model_folder.h"

namespace rlaif_test {

// Adapters on q_proj, v_proj and down_proj of the model folder `base` (r = 4, alpha = 8), with random, non-zero B
// so that they change the outputs, saved in PEFT's format to `out` with `base` as base_model_name_or_path.
inline void write_adapter(const std::string& base, const std::string& out, uint64_t seed = 2) {
  auto model = rlaif::load_model(base);
  rlaif::LoraConfig c;
  c.r = 4;
  c.lora_alpha = 8;
  c.target_modules = {"q_proj", "v_proj", "down_proj"};
  rlaif::add_lora(model, c, seed);
  {
    torch::NoGradGuard g;
    torch::manual_seed(seed + 9);
    for (const auto& kv : model->lora()) kv.second.B.normal_(0, 0.3);
  }
  rlaif::save_lora(model, c, out, base);
}

}  // namespace rlaif_test
