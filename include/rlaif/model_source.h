// Where a model comes from: a Hugging Face model folder (also a full fine-tune's final/ or checkpoint-N/), or a PEFT
// LoRA adapter folder (a LoRA run's final/ or checkpoint-N/) on its base model. `rlaif export`, `generate`, `serve`
// and the local judge all load through this, so an adapter works wherever a model folder does.
#pragma once

#include <string>

#include "rlaif/model.h"

namespace rlaif {

struct ModelSource {
  std::string model_dir;    // the folder with config.json, the weights and the tokenizer (an adapter's base)
  std::string adapter_dir;  // "" or the PEFT adapter folder applied on it
};

// `dir` is a model folder or an adapter folder (adapter_config.json, whose base_model_name_or_path names the base:
// absolute, relative to the working directory, or relative to the adapter folder). `adapter` puts an adapter folder
// on the model folder `dir`; `base` overrides an adapter's base. Throws rlaif::Error naming what is missing.
ModelSource resolve_model_source(const std::string& dir, const std::string& adapter = "", const std::string& base = "");

// The model of `source`, held in fp32, with the adapter (if any) merged into its weights.
CausalLM load_merged_model(const ModelSource& source);

}  // namespace rlaif
