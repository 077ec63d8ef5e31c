// The architecture of a causal language model, read from a Hugging Face config.json.
//
// Supported model_type values: llama, mistral, qwen2 (q/k/v biases), qwen3 (per-head q/k RMSNorm). Missing optional
// keys take the defaults of the matching transformers config class; missing required keys are errors.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace rlaif {

struct RopeScaling {
  std::string type;  // "" = none, or "llama3"
  double factor = 1.0, low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string model_type;  // llama | mistral | qwen2 | qwen3
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;  // C
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;  // H
  int64_t num_key_value_heads = 0;  // Hkv; H % Hkv == 0 (grouped-query attention)
  int64_t head_dim = 0;             // D; defaults to C / H
  int64_t max_position_embeddings = 2048;
  int64_t sliding_window = 0;  // 0 = none (mistral); sequences are limited to it when set
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // bias on q, k, v and o projections (llama); qwen2 always has q/k/v biases
  bool mlp_bias = false;
  bool qkv_bias = false;  // derived: q/k/v projections carry a bias
  bool o_bias = false;    // derived: o projection carries a bias
  bool qk_norm = false;   // derived: qwen3's per-head RMSNorm on q and k
  std::string torch_dtype = "float32";
  int64_t bos_token_id = -1;           // -1 = none
  std::vector<int64_t> eos_token_ids;  // config's eos_token_id, int or list

  // Parses and validates; `where` (the file path) is used in error messages. Throws rlaif::Error.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& where);
  // The config.json that transformers would read back to build the same model.
  nlohmann::json to_json() const;
  int64_t num_parameters() const;
};

}  // namespace rlaif
