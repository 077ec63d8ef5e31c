#include "train/rollout_metrics.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include "rlaif/agreement.h"
#include "rlaif/rewards.h"
#include "rlaif/rubric.h"

namespace rlaif {
namespace {

// Pearson's r, 0 when undefined (fewer than 3 points, or a constant side).
double correlation(const std::vector<double>& a, const std::vector<double>& b) {
  const double r = a.size() > 2 ? pearson(a, b) : 0.0;
  return std::isnan(r) ? 0.0 : r;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / v.size();
}

// TRL's reward and reward_std (the mean of the groups' standard deviations), their correlation with length, and the
// mean of every criterion, grader and panel judge over the kept groups' valid samples. Samples graded on their data
// row's own items (whose names mean something only within the row) count in rubric/* and checklist/* instead.
void reward_metrics(const RolloutBatch& kept, nlohmann::json& m) {
  std::vector<double> rewards, lengths, formatting;
  std::map<std::string, std::pair<double, int64_t>> per_criterion;
  auto add = [&](const std::string& name, double v) { per_criterion[name].first += v, per_criterion[name].second++; };
  double rubric_samples = 0, rubric_reward = 0, rubric_items = 0, rubric_item_sum = 0;
  double checklist_samples = 0, checklist_reward = 0, checklist_items = 0, items_yes = 0, all_yes = 0;
  double disagreement = 0, panel_samples = 0;
  auto r = kept.rewards.accessor<double, 2>();
  auto valid = kept.valid.accessor<bool, 2>();
  for (int64_t g = 0; g < kept.groups(); ++g)
    for (size_t i = 0; i < kept.samples[g].size(); ++i) {
      if (!valid[g][i]) continue;
      const auto& j = kept.judged[g][i];
      rewards.push_back(r[g][i]);
      lengths.push_back(static_cast<double>(kept.samples[g][i].token_ids.size()));
      formatting.push_back(formatting_kinds(kept.samples[g][i].text));
      if (j.rubric_kind == "checklist") {
        bool every = true;
        for (const auto& [name, score] : j.verdict.scores) items_yes += score >= 0.5, every = every && score >= 0.5;
        checklist_items += static_cast<double>(j.verdict.scores.size());
        checklist_samples += 1, checklist_reward += j.verdict.reward, all_yes += every;
      } else if (j.rubric_kind == "rubric") {
        for (const auto& [name, score] : j.verdict.scores)
          rubric_item_sum += (score - kRowRubricMin) / (kRowRubricMax - kRowRubricMin);
        rubric_items += static_cast<double>(j.verdict.scores.size());
        rubric_samples += 1, rubric_reward += j.verdict.reward;
      } else {
        for (const auto& [name, score] : j.verdict.scores) add(name, score);
      }
      for (const auto& [name, grade] : j.grades) add(name, grade);
      for (const auto& [name, reward] : j.judge_rewards) add(name, reward);
      if (j.judge_rewards.size() >= 2) {  // a panel: how far apart its judges are (their standard deviation)
        const double n = static_cast<double>(j.judge_rewards.size());
        double jm = 0, jv = 0;
        for (const auto& kv : j.judge_rewards) jm += kv.second / n;
        for (const auto& kv : j.judge_rewards) jv += (kv.second - jm) * (kv.second - jm) / n;
        disagreement += std::sqrt(jv), panel_samples += 1;
      }
    }
  double std_sum = 0;
  auto stds = group_reward_std(kept.rewards, kept.valid);  // [B]
  auto std_a = stds.accessor<double, 1>();
  for (int64_t g = 0; g < kept.groups(); ++g) std_sum += std_a[g];
  m["reward"] = mean_of(rewards);
  m["reward_std"] = kept.empty() ? 0.0 : std_sum / kept.groups();
  for (const auto& [name, v] : per_criterion) m["rewards/" + name + "/mean"] = v.first / std::max<int64_t>(1, v.second);
  m["reward_length_corr"] = correlation(rewards, lengths);
  m["reward_format_corr"] = correlation(rewards, formatting);
  if (panel_samples > 0) m["judge/panel_disagreement"] = disagreement / panel_samples;
  if (rubric_samples > 0) {
    m["rubric/samples"] = rubric_samples;
    m["rubric/reward"] = rubric_reward / rubric_samples;
    m["rubric/item_score"] = rubric_item_sum / std::max(1.0, rubric_items);
  }
  if (checklist_samples > 0) {
    m["checklist/samples"] = checklist_samples;
    m["checklist/reward"] = checklist_reward / checklist_samples;
    m["checklist/item_pass_rate"] = items_yes / std::max(1.0, checklist_items);
    m["checklist/all_pass_rate"] = all_yes / checklist_samples;
  }
}

// How often the judge and the integrity verifier (a grader) call a valid sample a success.
void integrity_metrics(const RolloutBatch& kept, const TrainConfig& c, nlohmann::json& m) {
  if (c.integrity_verifier.empty()) return;
  double judge_success = 0, verifier_success = 0, checked = 0;
  auto valid = kept.valid.accessor<bool, 2>();
  for (int64_t g = 0; g < kept.groups(); ++g)
    for (size_t i = 0; i < kept.judged[g].size(); ++i) {
      const auto& j = kept.judged[g][i];
      auto it = j.grades.find(c.integrity_verifier);
      if (!valid[g][i] || it == j.grades.end()) continue;
      judge_success += j.verdict.reward >= c.integrity_judge_threshold;
      verifier_success += it->second >= 0.5;
      checked += 1;
    }
  if (checked == 0) return;
  m["integrity/judge_success_rate"] = judge_success / checked;
  m["integrity/verifier_success_rate"] = verifier_success / checked;
  m["integrity/judge_verifier_gap"] = (judge_success - verifier_success) / checked;
}

// The q-quantile (0..1) of v with linear interpolation (numpy's default); 0 for an empty v.
double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double pos = q * (v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos)), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

}  // namespace

