// `rlaif train`: the RLAIF loop. One step, top to bottom:
//   1. B prompts -> G completions each; every completion goes to the judge the moment it finishes (JudgeStream)
//   2. rewards = judge (+ graders) + shaping; failed judgments leave their group; groups with < 2 valid samples drop;
//      with dynamic sampling, zero-variance groups drop too and more prompts are sampled to refill the batch
//   3. log-probs the loss needs beyond the current policy's: old (num_iterations > 1), reference (beta > 0)
//   4. advantages (GRPO / RLOO / REINFORCE++) or pairwise preferences (online DPO)
//   5. num_iterations x micro-batches: loss -> backward; clip; AdamW step
//   6. metrics.jsonl, samples.jsonl, checkpoint, evaluation
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "rlaif/agreement.h"
#include "rlaif/dataset.h"
#include "rlaif/error.h"
#include "rlaif/generator.h"
#include "rlaif/judge.h"
#include "rlaif/model_folder.h"
#include "rlaif/progress.h"
#include "rlaif/rl.h"
#include "rlaif/sequence_batch.h"
#include "rlaif/trainer.h"
#include "train/judge_gate.h"
#include "train/judge_stream.h"
#include "train/train_common.h"

namespace rlaif {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// One prompt's G completions and what the judge made of them.
struct Group {
  size_t row = 0;
  std::vector<Sample> samples;
  std::vector<JudgeResult> judged;
  std::vector<double> rewards;  // final reward per sample (judge + graders + shaping)
  std::vector<bool> valid;      // judged successfully
  int64_t valid_count() const { return std::count(valid.begin(), valid.end(), true); }
  double reward_std() const {
    double n = 0, s = 0, ss = 0;
    for (size_t i = 0; i < rewards.size(); ++i)
      if (valid[i]) n += 1, s += rewards[i], ss += rewards[i] * rewards[i];
    if (n < 2) return 0;
    double mean = s / n;
    return std::sqrt(std::max(0.0, (ss - n * mean * mean) / (n - 1)));
  }
};

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double pos = q * (v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos)), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

class RlTrainer {
 public:
  RlTrainer(const TrainConfig& c, const RunOptions& o) : c_(c), o_(o) {}
  void run();

 private:
  void setup();
  std::vector<Group> generate_groups(const std::vector<size_t>& rows, int64_t step, int64_t round, bool stream);
  void shape_rewards(Group& g) const;
  std::vector<Group> collect_batch(int64_t step, nlohmann::json& m);
  void train_step(std::vector<Group>& groups, int64_t step, nlohmann::json& m);
  void train_dpo_step(std::vector<Group>& groups, int64_t step, nlohmann::json& m);
  void evaluate(int64_t step);
  void warn_integrity(nlohmann::json& m) const;  // reward-integrity thresholds: m["warnings"] and stderr
  torch::Tensor reference_logprobs(const SequenceBatch& b);
  GenerationParams generation_params() const;  // the run's sampling settings
  CheckpointContents contents();

  const TrainConfig& c_;
  RunOptions o_;
  CausalLM model_{nullptr}, ref_{nullptr};
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Generator> gen_;
  std::unique_ptr<Judge> judge_;
  std::unique_ptr<JudgeStream> stream_;
  std::vector<PromptRow> rows_, eval_rows_;
  std::unique_ptr<DataOrder> order_;
  Trainable trainable_;
  std::unique_ptr<torch::optim::AdamW> opt_;
  std::unique_ptr<JsonlLog> metrics_, samples_, eval_log_;
  int64_t pad_id_ = 0;
  int64_t total_steps_ = 0;
  bool bf16_ = false;
  JudgeStats last_stats_;
};

