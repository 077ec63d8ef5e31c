// Rewards: how a completion's reward sources combine, and the shaping on a step's [B, G] tensors (every transformation
// between the judge's reward and the reward the advantages are computed from). Pure tensor functions with no I/O; the
// exact formulas open src/rl/rewards.cpp.
//
// Legend (every file under src/rl/ and src/train/): B groups (prompts) in the step, G completions per prompt, N valid
// completions in the loss (group-major), T completion tokens (right-padded), P prompt tokens (left-padded).
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace rlaif {

// One source of a completion's reward (the judge, a grader, one judge of a panel) and its weight.
struct RewardPart {
  double weight;
  double reward;
};

// The weighted mean of the sources, summed in order: sum w r / sum w (0 when the weights sum to 0).
double combine_rewards(const std::vector<RewardPart>& parts);

// The penalties of DAPO's soft overlong punishment and the missing-EOS penalty, and whether they apply.
struct RewardShaping {
  int64_t max_completion_length = 0;   // L
  int64_t overlong_buffer_length = 0;  // L_cache (0 = no overlong punishment)
  double overlong_penalty_factor = 1.0;
  double missing_eos_penalty = 0.0;
};

// DAPO's soft overlong punishment per completion: lengths [B, G] int64 -> penalty [B, G] float64 (>= 0).
torch::Tensor overlong_penalty(const torch::Tensor& lengths, const RewardShaping& s);

// The missing-EOS penalty: truncated [B, G] bool (cut at max_completion_length) -> penalty [B, G] float64.
torch::Tensor missing_eos_penalty(const torch::Tensor& truncated, const RewardShaping& s);

// judge_reward [B, G] float64 shaped by both penalties; 0 where !valid [B, G] bool.
torch::Tensor shape_rewards(const torch::Tensor& judge_reward, const torch::Tensor& valid, const torch::Tensor& lengths,
                            const torch::Tensor& truncated, const RewardShaping& s);

// KL in the reward (REINFORCE++ style): rewards [B, G] float64 minus beta x kl [B, G] (each completion's summed
// per-token KL estimate to the reference; 0 where not in the loss).
torch::Tensor kl_in_reward(const torch::Tensor& rewards, const torch::Tensor& kl, double beta);

// The unbiased standard deviation of each group's valid rewards: rewards [B, G] float64, valid [B, G] bool -> [B]
// float64 (0 for a group with fewer than 2 valid rewards or with all of them equal). Summed in sample order.
torch::Tensor group_reward_std(const torch::Tensor& rewards, const torch::Tensor& valid);

// Which groups can teach the policy something: fewer than 2 valid completions -> kDropped; all valid rewards equal
// -> kFlat (no advantage signal; dynamic sampling replaces them); otherwise kInformative.
enum class GroupSignal { kDropped, kFlat, kInformative };
std::vector<GroupSignal> classify_groups(const torch::Tensor& rewards, const torch::Tensor& valid);

}  // namespace rlaif