int formatting_kinds(const std::string& text) {
  bool list = false, header = false, emoji = false;
  for (size_t at = 0; at < text.size();) {  // each line
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    size_t b = text.find_first_not_of(" \t", at);
    if (b < end) {
      const char c = text[b];
      list = list || ((c == '-' || c == '*' || c == '+') && b + 1 < end && text[b + 1] == ' ');
      size_t d = b;
      while (d < end && std::isdigit(static_cast<unsigned char>(text[d]))) ++d;
      list = list || (d > b && d + 1 < end && (text[d] == '.' || text[d] == ')') && text[d + 1] == ' ');
      header = header || c == '#';
    }
    at = end + 1;
  }
  for (size_t i = 0; i + 3 < text.size() && !emoji; ++i) {  // U+1F300-U+1FAFF (4 bytes: F0 9F 8C..AB ..)
    const auto b0 = static_cast<unsigned char>(text[i]), b1 = static_cast<unsigned char>(text[i + 1]);
    emoji = b0 == 0xF0 && b1 == 0x9F;
  }
  const bool bold = text.find("**") != std::string::npos || text.find("__") != std::string::npos;
  const bool fence = text.find("```") != std::string::npos;
  return list + header + bold + fence + emoji;
}

// Episodes' metrics from their summed counts (docs/metrics.md, env/...).
static void episode_metrics(const std::map<std::string, double>& e, nlohmann::json& m) {
  auto get = [&](const std::string& k) {
    auto it = e.find(k);
    return it == e.end() ? 0.0 : it->second;
  };
  const double n = get("episodes"), ended = n - get("failed");
  const double tokens = get("policy_tokens") + get("observation_tokens");
  m["env/reward"] = ended > 0 ? get("env_reward") / ended : 0.0;
  m["env/failures"] = get("failed");
  m["env/turns_mean"] = n > 0 ? get("turns") / n : 0.0;
  m["env/policy_token_share"] = tokens > 0 ? get("policy_tokens") / tokens : 0.0;
  m["env/wait_s"] = get("env_wait_s");
  const double prompt_tokens = get("prefill_tokens") + get("reused_tokens");
  m["env/kv_reused_share"] = prompt_tokens > 0 ? get("reused_tokens") / prompt_tokens : 0.0;
  for (const auto& [k, x] : e)
    if (k.rfind("ended_by/", 0) == 0)
      m["env/" + k] = n > 0 ? x / n : 0.0;
    else if (k.rfind("tool_calls/", 0) == 0)
      m["env/" + k] = x;
}