void RlTrainer::setup() {
  prepare_runtime(c_);
  model_ = load_model(c_.model_path);
  tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(c_.model_path));
  auto eos = load_eos_token_ids(c_.model_path, model_->config());
  pad_id_ = eos.empty() ? 0 : eos[0];
  DatasetOptions d;
  d.max_prompt_length = c_.max_prompt_length;
  rows_ = load_dataset(c_.prompts, *tokenizer_, d);
  if (!c_.eval_prompts.empty()) eval_rows_ = load_dataset(c_.eval_prompts, *tokenizer_, d);
  const int64_t need = c_.max_prompt_length + c_.max_completion_length;
  if (need > model_->config().max_position_embeddings)
    throw Error("max_prompt_length + max_completion_length = " + std::to_string(need) + " exceeds the model's context of " +
                    std::to_string(model_->config().max_position_embeddings),
                "train.max_completion_length", "lower one of them");
  trainable_ = make_trainable(model_, c_);
  bf16_ = c_.use_bf16();
  const bool needs_ref = c_.beta > 0 || c_.algorithm == "online_dpo";
  if (needs_ref && !c_.use_lora) {  // full fine-tuning: a frozen copy (LoRA: the base with adapters off)
    ref_ = load_model(c_.model_path);
    for (auto& p : ref_->parameters()) p.requires_grad_(false);
  }
  std::string precision = set_inference_precision(model_, c_.dtype);
  GeneratorOptions go;
  go.max_batch = c_.generation_batch_size;
  go.max_seq_len = need;
  gen_ = std::make_unique<Generator>(model_, *tokenizer_, eos, go);
  judge_ = std::make_unique<Judge>(c_.judge);
  stream_ = std::make_unique<JudgeStream>(*judge_);
  opt_ = make_adamw(c_, trainable_);
  order_ = std::make_unique<DataOrder>(rows_.size(), c_.seed);
  total_steps_ = c_.total_steps(static_cast<int64_t>(rows_.size()));
  if (!o_.quiet)
    std::fprintf(stderr, "train: %s (%s, %zu trainable tensors), %zu prompts, sampling %s, training %s, %d threads\n",
                 c_.model_path.c_str(), c_.use_lora ? "LoRA" : "full fine-tuning", trainable_.params.size(), rows_.size(),
                 precision.c_str(), bf16_ ? "bf16 matmuls, fp32 master weights" : "fp32", torch::get_num_threads());
}

GenerationParams RlTrainer::generation_params() const {
  GenerationParams p;
  p.max_new_tokens = c_.max_completion_length;
  p.sampling.temperature = c_.temperature;
  p.sampling.top_p = c_.top_p;
  p.sampling.top_k = c_.top_k;
  p.sampling.min_p = c_.min_p;
  return p;
}

CheckpointContents RlTrainer::contents() {
  CheckpointContents k;
  k.model = model_;
  k.lora = c_.use_lora ? &c_.lora : nullptr;
  k.base_model = c_.model_path;
  k.optimizer = opt_.get();
  k.params = trainable_.params;
  return k;
}

// Generates G completions for each row; with `stream`, each goes to the pointwise judge as it finishes (pairwise and
// group judging need the whole group and are asked afterwards).
std::vector<Group> RlTrainer::generate_groups(const std::vector<size_t>& rows, int64_t step, int64_t round,
                                              bool stream) {
  const int64_t G = c_.num_generations;
  std::vector<GenerationRequest> requests;
  for (size_t k = 0; k < rows.size(); ++k) {
    GenerationRequest q;
    q.prompt_ids = rows_[rows[k]].prompt_ids;
    q.num_samples = G;
    q.seed = sample_seed(sample_seed(c_.seed, static_cast<uint64_t>(step)), static_cast<uint64_t>(round * 100003 + k));
    q.params = generation_params();
    requests.push_back(std::move(q));
  }
  auto on_sample = [&](size_t r, size_t s, const Sample& sample) {
    if (!stream) return;
    const auto& row = rows_[rows[r]];
    stream_->push(r * G + s, JudgeSample{row.text, sample.text, row.reference});
  };
  auto results = gen_->generate(requests, on_sample);
  std::vector<Group> groups(rows.size());
  for (size_t k = 0; k < rows.size(); ++k) {
    groups[k].row = rows[k];
    groups[k].samples = std::move(results[k].samples);
  }
  return groups;
}

// Soft overlong punishment (DAPO) and the missing-EOS penalty, on top of the judge's reward.
void RlTrainer::shape_rewards(Group& g) const {
  for (size_t i = 0; i < g.samples.size(); ++i) {
    if (!g.valid[i]) continue;
    const auto& s = g.samples[i];
    double r = g.judged[i].reward;
    const int64_t len = static_cast<int64_t>(s.token_ids.size()), L = c_.max_completion_length;
    if (c_.overlong_buffer_length > 0) {
      const int64_t free_len = L - c_.overlong_buffer_length;
      if (len > free_len) r -= c_.overlong_penalty_factor * std::min(1.0, double(len - free_len) / c_.overlong_buffer_length);
    }
    if (s.finish_reason == FinishReason::kLength) r -= c_.missing_eos_penalty;
    g.rewards[i] = r;
  }
}

