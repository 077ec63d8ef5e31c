#include "train/rollout_batch.h"

#include <nlohmann/json.hpp>

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

using nlohmann::json;

json tensor_json(const torch::Tensor& t) {  // [B, G] as a flat list (null when undefined)
  if (!t.defined()) return nullptr;
  auto d = t.to(torch::kFloat64).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

torch::Tensor tensor_from(const json& j, int64_t B, int64_t G, torch::ScalarType type) {
  if (j.is_null()) return {};
  auto v = j.get<std::vector<double>>();
  return torch::tensor(v, torch::kFloat64).view({B, G}).to(type);
}

json batch_json(const RolloutBatch& b) {
  json samples = json::array(), judged = json::array();
  for (const auto& group : b.samples)
    for (const auto& s : group) samples.push_back({s.text, s.token_ids, s.finish_reason == FinishReason::kStop});
  for (const auto& group : b.judged)
    for (const auto& j : group)
      judged.push_back({j.ok, j.reward, j.verdict.reward, j.verdict.scores, j.grades, j.judge_rewards, j.rubric_kind});
  return {{"rows", b.rows},
          {"G", b.samples.empty() ? 0 : b.samples[0].size()},
          {"samples", samples},
          {"judged", judged},
          {"lengths", tensor_json(b.lengths)},
          {"truncated", tensor_json(b.truncated)},
          {"judge_reward", tensor_json(b.judge_reward)},
          {"valid", tensor_json(b.valid)},
          {"rewards", tensor_json(b.rewards)},
          {"advantages", tensor_json(b.advantages)},
          {"episodes", b.episodes}};
}

RolloutBatch batch_from(const json& j) {
  RolloutBatch b;
  b.rows = j["rows"].get<std::vector<size_t>>();
  const int64_t B = static_cast<int64_t>(b.rows.size()), G = j["G"].get<int64_t>();
  for (int64_t g = 0; g < B; ++g) {
    b.samples.emplace_back();
    for (int64_t i = 0; i < G; ++i) {
      const auto& s = j["samples"][g * G + i];
      Sample x;
      x.text = s[0].get<std::string>();
      x.token_ids = s[1].get<std::vector<int64_t>>();
      x.finish_reason = s[2].get<bool>() ? FinishReason::kStop : FinishReason::kLength;
      b.samples.back().push_back(std::move(x));
    }
    if (j["judged"].empty()) continue;
    b.judged.emplace_back();
    for (int64_t i = 0; i < G; ++i) {
      const auto& r = j["judged"][g * G + i];
      JudgeResult x;
      x.ok = r[0].get<bool>();
      x.reward = r[1].get<double>();
      x.verdict.reward = r[2].get<double>();
      x.verdict.scores = r[3].get<std::map<std::string, double>>();
      x.grades = r[4].get<std::map<std::string, double>>();
      x.judge_rewards = r[5].get<std::map<std::string, double>>();
      x.rubric_kind = r[6].get<std::string>();
      b.judged.back().push_back(std::move(x));
    }
  }
  b.lengths = tensor_from(j["lengths"], B, G, torch::kInt64);
  b.truncated = tensor_from(j["truncated"], B, G, torch::kBool);
  b.judge_reward = tensor_from(j["judge_reward"], B, G, torch::kFloat64);
  b.valid = tensor_from(j["valid"], B, G, torch::kBool);
  b.rewards = tensor_from(j["rewards"], B, G, torch::kFloat64);
  b.advantages = tensor_from(j["advantages"], B, G, torch::kFloat64);
  for (const auto& group : j["episodes"]) b.episodes.push_back(group.get<std::vector<json>>());
  return b;
}

}  // namespace

RolloutBatch gather_batch(Dist& dist, const RolloutBatch& local) {
  if (dist.world_size() == 1) return local;
  RolloutBatch all;
  // Invalid UTF-8 in a completion becomes U+FFFD, as samples.jsonl writes it anyway.
  const std::string mine = batch_json(local).dump(-1, ' ', false, json::error_handler_t::replace);
  for (const auto& bytes : dist.all_gather(mine)) all.append(batch_from(json::parse(bytes)));
  return all;
}

torch::Tensor gather_rows(Dist& dist, const torch::Tensor& x) {
  if (dist.world_size() == 1) return x;
  auto sizes = dist.all_gather(x.size(0));
  int64_t total = 0, offset = 0;
  for (auto s : sizes) total += s;
  auto shape = x.sizes().vec();
  shape[0] = total;
  auto all = torch::zeros(shape, x.options().dtype(torch::kFloat64));
  for (int r = 0; r < dist.rank(); ++r) offset += sizes[r];
  if (x.size(0) > 0) all.narrow(0, offset, x.size(0)).copy_(x);
  dist.all_reduce_sum(all);  // each rank filled its own rows, zeros elsewhere
  return all.to(x.scalar_type());
}

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

void RolloutBatch::start_judging(int64_t G) {
  judge_reward = torch::zeros({groups(), G}, torch::kFloat64);
  valid = torch::zeros({groups(), G}, torch::kBool);
}

RolloutBatch RolloutBatch::select(const std::vector<int64_t>& index) const {
  RolloutBatch out;
  for (int64_t g : index) {
    out.rows.push_back(rows[g]);
    out.samples.push_back(samples[g]);
    if (!judged.empty()) out.judged.push_back(judged[g]);
    if (!prompt_ids.empty()) out.prompt_ids.push_back(prompt_ids[g]);
    if (!policy_mask.empty()) out.policy_mask.push_back(policy_mask[g]);
    if (!episodes.empty()) out.episodes.push_back(episodes[g]);
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
  for (auto& p : other.prompt_ids) prompt_ids.push_back(std::move(p));
  for (auto& m : other.policy_mask) policy_mask.push_back(std::move(m));
  for (auto& e : other.episodes) episodes.push_back(std::move(e));
  lengths = cat_groups(lengths, other.lengths);
  truncated = cat_groups(truncated, other.truncated);
  judge_reward = cat_groups(judge_reward, other.judge_reward);
  valid = cat_groups(valid, other.valid);
  rewards = cat_groups(rewards, other.rewards);
  advantages = cat_groups(advantages, other.advantages);
}

std::vector<std::pair<int64_t, int64_t>> RolloutBatch::valid_items() const {
  std::vector<std::pair<int64_t, int64_t>> out;
  if (empty()) return out;
  auto v = valid.accessor<bool, 2>();
  for (int64_t g = 0; g < valid.size(0); ++g)
    for (int64_t i = 0; i < valid.size(1); ++i)
      if (v[g][i]) out.emplace_back(g, i);
  return out;
}

}  // namespace rlaif
