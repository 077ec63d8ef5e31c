// `rlaif train`: the RLAIF loop as one class whose methods are the step's named parts, each in a file of its own:
//   rl_trainer.cpp      setup, run() (the step, top to bottom), logging, checkpoints
//   rollout.cpp         draw prompts, roll out, judge, shape rewards, filter groups (dynamic sampling's rounds)
//   episode_rollout.cpp with [env]: episodes instead of single completions, their rewards
//   rollout_metrics.cpp the rollout's metrics (rewards, completions, judge, groups)
//   policy_update.cpp   micro-batches, old and reference log-probs, KL in the reward, the policy-gradient update
//   dpo_update.cpp      the online-DPO update
//   evaluation.cpp      held-out prompts, judged
// Internal to the trainer. Legend for the shapes: include/rlaif/rewards.h.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "rlaif/chat_template.h"
#include "rlaif/dataset.h"
#include "rlaif/environment.h"
#include "rlaif/episodes.h"
#include "rlaif/generator.h"
#include "rlaif/judge.h"
#include "rlaif/progress.h"
#include "rlaif/sequence_batch.h"
#include "rlaif/trainer.h"
#include "train/endpoint_metrics.h"
#include "train/judge_stream.h"
#include "train/replicas.h"
#include "train/rollout_batch.h"
#include "train/rollout_metrics.h"
#include "train/train_common.h"

namespace rlaif {

// The micro-batches of a policy-gradient update and the log-probs the loss needs beyond the current policy's.
struct PolicyMicroBatches {
  std::vector<std::pair<int64_t, int64_t>> items;  // [N] (group, sample) of each completion in the loss, group-major
  std::vector<SequenceBatch> batches;              // [M] per_device_train_batch_size completions each (the last: fewer)
  std::vector<torch::Tensor> sampler_lp;           // [M] x [n, T] as the generator sampled them
  std::vector<torch::Tensor> old_lp;               // [M] x [n, T] before the update (num_iterations > 1, kl_in_reward)
  std::vector<torch::Tensor> ref_lp;               // [M] x [n, T] under the reference (beta > 0)
  double tokens = 0;                               // completion tokens in the loss
};

class RlTrainer {
 public:
  RlTrainer(const TrainConfig& c, const RunOptions& o) : c_(c), o_(o) {}
  RunOutcome run();

 private:
  using Clock = std::chrono::steady_clock;
  static double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

  // rl_trainer.cpp
  void setup();
  GenerationParams generation_params() const;  // the run's sampling settings
  CheckpointContents contents();
  void log_step(const RolloutBatch& batch, nlohmann::json& m, Progress& bar);
  void write_samples(const RolloutBatch& batch, int64_t step);
  // Every save_steps, after the last step, and when `now` (the run stops early).
  void checkpoint(int64_t done_steps, const TrainerState& started, bool now = false);
  void log_judge_stats(nlohmann::json& m);       // cache hits, flips and cost since the last step
  void warn_integrity(nlohmann::json& m) const;  // reward-integrity thresholds: m["warnings"] and stderr

  // rollout.cpp: steps 1-2, repeated in rounds while dynamic sampling refills the batch
  RolloutBatch collect_rollouts(int64_t step, nlohmann::json& m);
  std::vector<size_t> draw_prompts(int64_t count);
  // `first`: the index of rows[0] among every rank's prompts of the round (it seeds the samples).
  RolloutBatch roll_out(const std::vector<size_t>& rows, int64_t first, int64_t step, int64_t round, bool stream);
  uint64_t rollout_seed(int64_t step, int64_t round, int64_t index) const;  // of a round's index-th prompt
  void judge_pointwise(RolloutBatch& b, RolloutTally& t);                   // results streamed during roll_out
  void judge_groups(RolloutBatch& b, RolloutTally& t);                      // all G completions of a prompt in one call
  void judge_pairs(RolloutBatch& b, RolloutTally& t);                       // online DPO: which of two is better
  void shape_rewards(RolloutBatch& b) const;
  RolloutBatch filter_groups(const RolloutBatch& b, int64_t room, RolloutTally& t) const;

  // episode_rollout.cpp: [env]
  RolloutBatch roll_out_episodes(const std::vector<size_t>& rows, int64_t first, int64_t step, int64_t round,
                                 RolloutTally& t);
  void judge_episodes(RolloutBatch& b, RolloutTally& t);  // the environment's reward, and the judge's on trajectories
  void rank_episodes(RolloutBatch& b, RolloutTally& t,    // group judging: a prompt's trajectories in one call
                     const std::function<void(int64_t, int64_t, JudgeResult)>& add_judge);
  EpisodeOptions episode_options() const;
  // Held-out evaluation on episodes: the first n eval rows, one episode each, judged as in training (an episode
  // whose environment failed is a failed judgment); `episodes` receives each one's record.
  std::vector<JudgeResult> evaluate_episodes(size_t n, std::vector<JudgeSample>& samples,
                                             std::vector<nlohmann::json>& episodes);

  // policy_update.cpp: steps 3-5
  PolicyMicroBatches prepare_micro_batches(const RolloutBatch& b);
  void add_kl_to_rewards(RolloutBatch& b, const PolicyMicroBatches& mb) const;
  torch::Tensor advantages(const RolloutBatch& b);  // [B, G] of this rank's groups, from every rank's rewards
  void update_policy(const RolloutBatch& b, const PolicyMicroBatches& mb, int64_t step, nlohmann::json& m);
  torch::Tensor reference_logprobs(const SequenceBatch& b);  // [n, T] without gradient

  // dpo_update.cpp
  void update_dpo(const RolloutBatch& b, int64_t step, nlohmann::json& m);

  // evaluation.cpp
  void evaluate(int64_t step);

  const TrainConfig& c_;
  RunOptions o_;
  std::unique_ptr<Dist> dist_;          // the job's ranks (one without a launcher); rank 0 writes the run's files
  std::unique_ptr<Replicas> replicas_;  // data parallel: gradient sums, the optimizer step (ZeRO-1), checkpoints
  CausalLM model_{nullptr}, ref_{nullptr};
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Generator> gen_;
  std::unique_ptr<ChatTemplate> chat_;  // [env]: renders each turn of an episode
  std::unique_ptr<Environment> env_;    // [env]
  std::unique_ptr<Judge> judge_;        // null when [env]'s reward is the only one
  std::unique_ptr<JudgeStream> stream_;
  std::vector<PromptRow> rows_, eval_rows_;
  std::unique_ptr<DataOrder> order_;
  Trainable trainable_;
  std::unique_ptr<torch::optim::AdamW> opt_;
  std::unique_ptr<JsonlLog> metrics_, samples_, eval_log_;
  int64_t pad_id_ = 0;
  int64_t total_steps_ = 0;
  bool bf16_ = false;
  JudgeStats last_stats_;
  EndpointMetrics endpoint_metrics_;  // a judge pool's per-server counts
};

}  // namespace rlaif