// Steps 1-2: generation with streamed judging, dropping, dynamic sampling.
std::vector<Group> RlTrainer::collect_batch(int64_t step, nlohmann::json& m) {
  const int64_t B = c_.prompts_per_step(), G = c_.num_generations;
  const bool pairwise = c_.algorithm == "online_dpo", group_mode = c_.judge_mode == "group";
  std::vector<Group> kept;
  double t_gen = 0, t_judge = 0;
  int64_t failed = 0, dropped_groups = 0, zero_std = 0, groups_seen = 0;
  std::vector<double> lengths, latencies;
  int64_t clipped = 0, completions = 0;
  const int64_t rounds = c_.dynamic_sampling ? c_.max_dynamic_sampling_rounds : 1;
  for (int64_t round = 0; round < rounds && static_cast<int64_t>(kept.size()) < B; ++round) {
    std::vector<size_t> rows;
    for (int64_t k = 0; k < B - static_cast<int64_t>(kept.size()); ++k) rows.push_back(order_->next());
    auto t0 = Clock::now();
    auto groups = generate_groups(rows, step, round, /*stream=*/!pairwise && !group_mode);
    t_gen += seconds_since(t0);
    auto t1 = Clock::now();
    if (pairwise) {
      std::vector<PairSample> pairs;
      for (auto& g : groups)
        pairs.push_back({rows_[g.row].text, g.samples[0].text, g.samples[1].text, rows_[g.row].reference});
      auto verdicts = judge_->compare(pairs);
      for (size_t k = 0; k < groups.size(); ++k) {
        auto& g = groups[k];
        g.judged.resize(2);
        g.valid.assign(2, verdicts[k].ok && verdicts[k].winner != "tie");
        g.rewards = {verdicts[k].winner == "a" ? 1.0 : 0.0, verdicts[k].winner == "b" ? 1.0 : 0.0};
        if (!verdicts[k].ok) failed += 2;
        latencies.push_back(verdicts[k].latency_s);
      }
    } else if (group_mode) {  // all G completions of a prompt in one judge call, one score each
      std::vector<GroupSample> asks;
      for (auto& g : groups) {
        GroupSample q{rows_[g.row].text, {}, rows_[g.row].reference};
        for (const auto& smp : g.samples) q.completions.push_back(smp.text);
        asks.push_back(std::move(q));
      }
      auto ranked = judge_->rank(asks);
      for (size_t k = 0; k < groups.size(); ++k) {
        auto& g = groups[k];
        g.judged.assign(G, JudgeResult());
        g.rewards.assign(G, 0.0);
        g.valid.assign(G, ranked[k].ok);
        if (!ranked[k].ok) failed += G;
        else latencies.push_back(ranked[k].latency_s);
        for (int64_t i = 0; i < G && ranked[k].ok; ++i) {
          g.judged[i].ok = true;
          g.judged[i].reward = ranked[k].rewards[i];
          g.judged[i].verdict.scores["group_score"] = ranked[k].scores[i];
        }
        shape_rewards(g);
      }
    } else {
      auto judged = stream_->collect(groups.size() * G);
      for (size_t k = 0; k < groups.size(); ++k) {
        auto& g = groups[k];
        g.judged.assign(judged.begin() + k * G, judged.begin() + (k + 1) * G);
        g.rewards.assign(G, 0.0);
        g.valid.resize(G);
        for (int64_t i = 0; i < G; ++i) {
          g.valid[i] = g.judged[i].ok;
          if (!g.judged[i].ok) ++failed;
          if (!g.judged[i].cached && g.judged[i].ok) latencies.push_back(g.judged[i].latency_s);
        }
        shape_rewards(g);
      }
    }
    t_judge += seconds_since(t1);
    for (auto& g : groups) {
      ++groups_seen;
      for (const auto& s : g.samples) {
        lengths.push_back(static_cast<double>(s.token_ids.size()));
        clipped += s.finish_reason == FinishReason::kLength;
        ++completions;
      }
      if (g.valid_count() < 2) {
        ++dropped_groups;
        continue;
      }
      bool flat = g.reward_std() == 0;
      zero_std += flat;
      if (flat && c_.dynamic_sampling) continue;  // no signal: sample another prompt instead
      if (static_cast<int64_t>(kept.size()) < B) kept.push_back(std::move(g));
    }
  }
  // Reward statistics over the kept groups' valid samples (TRL: reward, reward_std = mean group std).
  std::vector<double> rewards, lens_valid;
  double std_sum = 0;
  std::map<std::string, std::pair<double, int64_t>> per_criterion;
  double judge_success = 0, verifier_success = 0, checked = 0, disagreement = 0, panel_samples = 0;
  for (const auto& g : kept) {
    std_sum += g.reward_std();
    for (size_t i = 0; i < g.samples.size(); ++i) {
      if (!g.valid[i]) continue;
      if (!c_.integrity_verifier.empty()) {
        auto it = g.judged[i].grades.find(c_.integrity_verifier);
        if (it != g.judged[i].grades.end()) {
          judge_success += g.judged[i].verdict.reward >= c_.integrity_judge_threshold;
          verifier_success += it->second >= 0.5;
          checked += 1;
        }
      }
      rewards.push_back(g.rewards[i]);
      lens_valid.push_back(static_cast<double>(g.samples[i].token_ids.size()));
      for (const auto& [name, score] : g.judged[i].verdict.scores) per_criterion[name].first += score, per_criterion[name].second++;
      for (const auto& [name, grade] : g.judged[i].grades) per_criterion[name].first += grade, per_criterion[name].second++;
      const auto& by_judge = g.judged[i].judge_rewards;  // a panel: each judge's reward, and how far apart they are
      for (const auto& [name, r] : by_judge) per_criterion[name].first += r, per_criterion[name].second++;
      if (by_judge.size() >= 2) {
        double jm = 0, jv = 0;
        for (const auto& kv : by_judge) jm += kv.second / by_judge.size();
        for (const auto& kv : by_judge) jv += (kv.second - jm) * (kv.second - jm) / by_judge.size();
        disagreement += std::sqrt(jv), panel_samples += 1;
      }
    }
  }
  double mean = 0;
  for (double r : rewards) mean += r;
  mean = rewards.empty() ? 0 : mean / rewards.size();
  m["reward"] = mean;
  m["reward_std"] = kept.empty() ? 0.0 : std_sum / kept.size();
  for (const auto& [name, v] : per_criterion) m["rewards/" + name + "/mean"] = v.first / std::max<int64_t>(1, v.second);
  m["frac_reward_zero_std"] = groups_seen ? double(zero_std) / groups_seen : 0.0;
  m["reward_length_corr"] = rewards.size() > 2 ? pearson(rewards, lens_valid) : 0.0;
  if (std::isnan(m["reward_length_corr"].get<double>())) m["reward_length_corr"] = 0.0;
  if (checked > 0) {
    m["integrity/judge_success_rate"] = judge_success / checked;
    m["integrity/verifier_success_rate"] = verifier_success / checked;
    m["integrity/judge_verifier_gap"] = (judge_success - verifier_success) / checked;
  }
  double lsum = 0;
  for (double l : lengths) lsum += l;
  m["completions/mean_length"] = lengths.empty() ? 0 : lsum / lengths.size();
  m["completions/min_length"] = lengths.empty() ? 0 : *std::min_element(lengths.begin(), lengths.end());
  m["completions/max_length"] = lengths.empty() ? 0 : *std::max_element(lengths.begin(), lengths.end());
  m["completions/clipped_ratio"] = completions ? double(clipped) / completions : 0.0;
  m["judge/failures"] = failed;
  m["judge/latency_p50"] = percentile(latencies, 0.5);
  m["judge/latency_p95"] = percentile(latencies, 0.95);
  const auto& st = judge_->stats();
  int64_t judged = st.judged - last_stats_.judged, hits = st.cache_hits - last_stats_.cache_hits;
  m["judge/cache_hit_rate"] = judged ? double(hits) / judged : 0.0;
  if (pairwise) {
    int64_t ok = st.pairs_ok - last_stats_.pairs_ok, flips = st.flips - last_stats_.flips;
    m["judge/flip_rate"] = ok ? double(flips) / ok : 0.0;
  }
  if (panel_samples > 0) m["judge/panel_disagreement"] = disagreement / panel_samples;
  m["judge/cost"] = judge_->total_stats().cost;
  last_stats_ = st;
  m["groups/dropped"] = dropped_groups;
  m["groups/kept"] = static_cast<int64_t>(kept.size());
  m["timing/generate"] = t_gen;
  m["timing/judge"] = t_judge;  // waiting for the judge after generation ended (the rest overlapped)
  int64_t gen_tokens = 0;
  for (double l : lengths) gen_tokens += static_cast<int64_t>(l);
  m["generate/tokens_per_s"] = t_gen > 0 ? gen_tokens / t_gen : 0.0;
  return kept;
}

