#include "train/rollout_batch.h"

namespace rlaif {
namespace {

// Concatenates along the group dimension; an undefined tensor stays undefined on both sides.
torch::Tensor cat_groups(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.defined()) return b;
  if (!b.defined()) return a;
  return torch::cat({a, b}, 0);
}

torch::Tensor select_groups(const torch::Tensor& t, const torch::Tensor& index) {
  return t.defined() ? t.index_select(0, index) : t;
}

}  // namespace

RolloutBatch RolloutBatch::from_samples(std::vector<size_t> rows, std::vector<std::vector<Sample>> samples) {
  RolloutBatch b;
  const int64_t B = static_cast<int64_t>(samples.size()), G = B ? static_cast<int64_t>(samples[0].size()) : 0;
  b.lengths = torch::zeros({B, G}, torch::kInt64);
  b.truncated = torch::zeros({B, G}, torch::kBool);
  auto len = b.lengths.accessor<int64_t, 2>();
  auto cut = b.truncated.accessor<bool, 2>();
  for (int64_t g = 0; g < B; ++g)
    for (int64_t i = 0; i < G; ++i) {
      len[g][i] = static_cast<int64_t>(samples[g][i].token_ids.size());
      cut[g][i] = samples[g][i].finish_reason == FinishReason::kLength;
    }
  b.rows = std::move(rows);
  b.samples = std::move(samples);
  return b;
}

RolloutBatch RolloutBatch::select(const std::vector<int64_t>& index) const {
  RolloutBatch out;
  for (int64_t g : index) {
    out.rows.push_back(rows[g]);
    out.samples.push_back(samples[g]);
    if (!judged.empty()) out.judged.push_back(judged[g]);
  }
  auto idx = torch::tensor(index, torch::kInt64);
  out.lengths = select_groups(lengths, idx);
  out.truncated = select_groups(truncated, idx);
  out.judge_reward = select_groups(judge_reward, idx);
  out.valid = select_groups(valid, idx);
  out.rewards = select_groups(rewards, idx);
  out.advantages = select_groups(advantages, idx);
  return out;
}

void RolloutBatch::append(RolloutBatch other) {
  if (other.empty()) return;
  rows.insert(rows.end(), other.rows.begin(), other.rows.end());
  for (auto& s : other.samples) samples.push_back(std::move(s));
  for (auto& j : other.judged) judged.push_back(std::move(j));
  lengths = cat_groups(lengths, other.lengths);
  truncated = cat_groups(truncated, other.truncated);
  judge_reward = cat_groups(judge_reward, other.judge_reward);
  valid = cat_groups(valid, other.valid);
  rewards = cat_groups(rewards, other.rewards);
  advantages = cat_groups(advantages, other.advantages);
}

std::vector<std::pair<int64_t, int64_t>> RolloutBatch::valid_items() const {
  std::vector<std::pair<int64_t, int64_t>> out;
  auto v = valid.accessor<bool, 2>();
  for (int64_t g = 0; g < valid.size(0); ++g)
    for (int64_t i = 0; i < valid.size(1); ++i)
      if (v[g][i]) out.emplace_back(g, i);
  return out;
}

}  // namespace rlaif
