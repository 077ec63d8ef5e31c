// The RolloutBatch (src/train/rollout_batch.h): built from generated samples, groups selected and appended with every
// [B, G] field following them, and the valid completions listed group-major (the order of the update's items).
#include <gtest/gtest.h>

#include "train/rollout_batch.h"

namespace {

rlaif::Sample sample(int64_t tokens, rlaif::FinishReason finish) {
  rlaif::Sample s;
  s.token_ids.assign(static_cast<size_t>(tokens), 7);
  s.text = std::to_string(tokens);
  s.finish_reason = finish;
  return s;
}

// B = 3 groups of G = 2: lengths 10 g + i, the second sample of group 1 cut at the length limit.
rlaif::RolloutBatch three_groups() {
  using rlaif::FinishReason;
  std::vector<std::vector<rlaif::Sample>> samples;
  for (int64_t g = 0; g < 3; ++g)
    samples.push_back({sample(10 * g, FinishReason::kStop),
                       sample(10 * g + 1, g == 1 ? FinishReason::kLength : FinishReason::kStop)});
  auto b = rlaif::RolloutBatch::from_samples({5, 6, 7}, std::move(samples));
  b.judged.assign(3, std::vector<rlaif::JudgeResult>(2));
  b.judged[2][1].reward = 0.75;
  b.valid = torch::tensor({{true, false}, {true, true}, {false, true}});
  b.rewards = torch::tensor({{0.5, 0.0}, {0.25, 1.0}, {0.0, 0.75}}, torch::kFloat64);
  return b;
}

TEST(RolloutBatch, FromSamplesFillsLengthsAndTruncation) {
  auto b = three_groups();
  EXPECT_EQ(b.groups(), 3);
  EXPECT_TRUE(torch::equal(b.lengths, torch::tensor({{0, 1}, {10, 11}, {20, 21}}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(b.truncated, torch::tensor({{false, false}, {false, true}, {false, false}})));
}

TEST(RolloutBatch, SelectAndAppendCarryEveryField) {
  auto b = three_groups();
  auto picked = b.select({2, 0});
  ASSERT_EQ(picked.groups(), 2);
  EXPECT_EQ(picked.rows, (std::vector<size_t>{7, 5}));
  EXPECT_EQ(picked.samples[0][1].text, "21");
  EXPECT_EQ(picked.judged[0][1].reward, 0.75);
  EXPECT_TRUE(torch::equal(picked.lengths, torch::tensor({{20, 21}, {0, 1}}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(picked.valid, torch::tensor({{false, true}, {true, false}})));
  EXPECT_TRUE(torch::equal(picked.rewards, torch::tensor({{0.0, 0.75}, {0.5, 0.0}}, torch::kFloat64)));
  EXPECT_FALSE(picked.advantages.defined());

  rlaif::RolloutBatch all;  // empty, as a step starts
  all.append(b.select({1}));
  all.append(rlaif::RolloutBatch());
  all.append(picked);
  EXPECT_EQ(all.rows, (std::vector<size_t>{6, 7, 5}));
  EXPECT_TRUE(torch::equal(all.rewards, torch::tensor({{0.25, 1.0}, {0.0, 0.75}, {0.5, 0.0}}, torch::kFloat64)));
  EXPECT_TRUE(torch::equal(all.truncated, torch::tensor({{false, true}, {false, false}, {false, false}})));
  EXPECT_EQ(all.judged.size(), 3u);
}

TEST(RolloutBatch, ValidItemsAreGroupMajor) {
  auto items = three_groups().valid_items();
  std::vector<std::pair<int64_t, int64_t>> expected = {{0, 0}, {1, 0}, {1, 1}, {2, 1}};
  EXPECT_EQ(items, expected);
  // The same order as masked_select, which the update uses to pick each item's advantage.
  auto b = three_groups();
  auto picked = b.rewards.masked_select(b.valid);
  for (size_t k = 0; k < items.size(); ++k)
    EXPECT_EQ(picked[k].item<double>(), b.rewards[items[k].first][items[k].second].item<double>());
}

}  // namespace