torch::Tensor RlTrainer::reference_logprobs(const SequenceBatch& b) {
  torch::NoGradGuard no_grad;
  if (ref_) return completion_logprobs(ref_, b, c_.temperature, nullptr, bf16_);
  model_->set_lora_enabled(false);  // LoRA: the base model is the reference
  auto out = completion_logprobs(model_, b, c_.temperature, nullptr, bf16_);
  model_->set_lora_enabled(true);
  return out;
}

// Steps 3-5 for the policy-gradient family.
void RlTrainer::train_step(std::vector<Group>& groups, int64_t step, nlohmann::json& m) {
  const int64_t G = c_.num_generations, B = static_cast<int64_t>(groups.size());
  // The completions in the loss, flattened: group-major.
  struct Item {
    size_t g, i;
  };
  std::vector<Item> items;
  for (size_t g = 0; g < groups.size(); ++g)
    for (int64_t i = 0; i < G; ++i)
      if (groups[g].valid[i]) items.push_back({g, static_cast<size_t>(i)});
  const int64_t N = static_cast<int64_t>(items.size()), mb = c_.per_device_train_batch_size;
  std::vector<SequenceBatch> batches;
  std::vector<torch::Tensor> sampler_lp;  // [n, Tc] per micro-batch
  for (int64_t s = 0; s < N; s += mb) {
    std::vector<const std::vector<int64_t>*> p, comp;
    const int64_t e = std::min(N, s + mb);
    for (int64_t k = s; k < e; ++k) {
      const auto& it = items[k];
      p.push_back(&rows_[groups[it.g].row].prompt_ids);
      comp.push_back(&groups[it.g].samples[it.i].token_ids);
    }
    auto b = make_sequence_batch(p, comp, pad_id_);
    auto slp = torch::zeros_like(b.completion_mask);
    auto slp_a = slp.accessor<float, 2>();
    for (int64_t k = s; k < e; ++k) {
      const auto& lp = groups[items[k].g].samples[items[k].i].logprobs;
      for (size_t t = 0; t < lp.size(); ++t) slp_a[k - s][t] = lp[t];
      if (c_.mask_truncated_completions && groups[items[k].g].samples[items[k].i].finish_reason == FinishReason::kLength)
        b.completion_mask[k - s].zero_();
    }
    batches.push_back(std::move(b));
    sampler_lp.push_back(slp);
  }
  // Step 3: old and reference log-probs, without gradient, on the training numerics.
  std::vector<torch::Tensor> old_lp(batches.size()), ref_lp(batches.size());
  const bool need_old = c_.num_iterations > 1 || c_.kl_in_reward;
  for (size_t k = 0; k < batches.size(); ++k) {
    if (need_old) {
      torch::NoGradGuard no_grad;
      old_lp[k] = completion_logprobs(model_, batches[k], c_.temperature, nullptr, bf16_);
    }
    if (c_.beta > 0) ref_lp[k] = reference_logprobs(batches[k]);
  }
  // KL in the reward (REINFORCE++ style): r_i -= beta * sum_t kl_t.
  if (c_.kl_in_reward && c_.beta > 0) {
    for (size_t k = 0; k < batches.size(); ++k) {
      auto kl = (kl_estimate(old_lp[k], ref_lp[k], c_.kl_estimator) * batches[k].completion_mask).sum(-1);  // [n]
      for (int64_t j = 0; j < kl.size(0); ++j) {
        const auto& it = items[k * mb + j];
        groups[it.g].rewards[it.i] -= c_.beta * kl[j].item<double>();
      }
    }
  }
  // Step 4: advantages.
  auto rewards = torch::zeros({B, G}, torch::kFloat64);
  auto valid = torch::zeros({B, G}, torch::kBool);
  for (int64_t g = 0; g < B; ++g)
    for (int64_t i = 0; i < G; ++i) {
      rewards[g][i] = groups[g].rewards[i];
      valid[g][i] = static_cast<bool>(groups[g].valid[i]);
    }
  auto adv = compute_advantages(rewards, valid, c_.algorithm, c_.scale_rewards);  // [B, G]
  // Step 5: the loss over micro-batches, num_iterations times.
  PolicyLossOptions lo;
  lo.loss_type = c_.loss_type;
  lo.importance_sampling_level = c_.importance_sampling_level;
  lo.epsilon = c_.epsilon;
  lo.epsilon_high = c_.clip_high();
  lo.beta = c_.kl_in_reward ? 0.0 : c_.beta;
  lo.kl_estimator = c_.kl_estimator;
  lo.entropy_coef = c_.entropy_coef;
  lo.max_completion_length = c_.max_completion_length;
  lo.is_cap = c_.importance_sampling_correction ? c_.importance_sampling_cap : 0.0;
  double total_tokens = 0;
  for (const auto& b : batches) total_tokens += b.completion_mask.sum().item<double>();
  lo.num_items = std::max(1.0, total_tokens);
  double loss_sum = 0, kl_sum = 0, ent_sum = 0, clip_low = 0, clip_high = 0, clip_region = 0, gap_sum = 0, grad_norm = 0;
  const double lr = scheduled_lr(c_, step, total_steps_);
  set_lr(*opt_, lr);
  model_->train();
  for (int64_t iter = 0; iter < c_.num_iterations; ++iter) {
    for (size_t k = 0; k < batches.size(); ++k) {
      const auto& b = batches[k];
      const int64_t n = b.input_ids.size(0);
      auto a = torch::empty({n}, torch::kFloat32);
      for (int64_t j = 0; j < n; ++j) {
        const auto& it = items[k * mb + j];
        a[j] = adv[it.g][it.i].item<double>();
      }
      torch::Tensor entropy;
      auto logp = completion_logprobs(model_, b, c_.temperature, &entropy, bf16_);  // [n, Tc], with grad
      PolicyLossInputs in;
      in.logp = logp;
      in.old_logp = need_old ? old_lp[k] : logp.detach();
      in.ref_logp = ref_lp[k];
      in.sampler_logp = sampler_lp[k];
      in.entropy = c_.entropy_coef != 0 ? entropy : entropy.detach();
      in.advantages = a;
      in.mask = b.completion_mask;
      auto out = policy_loss(in, lo);
      // Micro-batch weights so the sum over micro-batches is the loss of the whole batch.
      double w = 1.0;
      if (c_.loss_type == "grpo" || c_.loss_type == "dr_grpo") w = double(n) / N;
      else if (c_.loss_type == "bnpo") w = 1.0 / batches.size();
      (out.loss * w).backward();
      const double share = out.tokens / std::max(1.0, total_tokens) / c_.num_iterations;
      loss_sum += out.loss.item<double>() * w / c_.num_iterations;
      kl_sum += out.kl * share;
      ent_sum += out.entropy * share;
      clip_low += out.clip_low * share;
      clip_high += out.clip_high * share;
      clip_region += out.clip_region * share;
      if (iter == 0) {  // sampler vs trainer numerics, on the policy that sampled
        auto gap = ((logp.detach() - sampler_lp[k]).abs() * b.completion_mask).sum().item<double>();
        gap_sum += gap;
      }
    }
    grad_norm = clip_gradients(trainable_.params, c_.max_grad_norm);
    opt_->step();
    opt_->zero_grad();
  }
  model_->eval();
  m["loss"] = loss_sum;
  if (c_.beta > 0) m["kl"] = kl_sum;
  m["entropy"] = ent_sum;
  m["clip_ratio/low_mean"] = clip_low;
  m["clip_ratio/high_mean"] = clip_high;
  m["clip_ratio/region_mean"] = clip_region;
  m["sampler/logprob_gap"] = gap_sum / std::max(1.0, total_tokens);
  m["grad_norm"] = grad_norm;
  m["lr"] = lr;
  m["train/tokens"] = total_tokens;
}

