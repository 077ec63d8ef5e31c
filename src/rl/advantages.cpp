// Advantages from the rewards of each prompt's group of samples, exactly as computed below:
//
// Advantages (per completion, from the rewards r of the G samples of its prompt; failed samples are left out):
//   grpo                   A_i = (r_i - mean_g r) / (std_g r + 1e-4)    scale_rewards = group (std over the group),
//                                                                       batch (std over all valid rewards), none (no /)
//   rloo                   A_i = r_i - mean_{j != i} r_j = G/(G-1) (r_i - mean_g r)          (Ahmadian et al. 2024)
//   reinforce_pp           A_i = (r_i - mean_batch r) / std_batch r                            (Hu 2025, REINFORCE++)
//   reinforce_pp_baseline  A_i = (r_i - mean_g r - mean_batch(r - mean_g r)) / std_batch(r - mean_g r)
// std is the unbiased sample standard deviation (torch.std), as in TRL.
#include "rlaif/error.h"
#include "rlaif/rl.h"

namespace rlaif {

namespace {

struct GroupStats {
  torch::Tensor count, mean, std;  // [B, 1] each, over the valid samples of each group
};

GroupStats group_stats(const torch::Tensor& r, const torch::Tensor& v) {  // r [B, G] (0 where invalid), v [B, G]
  auto count = v.sum(1, /*keepdim=*/true);
  auto mean = r.sum(1, true) / count.clamp_min(1);
  auto sq = ((r - mean) * v).pow(2).sum(1, true);
  auto std = (sq / (count - 1).clamp_min(1)).sqrt();  // unbiased, as torch.std
  return {count, mean, std};
}

// Mean and unbiased std over the valid entries of x.
std::pair<torch::Tensor, torch::Tensor> batch_stats(const torch::Tensor& x, const torch::Tensor& v) {
  auto n = v.sum();
  auto mean = (x * v).sum() / n.clamp_min(1);
  auto std = (((x - mean) * v).pow(2).sum() / (n - 1).clamp_min(1)).sqrt();
  return {mean, std};
}

}  // namespace

torch::Tensor compute_advantages(const torch::Tensor& rewards, const torch::Tensor& valid, Algorithm estimator,
                                 ScaleRewards scale_rewards) {
  TORCH_CHECK(rewards.dim() == 2 && rewards.sizes() == valid.sizes(), "rewards and valid must both be [B, G]");
  auto v = valid.to(torch::kFloat64);
  auto r = rewards.to(torch::kFloat64) * v;
  auto g = group_stats(r, v);
  torch::Tensor a;
  if (estimator == Algorithm::kGrpo) {
    a = r - g.mean;
    if (scale_rewards == ScaleRewards::kGroup) {
      a = a / (g.std + 1e-4);
    } else if (scale_rewards == ScaleRewards::kBatch) {
      a = a / (batch_stats(r, v).second + 1e-4);
    }
  } else if (estimator == Algorithm::kRloo) {
    // r_i - mean of the others = count/(count-1) (r_i - mean); a group of one has no baseline (advantage 0).
    a = (r - g.mean) * (g.count / (g.count - 1).clamp_min(1));
  } else if (estimator == Algorithm::kReinforcePp || estimator == Algorithm::kReinforcePpBaseline) {
    auto x = estimator == Algorithm::kReinforcePp ? r : r - g.mean;
    auto [mean, std] = batch_stats(x, v);
    a = (x - mean) / (std + 1e-8);
  } else {
    throw Error("online_dpo learns from preferences and has no advantages", "algorithm",
                "use grpo, rloo, reinforce_pp or reinforce_pp_baseline");
  }
  return (a * v).to(rewards.scalar_type());
}

}  // namespace rlaif
