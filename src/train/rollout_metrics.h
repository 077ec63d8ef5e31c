// What a step's rollout reports to metrics.jsonl (docs/metrics.md): rewards, completions, the judge, the groups.
// Internal to the trainer.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rlaif/train_config.h"
#include "train/rollout_batch.h"

namespace rlaif {

// Counts over every round of a step, kept groups or not.
struct RolloutTally {
  double generate_s = 0, judge_s = 0;  // judge_s: waiting for the judge after generation ended (the rest overlapped)
  int64_t failed = 0;                  // failed judgments
  int64_t groups_seen = 0, dropped = 0, flat = 0;      // groups generated, dropped (< 2 valid), with zero reward std
  std::vector<double> lengths;                         // tokens of every completion generated
  int64_t clipped = 0;                                 // completions cut at max_completion_length
  std::vector<double> latencies;                       // seconds per judge call that went out (cache hits left out)
  int64_t content_free = 0;                            // completions without content (rlaif/content_check.h)
  std::vector<double> group_rewards, group_positions;  // group judging: each reward and where the judge saw it
  // Episodes ([env]): sums over them — episodes, failed, turns, policy_tokens, observation_tokens, env_wait_s,
  // prefill_tokens, reused_tokens,
  // env_reward (of those that did not fail) and ended_by/<why> (counts).
  std::map<std::string, double> episodes;
};

// The rollout's metrics into m: rewards and their spread over the kept groups' valid samples, per criterion, grader
// and judge means, reward-integrity rates, completion lengths, judge failures and latency, groups, timing.
void rollout_metrics(const RolloutBatch& kept, const RolloutTally& t, const TrainConfig& c, nlohmann::json& m);

// Which of five kinds of formatting a completion uses (0-5): list items, Markdown headers, bold, code fences, emoji
// (reward_format_corr correlates the reward with it).
int formatting_kinds(const std::string& text);

// The whole job's tally on every rank: counts summed, lengths and latencies in rank order, the slowest rank's times.
RolloutTally gather_tally(Dist& dist, const RolloutTally& t);

}  // namespace rlaif
