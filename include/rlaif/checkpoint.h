// Training state on disk: OUTPUT_DIR/checkpoint-STEP/ holds the model (a Hugging Face folder) or the LoRA adapter
// (PEFT folder), optimizer.safetensors (AdamW moments per trainable tensor, the torch RNG state) and
// trainer_state.json (step, data position, AdamW step counts, the run's config fingerprint).
//
// A checkpoint is written into a temporary folder (every file fsynced), which is then renamed to checkpoint-STEP and
// the parent folder fsynced: a run killed at any point leaves either the complete checkpoint or none, never a partial
// one that looks complete. The last `keep` checkpoints are kept.
#pragma once

#include <torch/torch.h>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rlaif/lora.h"

namespace rlaif {

struct TrainerState {
  int64_t step = 0;  // optimizer steps done
  int64_t data_epoch = 0, data_position = 0;
  std::string config_fingerprint;  // a resumed run must have the same training options
  nlohmann::json extra;            // anything else the trainer wants back
};

struct CheckpointContents {
  CausalLM model{nullptr};
  const LoraConfig* lora = nullptr;  // non-null: save the adapter only
  std::string base_model;            // the model folder (tokenizer files are copied from it)
  torch::optim::Optimizer* optimizer = nullptr;
  std::vector<torch::Tensor> params;  // the optimizer's parameters, in a fixed order
};

// Writes OUTPUT_DIR/checkpoint-STEP atomically and removes the oldest beyond `keep`. Returns the folder.
std::string save_checkpoint(const std::string& output_dir, const TrainerState& state, const CheckpointContents& c,
                            int64_t keep);

// The newest complete checkpoint folder in OUTPUT_DIR ("" if none). Removes leftovers of interrupted writes.
std::string latest_checkpoint(const std::string& output_dir);

// Restores weights (or adapter), optimizer moments and the torch RNG; returns the trainer state. Throws rlaif::Error
// naming the file for anything missing or not matching this model.
TrainerState load_checkpoint(const std::string& dir, const CheckpointContents& c);

}  // namespace rlaif
