// Steps 1-2 of `rlaif train`: prompts -> G completions each -> the judge -> shaped rewards -> groups that can teach
// the policy something. With dynamic sampling, groups without signal are replaced by freshly drawn prompts for up to
// max_dynamic_sampling_rounds rounds.
#include <algorithm>

#include "rlaif/content_check.h"
#include "rlaif/rewards.h"
#include "train/rl_trainer.h"

namespace rlaif {
// Data parallel: every rank draws the round's prompts for the whole job, in the same order, and rolls out its own
// share (rank 0 the first, ...), so the job's groups are those one process would roll out, seeded alike.
RolloutBatch RlTrainer::collect_rollouts(int64_t step, nlohmann::json& m) {
  const int64_t B = c_.prompts_per_step();  // this rank's groups
  const bool pairwise = c_.algorithm == Algorithm::kOnlineDpo, group_mode = c_.judge_mode == JudgeMode::kGroup;
  RolloutBatch kept;
  RolloutTally tally;
  const int64_t rounds = c_.dynamic_sampling ? c_.max_dynamic_sampling_rounds : 1;
  for (int64_t round = 0; round < rounds; ++round) {
    const auto need = dist_->all_gather(B - kept.groups());  // [world] groups each rank still lacks
    int64_t total = 0, first = 0;
    for (int r = 0; r < dist_->world_size(); ++r) total += need[r], first += r < dist_->rank() ? need[r] : 0;
    if (total == 0) break;
    const auto drawn = draw_prompts(total);
    const std::vector<size_t> rows(drawn.begin() + first, drawn.begin() + first + need[dist_->rank()]);
    if (rows.empty()) continue;  // this rank is full; the others refill theirs
    auto t0 = Clock::now();
    auto batch = c_.episodes() ? roll_out_episodes(rows, first, step, round, tally)
                               : roll_out(rows, first, step, round, /*stream=*/!pairwise && !group_mode);
    tally.generate_s += seconds_since(t0);
    for (size_t g = 0; g < batch.samples.size(); ++g)  // master-key answers, e.g. "Thought process:" alone
      for (const auto& sample : batch.samples[g])
        tally.content_free += is_content_free(sample.text, rows_[batch.rows[g]].text);
    auto t1 = Clock::now();
    if (c_.episodes())
      judge_episodes(batch, tally);
    else if (pairwise)
      judge_pairs(batch, tally);
    else if (group_mode)
      judge_groups(batch, tally);
    else
      judge_pointwise(batch, tally);
    tally.judge_s += seconds_since(t1);
    shape_rewards(batch);
    kept.append(filter_groups(batch, B - kept.groups(), tally));
  }
  rollout_metrics(gather_batch(*dist_, kept), gather_tally(*dist_, tally), c_, m);
  log_judge_stats(m);
  return kept;
}

uint64_t RlTrainer::rollout_seed(int64_t step, int64_t round, int64_t index) const {
  return sample_seed(sample_seed(c_.seed, static_cast<uint64_t>(step)), static_cast<uint64_t>(round * 100003 + index));
}

std::vector<size_t> RlTrainer::draw_prompts(int64_t count) {
  std::vector<size_t> rows;
  for (int64_t k = 0; k < count; ++k) rows.push_back(order_->next());
  return rows;
}

// G completions for each row; with `stream`, each goes to the pointwise judge as it finishes (pairwise and group
// judging need the whole group and are asked afterwards).
RolloutBatch RlTrainer::roll_out(const std::vector<size_t>& rows, int64_t first, int64_t step, int64_t round,
                                 bool stream) {
  const int64_t G = c_.num_generations;
  std::vector<GenerationRequest> requests;
  for (size_t k = 0; k < rows.size(); ++k) {
    GenerationRequest q;
    q.prompt_ids = rows_[rows[k]].prompt_ids;
    q.num_samples = G;
    q.seed = rollout_seed(step, round, first + static_cast<int64_t>(k));
    q.params = generation_params();
    requests.push_back(std::move(q));
  }
  auto on_sample = [&](size_t r, size_t s, const Sample& sample) {
    if (!stream) return;
    const auto& row = rows_[rows[r]];
    stream_->push(r * G + s, JudgeSample{row.text, sample.text, row.reference, row.rubric});
  };
  auto results = gen_->generate(requests, on_sample);
  std::vector<std::vector<Sample>> samples;
  for (auto& r : results) samples.push_back(std::move(r.samples));
  return RolloutBatch::from_samples(rows, std::move(samples));
}

void RlTrainer::judge_pointwise(RolloutBatch& b, RolloutTally& t) {
  const int64_t B = b.groups(), G = c_.num_generations;
  auto judged = stream_->collect(static_cast<size_t>(B * G));
  b.start_judging(G);
  auto reward = b.judge_reward.accessor<double, 2>();
  auto valid = b.valid.accessor<bool, 2>();
  for (int64_t g = 0; g < B; ++g) {
    b.judged.emplace_back(judged.begin() + g * G, judged.begin() + (g + 1) * G);
    for (int64_t i = 0; i < G; ++i) {
      const auto& j = b.judged[g][i];
      valid[g][i] = j.ok;
      reward[g][i] = j.ok ? j.reward : 0.0;
      if (!j.ok) ++t.failed;
      if (j.ok && !j.cached) t.latencies.push_back(j.latency_s);
    }
  }
}

void RlTrainer::judge_groups(RolloutBatch& b, RolloutTally& t) {
  const int64_t B = b.groups(), G = c_.num_generations;
  std::vector<GroupSample> asks;
  for (int64_t g = 0; g < B; ++g) {
    const auto& row = rows_[b.rows[g]];
    GroupSample q{row.text, {}, row.reference};
    for (const auto& s : b.samples[g]) q.completions.push_back(s.text);
    asks.push_back(std::move(q));
  }
  auto ranked = judge_->rank(asks);
  b.start_judging(G);
  auto reward = b.judge_reward.accessor<double, 2>();
  auto valid = b.valid.accessor<bool, 2>();
  for (int64_t g = 0; g < B; ++g) {
    b.judged.emplace_back(G);
    if (!ranked[g].ok) {
      t.failed += G;
      continue;
    }
    t.latencies.push_back(ranked[g].latency_s);
    for (int64_t i = 0; i < G; ++i) {
      t.group_rewards.push_back(ranked[g].rewards[i]);
      t.group_positions.push_back(ranked[g].positions[i]);
      auto& j = b.judged[g][i];
      j.ok = true;
      j.reward = ranked[g].rewards[i];
      j.verdict.scores["group_score"] = ranked[g].scores[i];
      valid[g][i] = true;
      reward[g][i] = j.reward;
    }
  }
}

// Online DPO's pairs: reward 1 for the judge's preferred completion, 0 for the other; a tie or a failed comparison
// leaves the pair out.
void RlTrainer::judge_pairs(RolloutBatch& b, RolloutTally& t) {
  const int64_t B = b.groups();
  std::vector<PairSample> pairs;
  for (int64_t g = 0; g < B; ++g) {
    const auto& row = rows_[b.rows[g]];
    pairs.push_back({row.text, b.samples[g][0].text, b.samples[g][1].text, row.reference});
  }
  auto verdicts = judge_->compare(pairs);
  b.start_judging(2);
  for (int64_t g = 0; g < B; ++g) {
    const auto& v = verdicts[g];
    b.judged.emplace_back(2);
    b.judge_reward[g][0] = v.winner == "a" ? 1.0 : 0.0;
    b.judge_reward[g][1] = v.winner == "b" ? 1.0 : 0.0;
    b.valid[g].fill_(v.ok && v.winner != "tie");
    if (!v.ok) t.failed += 2;
    t.latencies.push_back(v.latency_s);
  }
}

// src/rl/rewards.cpp's shaping (overlong and missing-EOS penalties) on the judge's rewards; online DPO learns from
// the preference alone.
void RlTrainer::shape_rewards(RolloutBatch& b) const {
  if (c_.algorithm == Algorithm::kOnlineDpo) {
    b.rewards = b.judge_reward.clone();
    return;
  }
  RewardShaping s;
  s.max_completion_length = c_.episodes() ? c_.env.max_episode_tokens : c_.max_completion_length;  // policy tokens
  s.overlong_buffer_length = c_.overlong_buffer_length;
  s.overlong_penalty_factor = c_.overlong_penalty_factor;
  s.missing_eos_penalty = c_.missing_eos_penalty;
  b.rewards = rlaif::shape_rewards(b.judge_reward, b.valid, b.lengths, b.truncated, s);  // [B, G]
}

// Keeps the groups with signal (at most `room` of them): a group with fewer than 2 valid samples is dropped, and with
// dynamic sampling so is a group whose rewards are all equal.
RolloutBatch RlTrainer::filter_groups(const RolloutBatch& b, int64_t room, RolloutTally& t) const {
  auto signal = classify_groups(b.rewards, b.valid);  // [B]
  const auto lengths = b.lengths.accessor<int64_t, 2>();
  const auto truncated = b.truncated.accessor<bool, 2>();
  std::vector<int64_t> keep;
  for (int64_t g = 0; g < b.groups(); ++g) {
    ++t.groups_seen;
    for (int64_t i = 0; i < b.lengths.size(1); ++i) {
      t.lengths.push_back(static_cast<double>(lengths[g][i]));
      t.clipped += truncated[g][i];
    }
    if (signal[g] == GroupSignal::kDropped) {
      ++t.dropped;
      continue;
    }
    t.flat += signal[g] == GroupSignal::kFlat;
    if (signal[g] == GroupSignal::kFlat && c_.dynamic_sampling) continue;  // no signal: another prompt instead
    if (static_cast<int64_t>(keep.size()) < room) keep.push_back(g);
  }
  return keep.empty() ? RolloutBatch() : b.select(keep);
}

}  // namespace rlaif
