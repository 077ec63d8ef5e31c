// Reward shaping, exactly as computed below. For completion i of group g (one prompt's G completions):
//
//   r_i = J_i - overlong_i - eos_i                      (0 where the judgment failed: the sample leaves its group)
//
// J_i is the judge's reward, combine_rewards of its sources: the weighted mean over sources k in order,
//   combine({(w_k, s_k)}) = sum_k w_k s_k / sum_k w_k        (0 when sum_k w_k = 0)
// applied by the judge (src/judge/judge.cpp) in two stages. With a panel, the panel's verdict is first
//   v = combine({(judge_weight_j, s_j)})  over this judge and each judge j of the panel (s_j in [0, 1]),
// then J = combine({(W, v), (weight_g, grade_g) for each grader g})  with W = sum_j judge_weight_j
// (without a panel, v is the judge's own score and W its judge_weight), except that J = 0 when a grader marked
// `required` fails (grade 0): a gate, e.g. the content grader against master-key answers.
//
// DAPO's soft overlong punishment (Yu et al. 2025, eq. 13), with L = max_completion_length, L_cache =
// overlong_buffer_length > 0 and |o_i| the completion's tokens:
//   overlong_i = 0                                                     |o_i| <= L - L_cache
//              = overlong_penalty_factor * min(1, (|o_i| - (L - L_cache)) / L_cache)   otherwise
// The missing-EOS penalty (TRL's missing_eos_penalty), for a completion cut at L without an end-of-sequence token:
//   eos_i = missing_eos_penalty * [truncated_i]
// KL in the reward (REINFORCE++, Hu 2025), once the step's old and reference log-probs are known:
//   r_i <- r_i - beta * sum_t mask_{i,t} k_{i,t}         (k: the KL estimator of src/rl/losses.cpp)
// Group statistics (used to drop and filter groups, and in the metrics): over the n valid rewards of a group,
//   std_g = sqrt( max(0, (sum r^2 - n mean^2) / (n - 1)) )   (0 when n < 2, and exactly 0 when all n are equal:
//   the one-pass formula leaves ~1e-9 of rounding there for rewards such as 0.2 that binary cannot hold)
// A group is flat (no advantage signal) when all its valid rewards are equal.
#include "rlaif/rewards.h"

#include <algorithm>
#include <cmath>

namespace rlaif {

double combine_rewards(const std::vector<RewardPart>& parts) {
  double total = 0, weights = 0;
  for (const auto& p : parts) total += p.weight * p.reward, weights += p.weight;
  return weights > 0 ? total / weights : 0;
}

torch::Tensor overlong_penalty(const torch::Tensor& lengths, const RewardShaping& s) {
  auto zero = torch::zeros(lengths.sizes(), torch::kFloat64);  // [B, G]
  if (s.overlong_buffer_length <= 0) return zero;
  const int64_t free_len = s.max_completion_length - s.overlong_buffer_length;
  auto excess = (lengths - free_len).to(torch::kFloat64) / static_cast<double>(s.overlong_buffer_length);
  return torch::where(lengths > free_len, excess.clamp_max(1.0) * s.overlong_penalty_factor, zero);
}

torch::Tensor missing_eos_penalty(const torch::Tensor& truncated, const RewardShaping& s) {
  return truncated.to(torch::kFloat64) * s.missing_eos_penalty;  // [B, G]
}

torch::Tensor shape_rewards(const torch::Tensor& judge_reward, const torch::Tensor& valid, const torch::Tensor& lengths,
                            const torch::Tensor& truncated, const RewardShaping& s) {
  TORCH_CHECK(judge_reward.dim() == 2 && judge_reward.sizes() == valid.sizes() && valid.sizes() == lengths.sizes() &&
                  lengths.sizes() == truncated.sizes(),
              "judge_reward, valid, lengths and truncated must all be [B, G]");
  auto r = judge_reward.to(torch::kFloat64) - overlong_penalty(lengths, s) - missing_eos_penalty(truncated, s);
  return torch::where(valid, r, torch::zeros_like(r));  // [B, G]
}

torch::Tensor kl_in_reward(const torch::Tensor& rewards, const torch::Tensor& kl, double beta) {
  TORCH_CHECK(rewards.sizes() == kl.sizes(), "rewards and kl must have the same shape [B, G]");
  return rewards - kl.to(torch::kFloat64) * beta;
}

torch::Tensor group_reward_std(const torch::Tensor& rewards, const torch::Tensor& valid) {
  TORCH_CHECK(rewards.dim() == 2 && rewards.sizes() == valid.sizes(), "rewards and valid must both be [B, G]");
  auto r = rewards.to(torch::kFloat64).contiguous();
  auto v = valid.to(torch::kBool).contiguous();
  auto ra = r.accessor<double, 2>();
  auto va = v.accessor<bool, 2>();
  auto out = torch::zeros({r.size(0)}, torch::kFloat64);  // [B]
  auto oa = out.accessor<double, 1>();
  for (int64_t g = 0; g < r.size(0); ++g) {
    double n = 0, s = 0, ss = 0;
    bool equal = true;
    for (int64_t i = 0, first = -1; i < r.size(1); ++i) {
      if (!va[g][i]) continue;
      if (first < 0) first = i;
      equal = equal && ra[g][i] == ra[g][first];
      n += 1, s += ra[g][i], ss += ra[g][i] * ra[g][i];
    }
    if (n < 2 || equal) continue;
    const double mean = s / n;
    oa[g] = std::sqrt(std::max(0.0, (ss - n * mean * mean) / (n - 1)));
  }
  return out;
}

std::vector<GroupSignal> classify_groups(const torch::Tensor& rewards, const torch::Tensor& valid) {
  auto count = valid.to(torch::kInt64).sum(1);  // [B]
  auto std = group_reward_std(rewards, valid);  // [B]
  const auto count_a = count.accessor<int64_t, 1>();
  const auto std_a = std.accessor<double, 1>();
  std::vector<GroupSignal> out;
  for (int64_t g = 0; g < count.size(0); ++g) {
    if (count_a[g] < 2)
      out.push_back(GroupSignal::kDropped);
    else if (std_a[g] == 0)
      out.push_back(GroupSignal::kFlat);
    else
      out.push_back(GroupSignal::kInformative);
  }
  return out;
}

}  // namespace rlaif
