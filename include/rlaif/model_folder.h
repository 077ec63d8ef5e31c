// Hugging Face model folders: config.json, generation_config.json, model.safetensors or sharded weights with
// model.safetensors.index.json, and tokenizer files.
#pragma once

#include <map>
#include <string>

#include "rlaif/model.h"

namespace rlaif {

// Parses DIR/config.json. Throws rlaif::Error naming the file and key.
ModelConfig load_config(const std::string& dir);

// End-of-sequence ids: generation_config.json's eos_token_id if present, else config.json's.
std::vector<int64_t> load_eos_token_ids(const std::string& dir, const ModelConfig& config);

// Every tensor of the folder, viewing the memory-mapped files (no copy). Sharded folders are read through
// model.safetensors.index.json, whose entries must all exist in the named shards.
std::map<std::string, torch::Tensor> load_weights(const std::string& dir);

// Builds the model of DIR/config.json and fills every parameter from the weights, held in fp32 (F32/BF16/F16 on disk
// are converted; set_inference_precision chooses how inference computes). A missing tensor, a tensor whose
// shape does not fit the config or whose dtype is not floating point is an rlaif::Error naming file and tensor.
CausalLM load_model(const std::string& dir);

struct SaveOptions {
  int64_t max_shard_bytes = 5LL << 30;        // weights beyond this are split into model-0000i-of-0000n.safetensors
  std::string tokenizer_from;                 // folder whose tokenizer files are copied ("" = none)
  torch::ScalarType dtype = torch::kFloat32;  // dtype written (config.json's torch_dtype says it)
  nlohmann::json generation_config;           // extra keys for generation_config.json (eos/bos are filled in)
};

// Writes a folder that this project reloads bit-identically and transformers loads: config.json,
// generation_config.json, safetensors weights with {"format": "pt"} metadata, tokenizer files. Each file is written
// atomically; stale shard files of an earlier save in DIR are removed.
void save_model(CausalLM& model, const std::string& dir, const SaveOptions& options = {});

// The tokenizer files a folder may hold, copied by save_model.
extern const char* const kTokenizerFiles[];

}  // namespace rlaif