void rollout_metrics(const RolloutBatch& kept, const RolloutTally& t, const TrainConfig& c, nlohmann::json& m) {
  if (kept.empty()) {  // every group failed or had no signal
    m["reward"] = 0.0, m["reward_std"] = 0.0, m["reward_length_corr"] = 0.0, m["reward_format_corr"] = 0.0;
  } else {
    reward_metrics(kept, m);
    integrity_metrics(kept, c, m);
  }
  m["frac_reward_zero_std"] = t.groups_seen ? double(t.flat) / t.groups_seen : 0.0;
  const auto& len = t.lengths;
  m["completions/mean_length"] = mean_of(len);
  m["completions/min_length"] = len.empty() ? 0 : *std::min_element(len.begin(), len.end());
  m["completions/max_length"] = len.empty() ? 0 : *std::max_element(len.begin(), len.end());
  m["completions/clipped_ratio"] = len.empty() ? 0.0 : double(t.clipped) / len.size();
  m["integrity/master_key_share"] = len.empty() ? 0.0 : double(t.content_free) / len.size();
  if (c.judge_mode == JudgeMode::kGroup) m["judge/position_corr"] = correlation(t.group_rewards, t.group_positions);
  m["judge/failures"] = t.failed;
  m["judge/latency_p50"] = percentile(t.latencies, 0.5);
  m["judge/latency_p95"] = percentile(t.latencies, 0.95);
  m["groups/dropped"] = t.dropped;
  m["groups/kept"] = kept.groups();
  m["timing/generate"] = t.generate_s;
  m["timing/judge"] = t.judge_s;
  int64_t tokens = 0;
  for (double l : len) tokens += static_cast<int64_t>(l);
  m["generate/tokens_per_s"] = t.generate_s > 0 ? tokens / t.generate_s : 0.0;
  if (c.episodes()) episode_metrics(t.episodes, m);
}

RolloutTally gather_tally(Dist& dist, const RolloutTally& t) {
  if (dist.world_size() == 1) return t;
  nlohmann::json mine = {t.generate_s,    t.judge_s,         t.failed,  t.groups_seen, t.dropped,
                         t.flat,          t.lengths,         t.clipped, t.latencies,   t.content_free,
                         t.group_rewards, t.group_positions, t.episodes};
  RolloutTally all;
  for (const auto& bytes : dist.all_gather(mine.dump())) {
    auto j = nlohmann::json::parse(bytes);
    all.generate_s = std::max(all.generate_s, j[0].get<double>());
    all.judge_s = std::max(all.judge_s, j[1].get<double>());
    all.failed += j[2].get<int64_t>();
    all.groups_seen += j[3].get<int64_t>();
    all.dropped += j[4].get<int64_t>();
    all.flat += j[5].get<int64_t>();
    for (double x : j[6]) all.lengths.push_back(x);
    all.clipped += j[7].get<int64_t>();
    for (double x : j[8]) all.latencies.push_back(x);
    all.content_free += j[9].get<int64_t>();
    for (double x : j[10]) all.group_rewards.push_back(x);
    for (double x : j[11]) all.group_positions.push_back(x);
    for (const auto& [k, x] : j[12].items()) all.episodes[k] += x.get<double>();
  }
  return all;
}

}  // namespace rlaif
