// Reward combination and shaping (src/rl/rewards.cpp) and the micro-batch weights of each loss_type (src/rl/losses.cpp)
// against their formulas: hand-computed examples, and element-by-element loops written from the formulas in the files'
// opening comments on random [B, G] batches (float64 on both sides: equal to the last bit, or within 1e-12 where the
// sums run in another order).
#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>
#include "rlaif/rewards.h"
#include "rlaif/rl.h"

#include "test_util.h"

namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

TEST(Rewards, CombinationIsTheWeightedMeanOfTheSources) {
  // The judge (weight 2, score 0.75), a grader (weight 1, pass) and a grader outside the reward (weight 0, fail).
  EXPECT_DOUBLE_EQ(rlaif::combine_rewards({{2, 0.75}, {1, 1.0}, {0, 0.0}}), (2 * 0.75 + 1) / 3);
  EXPECT_DOUBLE_EQ(rlaif::combine_rewards({{0.5, 0.2}}), 0.2);   // one source is its own reward
  EXPECT_EQ(rlaif::combine_rewards({{0, 0.9}, {0, 0.1}}), 0.0);  // no weight: no reward
  // Two stages (a panel's verdict, then the graders) equal one weighted mean over every source.
  const double panel = rlaif::combine_rewards({{1, 0.4}, {3, 0.8}});
  EXPECT_NEAR(rlaif::combine_rewards({{4, panel}, {2, 1.0}}), rlaif::combine_rewards({{1, 0.4}, {3, 0.8}, {2, 1.0}}),
              1e-15);
}

TEST(Rewards, OverlongPenaltyHandComputed) {
  rlaif::RewardShaping s;
  s.max_completion_length = 16;
  s.overlong_buffer_length = 4;  // free up to 12 tokens, then a linear ramp to the full penalty at 16
  s.overlong_penalty_factor = 0.5;
  auto lengths = torch::tensor({{0, 12, 13}, {14, 15, 16}}, torch::kInt64);
  auto p = rlaif::overlong_penalty(lengths, s);
  auto expected = torch::tensor({{0.0, 0.0, 0.125}, {0.25, 0.375, 0.5}}, kF64);
  EXPECT_TRUE(torch::equal(p, expected)) << p;
  s.overlong_buffer_length = 0;  // off
  EXPECT_EQ(rlaif::overlong_penalty(lengths, s).abs().max().item<double>(), 0.0);
}

TEST(Rewards, MissingEosPenaltyHandComputed) {
  rlaif::RewardShaping s;
  s.missing_eos_penalty = 0.3;
  auto truncated = torch::tensor({{true, false}, {false, true}});
  auto p = rlaif::missing_eos_penalty(truncated, s);
  EXPECT_TRUE(torch::equal(p, torch::tensor({{0.3, 0.0}, {0.0, 0.3}}, kF64))) << p;
}

// shape_rewards on a random batch against the formula written out per element.
TEST(Rewards, ShapingMatchesTheFormulaPerElement) {
  torch::manual_seed(3);
  const int64_t B = 7, G = 5;
  rlaif::RewardShaping s;
  s.max_completion_length = 32;
  s.overlong_buffer_length = 10;
  s.overlong_penalty_factor = 0.7;
  s.missing_eos_penalty = 0.25;
  auto judge = torch::rand({B, G}, kF64);
  auto valid = torch::rand({B, G}) > 0.2;
  auto lengths = torch::randint(0, 33, {B, G}, torch::kInt64);
  auto truncated = lengths == 32;
  auto r = rlaif::shape_rewards(judge, valid, lengths, truncated, s);
  ASSERT_EQ(r.sizes(), judge.sizes());
  ASSERT_EQ(r.scalar_type(), torch::kFloat64);
  for (int64_t g = 0; g < B; ++g)
    for (int64_t i = 0; i < G; ++i) {
      double expected = 0;
      if (valid[g][i].item<bool>()) {
        const int64_t len = lengths[g][i].item<int64_t>(), free_len = 32 - 10;
        expected = judge[g][i].item<double>();
        if (len > free_len) expected -= 0.7 * std::min(1.0, double(len - free_len) / 10);
        if (truncated[g][i].item<bool>()) expected -= 0.25;
      }
      EXPECT_EQ(r[g][i].item<double>(), expected) << g << "," << i;
    }
}

