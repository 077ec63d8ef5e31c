// What rlaif train and rlaif sft share: the trainable tensors (LoRA or full), AdamW, the metrics file, the config
// fingerprint, output-folder handling on start and resume. Internal to the trainers.
#pragma once

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rlaif/checkpoint.h"
#include "rlaif/distributed.h"
#include "rlaif/model.h"
#include "rlaif/train_config.h"

namespace rlaif {

struct Trainable {
  std::vector<std::string> names;
  std::vector<torch::Tensor> params;
};

// Threads (num_threads, or the cores shared by the ranks on this machine), allocator (keep_freed_memory) and the
// torch seed, as both trainers start.
void prepare_runtime(const TrainConfig& c, int local_ranks = 1);

// Joins the job the environment describes (include/rlaif/distributed.h); one rank without a launcher.
std::unique_ptr<Dist> join_job(const TrainConfig& c);

// Data parallel: stops the run when the ranks' trainable weights differ (a checksum of their bits per tensor).
void check_replicas(Dist& dist, const Trainable& t, int64_t step);

// LoRA: fresh adapters (seeded), base frozen. Full: every parameter.
Trainable make_trainable(CausalLM& model, const TrainConfig& c);

// What a checkpoint holds: the model (or its adapters under LoRA), the optimizer and the trainable tensors.
CheckpointContents checkpoint_contents(const TrainConfig& c, CausalLM& model, torch::optim::Optimizer* opt,
                                       const Trainable& t);

// AdamW with transformers' grouping: no weight decay on biases and norm weights.
std::unique_ptr<torch::optim::AdamW> make_adamw(const TrainConfig& c, const Trainable& t);
void set_lr(torch::optim::Optimizer& opt, double lr);

// Global gradient norm (before clipping); clips to max_norm when > 0.
double clip_gradients(const std::vector<torch::Tensor>& params, double max_norm);

// SHA-256 over the options a resumed run must share with the run it continues (the batch is the step's global one:
// a run may resume on another number of ranks with the per-rank batch changed to match).
std::string config_fingerprint(const TrainConfig& c, const std::string& kind, int world_size = 1);

// Prepares output_dir: a fresh run refuses a folder holding checkpoints; a resumed run loads the newest one
// (returns its state, step 0 if none) and cuts metrics/sample logs back to its step. With several ranks, rank 0
// prepares the folder and the others only load the checkpoint once it has (every rank holds the same one).
TrainerState start_run(const TrainConfig& c, const std::string& kind, bool resume, const CheckpointContents& contents,
                       bool quiet, Dist* dist = nullptr);

// metrics.jsonl and friends: one JSON object per line, flushed at once.
class JsonlLog {
 public:
  explicit JsonlLog(const std::string& path);
  void write(const nlohmann::json& line);

 private:
  std::ofstream out_;
  std::string path_;
};

// Writes the final model (or adapter) to output_dir/final.
void save_final(const TrainConfig& c, CausalLM& model);

}  // namespace rlaif