// Online DPO (Guo et al. 2024): the judge's preferred completion of each pair against the other.
void RlTrainer::train_dpo_step(std::vector<Group>& groups, int64_t step, nlohmann::json& m) {
  const int64_t P = static_cast<int64_t>(groups.size());
  const int64_t pairs_per_mb = std::max<int64_t>(1, c_.per_device_train_batch_size / 2);
  const double lr = scheduled_lr(c_, step, total_steps_);
  set_lr(*opt_, lr);
  model_->train();
  double loss_sum = 0, margin_sum = 0, tokens = 0, grad_norm = 0;
  for (int64_t iter = 0; iter < c_.num_iterations; ++iter) {
    for (int64_t s = 0; s < P; s += pairs_per_mb) {
      const int64_t e = std::min(P, s + pairs_per_mb), n = e - s;
      std::vector<const std::vector<int64_t>*> p, comp;
      for (int64_t k = s; k < e; ++k) {  // chosen first, then rejected
        const auto& g = groups[k];
        const size_t w = g.rewards[0] > g.rewards[1] ? 0 : 1;
        p.push_back(&rows_[g.row].prompt_ids);
        comp.push_back(&g.samples[w].token_ids);
        p.push_back(&rows_[g.row].prompt_ids);
        comp.push_back(&g.samples[1 - w].token_ids);
      }
      auto b = make_sequence_batch(p, comp, pad_id_);
      auto ref = reference_logprobs(b).sum(-1).view({n, 2});                  // [n, 2]
      auto logp = completion_logprobs(model_, b, c_.temperature, nullptr, bf16_).sum(-1).view({n, 2});
      auto loss = online_dpo_loss(logp.select(1, 0), logp.select(1, 1), ref.select(1, 0), ref.select(1, 1), c_.beta);
      (loss * (double(n) / P)).backward();
      loss_sum += loss.item<double>() * n / P / c_.num_iterations;
      margin_sum += ((logp.detach().select(1, 0) - ref.select(1, 0)) - (logp.detach().select(1, 1) - ref.select(1, 1)))
                        .sum().item<double>() * c_.beta;
      tokens += b.completion_mask.sum().item<double>();
    }
    grad_norm = clip_gradients(trainable_.params, c_.max_grad_norm);
    opt_->step();
    opt_->zero_grad();
  }
  model_->eval();
  m["loss"] = loss_sum;
  m["rewards/margins"] = P ? margin_sum / (P * c_.num_iterations) : 0.0;
  m["grad_norm"] = grad_norm;
  m["lr"] = lr;
  m["train/tokens"] = tokens / c_.num_iterations;
}

