// Seeded, randomly initialised model folders, so tests, benchmarks and examples never need a download.
#pragma once

#include <string>

#include "rlaif/model_config.h"

namespace rlaif {

struct InitModelOptions {
  std::string arch = "llama";  // llama | mistral | qwen2 | qwen3
  // tiny | small | smollm2-135m | a list "hidden=64,layers=2,heads=4,kv_heads=2,intermediate=176,vocab=259,
  // head_dim=16,tied=1,rope_theta=10000,rope_scaling=llama3,max_pos=2048"
  std::string size = "tiny";
  uint64_t seed = 0;
  std::string dtype = "float32";  // float32 | bfloat16 | float16: dtype of the written weights
  // A folder with a real tokenizer (tokenizer.json, tokenizer_config.json) to give the model; "" = byte-level. The
  // vocabulary size grows to fit it, and bos/eos (plus <|im_end|> and <|eot_id|> where present) come from it.
  std::string tokenizer;
};

// The config `options` describe (throws rlaif::Error for an unknown arch, size or key).
ModelConfig init_model_config(const InitModelOptions& options);

// Writes a model folder at `out`: config.json, generation_config.json, model.safetensors and a tokenizer (byte-level,
// or copied from options.tokenizer) (tokenizer.json, tokenizer_config.json). Weights ~ N(0, 0.02) as transformers
// initialises them, except that norm weights and biases are perturbed too so that tests exercise them. Same seed, same
// bytes.
void init_model(const InitModelOptions& options, const std::string& out);

}  // namespace rlaif
