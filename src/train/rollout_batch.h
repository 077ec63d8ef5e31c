// One RL step's rollouts: the prompts, their completions, what the judge made of them and the [B, G] tensors the
// update consumes. Built by the rollout phase (src/train/rollout.cpp), shaped by src/rl/rewards.cpp, consumed by the
// policy-gradient and online-DPO updates. It is the unit that data-parallel ranks split (whole groups per rank) and
// that multi-turn episodes fill. Legend: include/rlaif/rewards.h (B groups, G completions each, N valid ones).
#pragma once

#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "rlaif/distributed.h"
#include "rlaif/generator.h"
#include "rlaif/judge.h"

namespace rlaif {

struct RolloutBatch {
  std::vector<size_t> rows;                      // [B] dataset row of each group's prompt
  std::vector<std::vector<Sample>> samples;      // [B][G] the completions
  std::vector<std::vector<JudgeResult>> judged;  // [B][G] the judge's results (online DPO: empty results)
  torch::Tensor lengths;                         // [B, G] int64: completion tokens
  torch::Tensor truncated;                       // [B, G] bool: cut at max_completion_length, no end-of-sequence token
  torch::Tensor judge_reward;  // [B, G] float64: the judge's reward (graders and panel mixed in by the judge)
  torch::Tensor valid;         // [B, G] bool: judged successfully (online DPO: a pair with a winner)
  torch::Tensor rewards;       // [B, G] float64: shaped (src/rl/rewards.cpp); 0 where !valid
  torch::Tensor advantages;    // [B, G] float64: 0 where !valid (undefined for online DPO)
  // Episodes ([env]; empty for single completions). A sample is then everything after the episode's first prompt:
  // the policy's turns and the observations between them, its text the trajectory as the judge reads it.
  std::vector<std::vector<std::vector<int64_t>>> prompt_ids;   // [B][G] the first prompt, the reset's observation in
  std::vector<std::vector<std::vector<uint8_t>>> policy_mask;  // [B][G] over the sample's tokens: 1 = the policy's
  std::vector<std::vector<nlohmann::json>> episodes;           // [B][G] ended_by, turns, env rewards, messages

  // The completions of `rows` as generated (G each): lengths and truncated set, the judge's fields still empty.
  static RolloutBatch from_samples(std::vector<size_t> rows, std::vector<std::vector<Sample>> samples);

  // judge_reward and valid as [B, G] zeros (G per group: 2 for online DPO's pairs), for the judge's results to fill.
  void start_judging(int64_t G);
  int64_t groups() const { return static_cast<int64_t>(rows.size()); }  // B
  bool empty() const { return rows.empty(); }
  // The groups at `index` (in that order), every field with them.
  RolloutBatch select(const std::vector<int64_t>& index) const;
  // Appends `other`'s groups after this batch's (same G).
  void append(RolloutBatch other);
  // The valid completions in the loss, group-major: (group, sample) of each of the N.
  std::vector<std::pair<int64_t, int64_t>> valid_items() const;
};

// Every rank's batch, concatenated in rank order, on every rank: what the step's metrics and samples.jsonl report.
// Carries the fields those read (the samples' log-probs stay on their rank). With one rank: `local` itself.
RolloutBatch gather_batch(Dist& dist, const RolloutBatch& local);

// Every rank's rows of x [b_r, ...] concatenated in rank order: [sum_r b_r, ...] on every rank.
torch::Tensor gather_rows(Dist& dist, const torch::Tensor& x);

}  // namespace rlaif