// Held-out prompts, one completion each with the step's sampling settings (fixed seed), judged; mean scores logged
// and the samples written, so runs can be compared before and after training.
void RlTrainer::evaluate(int64_t step) {
  const size_t n = std::min<size_t>(eval_rows_.size(), static_cast<size_t>(c_.eval_samples));
  std::vector<GenerationRequest> requests;
  for (size_t k = 0; k < n; ++k) {
    GenerationRequest q;
    q.prompt_ids = eval_rows_[k].prompt_ids;
    q.seed = sample_seed(c_.seed ^ 0xE7A1ULL, k);
    q.params = generation_params();
    requests.push_back(std::move(q));
  }
  auto results = gen_->generate(requests);
  std::vector<JudgeSample> samples;
  for (size_t k = 0; k < n; ++k) samples.push_back({eval_rows_[k].text, results[k].samples[0].text, eval_rows_[k].reference});
  auto judged = judge_->judge(samples);
  nlohmann::json m = {{"step", step}};
  double sum = 0;
  int64_t ok = 0;
  std::map<std::string, std::pair<double, int64_t>> per;
  for (size_t k = 0; k < n; ++k) {
    const auto& r = judged[k];
    nlohmann::json line = {{"step", step}, {"prompt", samples[k].prompt}, {"completion", samples[k].completion},
                           {"ok", r.ok}};
    if (r.ok) {
      sum += r.reward, ++ok;
      line["reward"] = r.reward;
      line["scores"] = r.verdict.scores;
      line["rationale"] = r.verdict.rationale;
      if (!r.grades.empty()) line["grades"] = r.grades;
      for (const auto& [name, s] : r.verdict.scores) per[name].first += s, per[name].second++;
      for (const auto& [name, s] : r.grades) per[name].first += s, per[name].second++;
    } else {
      line["failure"] = r.failure;
    }
    if (!eval_rows_[k].reference.empty()) line["reference"] = eval_rows_[k].reference;
    if (!eval_rows_[k].metadata.empty()) line["metadata"] = eval_rows_[k].metadata;
    eval_log_->write(line);
  }
  m["eval/reward"] = ok ? sum / ok : 0.0;
  m["eval/failures"] = static_cast<int64_t>(n) - ok;
  for (const auto& [name, v] : per) m["eval/rewards/" + name + "/mean"] = v.first / std::max<int64_t>(1, v.second);
  metrics_->write(m);
  if (!o_.quiet) std::fprintf(stderr, "eval at step %lld: reward %.4f over %zu prompts\n", (long long)step, m["eval/reward"].get<double>(), n);
}