TEST(Rewards, KlInRewardSubtractsBetaTimesTheSummedKl) {
  auto rewards = torch::tensor({{1.0, 0.5}, {0.0, 0.25}}, kF64);
  auto kl = torch::tensor({{0.5f, 0.0f}, {2.0f, 1.0f}});  // float32, as the trainer sums it
  auto r = rlaif::kl_in_reward(rewards, kl, 0.1);
  EXPECT_NEAR(r[0][0].item<double>(), 0.95, 1e-15);
  EXPECT_EQ(r[0][1].item<double>(), 0.5);
  EXPECT_NEAR(r[1][0].item<double>(), -0.2, 1e-15);
  EXPECT_NEAR(r[1][1].item<double>(), 0.15, 1e-15);
  EXPECT_ANY_THROW(rlaif::kl_in_reward(rewards, torch::zeros({3}), 0.1));
}

// The group standard deviation against torch.std (unbiased) over each group's valid rewards.
TEST(Rewards, GroupStdIsTheUnbiasedStdOfTheValidRewards) {
  torch::manual_seed(5);
  const int64_t B = 9, G = 6;
  auto rewards = torch::randn({B, G}, kF64);
  auto valid = torch::rand({B, G}) > 0.3;
  valid[0].fill_(false);
  valid[1].fill_(false);
  valid[1][2] = true;     // one valid sample: no spread
  rewards[2].fill_(0.1);  // all equal: exactly no spread
  auto std = rlaif::group_reward_std(rewards, valid);
  ASSERT_EQ(std.sizes(), torch::IntArrayRef({B}));
  for (int64_t g = 0; g < B; ++g) {
    auto x = rewards[g].masked_select(valid[g]);
    const double expected = x.numel() < 2 ? 0.0 : x.std().item<double>();
    EXPECT_NEAR(std[g].item<double>(), expected, 1e-12) << g;
    if (g == 2 && x.numel() >= 2) {
      EXPECT_EQ(std[g].item<double>(), 0.0);
    }
  }
}

TEST(Rewards, GroupsAreDroppedFlatOrInformative) {
  auto rewards = torch::tensor({{1.0, 1.0, 0.0}, {0.5, 0.5, 0.5}, {0.0, 1.0, 0.0}, {0.2, 0.2, 0.9}}, kF64);
  auto valid = torch::tensor({{true, false, false}, {true, true, true}, {true, true, false}, {true, true, false}});
  auto signal = rlaif::classify_groups(rewards, valid);
  using S = rlaif::GroupSignal;
  // 0.2 has no exact binary form: the one-pass variance leaves rounding where the rewards are equal.
  EXPECT_EQ(signal, (std::vector<S>{S::kDropped, S::kFlat, S::kInformative, S::kFlat}));
  EXPECT_EQ(rlaif::group_reward_std(rewards, valid)[3].item<double>(), 0.0);
}

// Splitting a batch into micro-batches and weighting each micro-batch's loss by micro_batch_weight gives the loss of
// the whole batch (grpo, dr_grpo, dapo) or the mean of the micro-batch losses (bnpo, TRL's definition).
TEST(Rewards, MicroBatchWeightsSumToTheWholeBatchLoss) {
  torch::manual_seed(11);
  const int64_t N = 7, T = 6, n_max = 3, M = 3;  // micro-batches of 3, 3, 1
  rlaif::PolicyLossInputs in;
  in.old_logp = -torch::rand({N, T}, kF64) - 0.1;
  in.logp = in.old_logp + torch::randn({N, T}, kF64) * 0.2;
  in.advantages = torch::randn({N}, kF64);
  auto lengths = torch::randint(1, T + 1, {N});
  in.mask = (torch::arange(T).view({1, T}) < lengths.view({N, 1})).to(torch::kFloat64);
  for (const auto& [name, loss_type] : rlaif::kLossTypes) {
    rlaif::PolicyLossOptions o;
    o.loss_type = loss_type;
    o.max_completion_length = T;
    o.num_items = in.mask.sum().item<double>();
    double weighted = 0, mean_of_losses = 0;
    for (int64_t s = 0; s < N; s += n_max) {
      const int64_t e = std::min(N, s + n_max);
      rlaif::PolicyLossInputs part;
      part.logp = in.logp.slice(0, s, e);
      part.old_logp = in.old_logp.slice(0, s, e);
      part.advantages = in.advantages.slice(0, s, e);
      part.mask = in.mask.slice(0, s, e);
      const double loss = rlaif::policy_loss(part, o).loss.item<double>();
      weighted += loss * rlaif::micro_batch_weight(loss_type, e - s, N, M);
      mean_of_losses += loss / M;
    }
    const double whole = rlaif::policy_loss(in, o).loss.item<double>();
    EXPECT_NEAR(weighted, loss_type == rlaif::LossType::kBnpo ? mean_of_losses : whole, 1e-12) << name;
  }
}

}  // namespace
