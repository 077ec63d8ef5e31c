// Steps 1-2 of `rlaif train` with [env]: each of a prompt's G samples is an episode played against the environment
// (rlaif/episodes.h), and its reward is the environment's (summed over its actions) and, with a judge, the judge's
// verdict on the whole trajectory, mixed by [env] reward_weight and judge_weight. An episode whose environment failed
// leaves its group (never scored 0). The sample the update trains on is everything after the episode's first prompt;
// its policy mask keeps the observations out of the loss and the KL.
#include <algorithm>
#include <functional>

#include "rlaif/episodes.h"
#include "train/rl_trainer.h"

namespace rlaif {
namespace {

std::string message_text(const nlohmann::ordered_json& m) {
  const auto& c = m.value("content", nlohmann::ordered_json());
  return c.is_string() ? c.get<std::string>() : c.dump();
}

// The trajectory after the first prompt: the policy's turns and the environment's observations, labelled.
std::string trajectory_text(const Episode& ep) {
  std::string out;
  for (size_t k = ep.prompt_messages; k < ep.messages.size(); ++k) {
    const std::string role = ep.messages[k].value("role", std::string());
    const std::string label = role == "assistant" ? "[assistant]"
                              : role == "tool"    ? "[tool " + ep.messages[k].value("name", std::string()) + "]"
                                                  : "[environment]";
    out += (out.empty() ? "" : "\n\n") + label + "\n" + message_text(ep.messages[k]);
  }
  return out;
}

// The episode's first prompt (the reset's observation in) as the judge reads it.
std::string first_prompt_text(const Episode& ep) {
  return conversation_text(nlohmann::ordered_json(std::vector<nlohmann::ordered_json>(
      ep.messages.begin(), ep.messages.begin() + static_cast<std::ptrdiff_t>(ep.prompt_messages))));
}

// The policy's last turn: what the rule graders check (the judge reads the whole trajectory).
std::string final_answer(const nlohmann::json& episode) {
  const auto& messages = episode["messages"];
  for (auto m = messages.rbegin(); m != messages.rend(); ++m)
    if (m->value("role", std::string()) == "assistant") {
      const auto& c = m->value("content", nlohmann::json());
      return c.is_string() ? c.get<std::string>() : c.dump();
    }
  return "";
}

nlohmann::json episode_json(const Episode& ep) {
  nlohmann::json rewards = nlohmann::json::array();
  for (const auto& w : ep.rewards) rewards.push_back(w ? nlohmann::json(*w) : nlohmann::json(nullptr));
  nlohmann::json o = {{"ended_by", ep.ended_by}, {"failed", ep.failed()},       {"turns", ep.turns},
                      {"rewards", rewards},      {"env_reward", ep.env_reward}, {"messages", ep.messages}};
  if (!ep.detail.empty()) o["detail"] = ep.detail;
  return o;
}

}  // namespace

EpisodeOptions RlTrainer::episode_options() const {
  EpisodeOptions o;
  o.params = generation_params();
  o.max_turns = c_.env.max_turns;
  o.max_turn_tokens = c_.env.max_turn_tokens;
  o.max_episode_tokens = c_.env.max_episode_tokens;
  return o;
}

RolloutBatch RlTrainer::roll_out_episodes(const std::vector<size_t>& rows, int64_t first, int64_t step, int64_t round,
                                          RolloutTally& t) {
  const int64_t G = c_.num_generations;
  std::vector<EpisodeRequest> requests;
  for (size_t k = 0; k < rows.size(); ++k) {
    const auto& row = rows_[rows[k]];
    EpisodeRequest q;
    q.messages = row.messages;
    q.row = row.source;
    q.num_episodes = G;
    q.seed = rollout_seed(step, round, first + static_cast<int64_t>(k));
    requests.push_back(std::move(q));
  }
  const EpisodeOptions o = episode_options();
  EpisodeStats st;
  const auto calls_before = env_->stats().tool_calls;
  auto played = run_episodes(*gen_, *chat_, *env_, requests, o, &st);

  auto& e = t.episodes;
  e["episodes"] += st.episodes, e["failed"] += st.failed, e["turns"] += st.turns;
  e["policy_tokens"] += st.policy_tokens, e["observation_tokens"] += st.observation_tokens;
  e["env_wait_s"] += st.env_wait_s;
  e["prefill_tokens"] += st.prefill_tokens, e["reused_tokens"] += st.reused_tokens;
  for (const auto& [outcome, n] : env_->stats().tool_calls) {  // tools: this rollout's calls by outcome
    const auto was = calls_before.find(outcome);
    const int64_t calls = n - (was == calls_before.end() ? 0 : was->second);
    if (calls > 0) e["tool_calls/" + outcome] += static_cast<double>(calls);
  }
  std::vector<std::vector<Sample>> samples(rows.size());
  std::vector<std::vector<std::vector<int64_t>>> prompts(rows.size());
  std::vector<std::vector<std::vector<uint8_t>>> masks(rows.size());
  std::vector<std::vector<nlohmann::json>> info(rows.size());
  for (size_t g = 0; g < rows.size(); ++g)
    for (const Episode& ep : played[g]) {
      const auto cut = static_cast<std::ptrdiff_t>(ep.prompt_length);
      Sample s;  // everything after the first prompt
      s.token_ids.assign(ep.token_ids.begin() + cut, ep.token_ids.end());
      s.logprobs.assign(ep.logprobs.begin() + cut, ep.logprobs.end());
      s.text = trajectory_text(ep);
      const bool cut_short = ep.ended_by == "max_episode_tokens" || ep.ended_by == "context";
      s.finish_reason = cut_short ? FinishReason::kLength : FinishReason::kStop;
      samples[g].push_back(std::move(s));
      prompts[g].emplace_back(ep.token_ids.begin(), ep.token_ids.begin() + cut);
      masks[g].emplace_back(ep.policy_mask.begin() + cut, ep.policy_mask.end());
      info[g].push_back(episode_json(ep));
      e["ended_by/" + (ep.failed() ? std::string("failure") : ep.ended_by)] += 1;
      if (!ep.failed()) e["env_reward"] += ep.env_reward;
      info[g].back()["prompt"] = ep.failed() ? rows_[rows[g]].text : first_prompt_text(ep);
    }
  auto b = RolloutBatch::from_samples(rows, std::move(samples));
  auto lengths = b.lengths.accessor<int64_t, 2>();  // an episode's length: the policy's tokens
  for (size_t g = 0; g < rows.size(); ++g)
    for (size_t i = 0; i < masks[g].size(); ++i)
      lengths[g][i] = std::count(masks[g][i].begin(), masks[g][i].end(), uint8_t{1});
  b.prompt_ids = std::move(prompts);
  b.policy_mask = std::move(masks);
  b.episodes = std::move(info);
  return b;
}

// Each episode that ended: reward_weight x its environment reward, plus judge_weight x the judge's reward on the
// trajectory when the run has a judge (an episode the judge fails on leaves its group too).
void RlTrainer::judge_episodes(RolloutBatch& b, RolloutTally& t) {
  const int64_t B = b.groups(), G = c_.num_generations;
  b.start_judging(G);
  auto reward = b.judge_reward.accessor<double, 2>();
  auto valid = b.valid.accessor<bool, 2>();
  for (int64_t g = 0; g < B; ++g) {
    b.judged.emplace_back(G);
    for (int64_t i = 0; i < G; ++i) {
      const auto& ep = b.episodes[g][i];
      if (ep["failed"].get<bool>()) continue;
      valid[g][i] = true;
      reward[g][i] = c_.env.reward_weight * ep["env_reward"].get<double>();
      auto& j = b.judged[g][i];
      j.ok = true;
      j.reward = reward[g][i];
      j.verdict.scores["env_reward"] = ep["env_reward"].get<double>();
    }
  }
  if (!c_.has_judge) return;
  // The judge's result on (g, i) joins the environment's reward; a failure takes the episode out.
  auto add_judge = [&](int64_t g, int64_t i, JudgeResult r) {
    if (!r.ok) {
      ++t.failed;
      valid[g][i] = false, reward[g][i] = 0;
      b.judged[g][i] = std::move(r);
      return;
    }
    reward[g][i] += c_.env.judge_weight * r.reward;
    r.verdict.scores["env_reward"] = b.episodes[g][i]["env_reward"].get<double>();
    r.reward = reward[g][i];
    b.judged[g][i] = std::move(r);
  };
  if (c_.judge_mode == JudgeMode::kGroup) return rank_episodes(b, t, add_judge);
  std::vector<JudgeSample> asks;
  std::vector<std::pair<int64_t, int64_t>> asked;  // (group, episode) of each ask
  for (int64_t g = 0; g < B; ++g)
    for (int64_t i = 0; i < G; ++i) {
      if (!valid[g][i]) continue;
      const auto& row = rows_[b.rows[g]];
      asks.push_back({b.episodes[g][i]["prompt"].get<std::string>(), b.samples[g][i].text, row.reference, row.rubric,
                      final_answer(b.episodes[g][i])});
      asked.emplace_back(g, i);
    }
  const auto results = judge_->judge(asks);
  for (size_t k = 0; k < asks.size(); ++k) {
    if (results[k].ok && !results[k].cached) t.latencies.push_back(results[k].latency_s);
    add_judge(asked[k].first, asked[k].second, results[k]);
  }
}

// Group judging of trajectories: a prompt's episodes that ended, ranked in one judge call. Their common first prompt
// is sent once; when the resets gave the episodes different first prompts, each trajectory starts with its own.
void RlTrainer::rank_episodes(RolloutBatch& b, RolloutTally& t,
                              const std::function<void(int64_t, int64_t, JudgeResult)>& add_judge) {
  const auto valid = b.valid.accessor<bool, 2>();
  std::vector<GroupSample> asks;
  std::vector<std::pair<int64_t, std::vector<int64_t>>> asked;  // (group, its episodes in the ask)
  for (int64_t g = 0; g < b.groups(); ++g) {
    std::vector<int64_t> ended;
    for (int64_t i = 0; i < b.valid.size(1); ++i)
      if (valid[g][i]) ended.push_back(i);
    if (ended.size() < 2) continue;  // the group drops: nothing to rank
    GroupSample q{b.episodes[g][ended[0]]["prompt"].get<std::string>(), {}, rows_[b.rows[g]].reference};
    bool same = true;
    for (int64_t i : ended) same = same && b.episodes[g][i]["prompt"] == q.prompt;
    if (!same) q.prompt = rows_[b.rows[g]].text;
    for (int64_t i : ended)
      q.completions.push_back(same ? b.samples[g][i].text
                                   : "[start]\n" + b.episodes[g][i]["prompt"].get<std::string>() + "\n\n" +
                                         b.samples[g][i].text);
    asks.push_back(std::move(q));
    asked.emplace_back(g, std::move(ended));
  }
  const auto ranked = judge_->rank(asks);
  for (size_t k = 0; k < asks.size(); ++k) {
    const auto& [g, ended] = asked[k];
    const auto& r = ranked[k];
    if (r.ok) t.latencies.push_back(r.latency_s);
    for (size_t n = 0; n < ended.size(); ++n) {
      JudgeResult j;
      j.ok = r.ok;
      j.failure = r.failure;
      if (r.ok) {
        j.reward = r.rewards[n];
        j.verdict.scores["group_score"] = r.scores[n];
        t.group_rewards.push_back(r.rewards[n]);
        t.group_positions.push_back(r.positions[n]);
      }
      add_judge(g, ended[n], std::move(j));
    }
  }
}

std::vector<JudgeResult> RlTrainer::evaluate_episodes(size_t n, std::vector<JudgeSample>& samples,
                                                      std::vector<nlohmann::json>& episodes) {
  std::vector<EpisodeRequest> requests;
  for (size_t k = 0; k < n; ++k) {
    EpisodeRequest q;
    q.messages = eval_rows_[k].messages;
    q.row = eval_rows_[k].source;
    q.seed = sample_seed(c_.seed ^ 0xE7A1ULL, k);
    requests.push_back(std::move(q));
  }
  const auto played = run_episodes(*gen_, *chat_, *env_, requests, episode_options());
  std::vector<JudgeResult> results(n);
  std::vector<JudgeSample> asks;
  std::vector<size_t> asked;
  for (size_t k = 0; k < n; ++k) {
    const Episode& ep = played[k].at(0);
    episodes.push_back(episode_json(ep));
    const auto& row = eval_rows_[k];
    samples.push_back({ep.failed() ? row.text : first_prompt_text(ep), trajectory_text(ep), row.reference, row.rubric,
                       final_answer(episodes.back())});
    JudgeResult& r = results[k];
    if (ep.failed()) {
      r.failure = ep.ended_by, r.detail = ep.detail;
      continue;
    }
    r.ok = true;
    r.reward = c_.env.reward_weight * ep.env_reward;
    if (c_.has_judge) asks.push_back(samples.back()), asked.push_back(k);
  }
  if (!asks.empty()) {
    const auto judged = judge_->judge(asks);
    for (size_t a = 0; a < asks.size(); ++a) {
      const double env_part = results[asked[a]].reward;
      JudgeResult& r = results[asked[a]] = judged[a];
      if (r.ok) r.reward = env_part + c_.env.judge_weight * r.reward;
    }
  }
  for (size_t k = 0; k < n; ++k)
    if (results[k].ok) results[k].verdict.scores["env_reward"] = episodes[k]["env_reward"].get<double>();
  return results;
}

}  // namespace rlaif