void RlTrainer::warn_integrity(nlohmann::json& m) const {
  std::vector<std::string> warnings;
  auto check = [&](const char* key, double limit, bool absolute, const char* why) {
    if (limit <= 0 || !m.contains(key)) return;
    double v = m[key].get<double>();
    if ((absolute ? std::abs(v) : v) > limit)
      warnings.push_back(std::string(key) + " " + std::to_string(v) + " beyond " + std::to_string(limit) + ": " + why);
  };
  check("reward_length_corr", c_.warn_reward_length_corr, true, "the reward follows completion length");
  check("integrity/judge_verifier_gap", c_.warn_judge_verifier_gap, false,
        "the judge passes more than the verifier does (is it being gamed?)");
  check("judge/flip_rate", c_.warn_flip_rate, false, "the judge's verdicts depend on the order of the answers");
  if (warnings.empty()) return;
  m["warnings"] = warnings;
  if (!o_.quiet)
    for (const auto& w : warnings) std::fprintf(stderr, "\nwarning: step %lld: %s\n", (long long)m["step"].get<int64_t>(), w.c_str());
}

void RlTrainer::run() {
  setup();
  auto state = start_run(c_, "train", o_.resume, contents(), o_.quiet);
  if (state.step == 0) judge_preflight(c_, o_.quiet);
  order_->seek(state.data_epoch, state.data_position);
  metrics_ = std::make_unique<JsonlLog>(c_.output_dir + "/metrics.jsonl");
  samples_ = std::make_unique<JsonlLog>(c_.output_dir + "/samples.jsonl");
  eval_log_ = std::make_unique<JsonlLog>(c_.output_dir + "/eval_samples.jsonl");
  if (!eval_rows_.empty() && state.step == 0) evaluate(0);
  Progress bar("train", total_steps_, "steps", !o_.quiet);
  bar.advance(state.step);
  for (int64_t step = state.step; step < total_steps_; ++step) {
    auto t0 = Clock::now();
    nlohmann::json m = {{"step", step + 1}, {"epoch", order_->epoch()}};
    auto groups = collect_batch(step, m);
    auto t1 = Clock::now();
    if (groups.empty()) {
      m["skipped"] = true;  // every group failed or had no signal: nothing to learn from this step
    } else if (c_.algorithm == "online_dpo") {
      train_dpo_step(groups, step, m);
    } else {
      train_step(groups, step, m);
    }
    m["timing/train"] = seconds_since(t1);
    m["timing/step"] = seconds_since(t0);
    m["tokens_per_s"] = m.value("train/tokens", 0.0) / std::max(1e-9, m["timing/step"].get<double>());
    for (const auto& g : groups)
      for (size_t i = 0; i < g.samples.size(); ++i) {
        nlohmann::json line = {{"step", step + 1}, {"prompt", rows_[g.row].text}, {"completion", g.samples[i].text},
                               {"finish_reason", to_string(g.samples[i].finish_reason)}, {"valid", static_cast<bool>(g.valid[i])},
                               {"reward", g.rewards[i]}};
        if (i < g.judged.size() && g.judged[i].ok) {
          line["scores"] = g.judged[i].verdict.scores;
          if (!g.judged[i].grades.empty()) line["grades"] = g.judged[i].grades;
          if (!g.judged[i].judge_rewards.empty()) line["judges"] = g.judged[i].judge_rewards;
        }
        samples_->write(line);
      }
    warn_integrity(m);
    metrics_->write(m);
    bar.set_extra("reward " + std::to_string(m["reward"].get<double>()).substr(0, 6) +
                  (m.contains("kl") ? " kl " + std::to_string(m["kl"].get<double>()).substr(0, 7) : "") +
                  " judge p50 " + std::to_string(m["judge/latency_p50"].get<double>()).substr(0, 5) + "s");
    bar.advance();
    TrainerState s;
    s.step = step + 1;
    s.data_epoch = order_->epoch();
    s.data_position = order_->position();
    s.config_fingerprint = state.config_fingerprint;
    if ((c_.save_steps > 0 && s.step % c_.save_steps == 0) || s.step == total_steps_)
      save_checkpoint(c_.output_dir, s, contents(), c_.save_total_limit);
    if (!eval_rows_.empty() && ((c_.eval_steps > 0 && s.step % c_.eval_steps == 0) || s.step == total_steps_))
      evaluate(s.step);
  }
  bar.finish();
  save_final(c_, model_);
  if (!o_.quiet) std::fprintf(stderr, "train: done; model in %s/final, metrics in %s/metrics.jsonl\n", c_.output_dir.c_str(), c_.output_dir.c_str());
}

}  // namespace

void run_rl(const TrainConfig& config, const RunOptions& options) {
  config.validate("run config");
  RlTrainer(config, options).run();
}

}  // namespace rlaif
