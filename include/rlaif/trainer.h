// The training loops: `rlaif train` (GRPO and its family with judge rewards) and `rlaif sft`.
//
// One RL step reads top to bottom in RlTrainer::run() (src/train/rl_trainer.cpp; its parts in src/train/rl_trainer.h):
//   prompts -> G completions each (judged as each finishes) -> rewards (judge + graders, shaped by src/rl/rewards.cpp)
//   -> advantages -> loss over micro-batches (x num_iterations) -> AdamW step -> metrics.jsonl, checkpoint, evaluation.
#pragma once

#include <string>

#include "rlaif/train_config.h"

namespace rlaif {

struct RunOptions {
  bool resume = false;  // continue from the newest checkpoint in output_dir
  bool quiet = false;   // no progress output
};

// How a run ended: all its steps, or stopped early by SIGTERM or SIGINT after a checkpoint of the last step it
// finished (`--resume` continues from it, losing nothing). With several ranks every rank stops after the same step.
struct RunOutcome {
  bool stopped = false;
  int signal = 0;    // the signal that stopped it
  int64_t step = 0;  // the last step done (and checkpointed when stopped)
};
constexpr int kStoppedExitCode = 5;  // the CLI's exit code for a stopped run

// Both throw rlaif::Error for bad configs or data (before any training), and for judge or I/O failures.
RunOutcome run_rl(const TrainConfig& config, const RunOptions& options);
RunOutcome run_sft(const TrainConfig& config, const RunOptions& options);

// The learning rate of optimizer step `step` (0-based) of `total`, as transformers' schedulers compute it:
// linear warmup from 0, then constant, linear decay to 0 or cosine decay to 0.
double scheduled_lr(const TrainConfig& config, int64_t step, int64_t total);

}  // namespace rlaif
