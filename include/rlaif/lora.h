// LoRA (Hu et al. 2021) as PEFT defines it: adapters on named projections, initialised so the adapted model equals
// the base (A ~ kaiming_uniform(a = sqrt(5)), B = 0), scale lora_alpha / r (rsLoRA: / sqrt(r)); saved and loaded in
// PEFT's format (adapter_config.json + adapter_model.safetensors, keys
// "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), so PEFT and vLLM read what rlaif writes.
#pragma once

#include <string>
#include <vector>

#include "rlaif/lora_config.h"
#include "rlaif/model.h"

namespace rlaif {

// Adds fresh adapters (B = 0: the model's outputs are unchanged) to every targeted projection. The random stream of
// A is seeded by `seed`, so a run is reproducible.
void add_lora(CausalLM& model, const LoraConfig& config, uint64_t seed);

// The trainable adapter tensors, in a fixed order (by module path, then A, B).
std::vector<torch::Tensor> lora_parameters(CausalLM& model);

// Adapter tensors under PEFT's key names.
std::vector<std::pair<std::string, torch::Tensor>> lora_state(const CausalLM& model);

// Writes DIR/adapter_config.json and DIR/adapter_model.safetensors (each atomically). base_model is recorded as
// base_model_name_or_path.
void save_lora(const CausalLM& model, const LoraConfig& config, const std::string& dir, const std::string& base_model);

// Reads a PEFT LoRA folder and attaches its adapters. Throws rlaif::Error naming the file and key for a missing or
// malformed config, an unsupported PEFT feature (DoRA, fan_in_fan_out, bias != none), a missing or mis-shaped tensor.
LoraConfig load_lora(CausalLM& model, const std::string& dir);

// Folds every adapter into its base weight (W += scale B A) and removes the adapters.
void merge_lora(CausalLM& model);

}  // namespace rlaif
