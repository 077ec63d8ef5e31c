// `rlaif train`: the RLAIF loop. One step, top to bottom, is run()'s loop; its parts are listed in
// src/train/rl_trainer.h, each in a file of its own.
#include <filesystem>

#include "rlaif/error.h"
#include "rlaif/model_folder.h"
#include "rlaif/rewards.h"
#include "rlaif/rl.h"
#include "train/judge_gate.h"
#include "train/rl_trainer.h"
#include "train/stop_signals.h"

namespace rlaif {
RunOutcome RlTrainer::run() {
  StopSignals signals;  // SIGTERM / SIGINT: end the step in progress, checkpoint it, return stopped
  setup();
  auto started = start_run(c_, "train", o_.resume, contents(), o_.quiet, dist_.get());
  replicas_->after_start();
  const nlohmann::json spent =
      started.extra.is_object() ? started.extra.value("judge_spend", nlohmann::json()) : nullptr;
  if (spent.is_array() && judge_) {
    std::vector<double> v;  // each rank holds its share of the budgets (JudgeConfig::rank_share)
    for (const auto& x : spent) v.push_back(x.is_number() ? x.get<double>() : 0.0);
    judge_->restore_spend(v, 1.0 / dist_->world_size());
  }
  const bool main = dist_->is_main();
  if (started.step == 0 && main) judge_preflight(c_, o_.quiet);
  order_->seek(started.data_epoch, started.data_position);
  if (main) {
    metrics_ = std::make_unique<JsonlLog>(c_.output_dir + "/metrics.jsonl");
    samples_ = std::make_unique<JsonlLog>(c_.output_dir + "/samples.jsonl");
    eval_log_ = std::make_unique<JsonlLog>(c_.output_dir + "/eval_samples.jsonl");
  }
  if (!eval_rows_.empty() && started.step == 0 && main) evaluate(0);
  Progress bar("train", total_steps_, "steps", !o_.quiet && main);
  bar.advance(started.step);
  for (int64_t step = started.step; step < total_steps_; ++step) {
    auto t0 = Clock::now();
    nlohmann::json m = {{"step", step + 1}, {"epoch", order_->epoch()}};
    auto batch = collect_rollouts(step, m);  // draw prompts, roll out, judge, shape rewards, filter groups
    auto t1 = Clock::now();
    if (dist_->sum(static_cast<double>(batch.groups())) == 0) {
      m["skipped"] = true;  // every group failed or had no signal: nothing to learn from this step
    } else if (c_.algorithm == Algorithm::kOnlineDpo) {
      update_dpo(batch, step, m);
    } else {
      auto micro_batches = prepare_micro_batches(batch);  // with old and reference log-probs
      if (c_.kl_in_reward && c_.beta > 0) add_kl_to_rewards(batch, micro_batches);
      batch.advantages = advantages(batch);  // [B, G]
      update_policy(batch, micro_batches, step, m);
    }
    m["timing/train"] = seconds_since(t1);
    m["timing/step"] = seconds_since(t0);
    log_step(batch, m, bar);
    if (const int signal = signals.agreed(*dist_)) {  // every rank stops after this step
      checkpoint(step + 1, started, /*now=*/true);
      bar.finish();
      if (!o_.quiet && main) StopSignals::report("train", signal, step + 1, c_.output_dir);
      return {true, signal, step + 1};
    }
    checkpoint(step + 1, started);
    if (main && !eval_rows_.empty() &&
        ((c_.eval_steps > 0 && (step + 1) % c_.eval_steps == 0) || step + 1 == total_steps_))
      evaluate(step + 1);
  }
  bar.finish();  // (the replicas were compared by the last step's checkpoint)
  if (main) save_final(c_, model_);
  dist_->barrier();  // the final folder is written before any rank reports the run done
  if (!o_.quiet && main)
    std::fprintf(stderr, "train: done; model in %s/final, metrics in %s/metrics.jsonl\n", c_.output_dir.c_str(),
                 c_.output_dir.c_str());
  return {false, 0, total_steps_};
}

void RlTrainer::setup() {
  dist_ = join_job(c_);
  prepare_runtime(c_, dist_->env().local_world_size);
  model_ = load_model(c_.model_path);
  tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(c_.model_path));
  auto eos = load_eos_token_ids(c_.model_path, model_->config());
  pad_id_ = eos.empty() ? 0 : eos[0];
  DatasetOptions d;
  d.max_prompt_length = c_.max_prompt_length;
  rows_ = load_dataset(c_.prompts, *tokenizer_, d);
  if (!c_.eval_prompts.empty()) eval_rows_ = load_dataset(c_.eval_prompts, *tokenizer_, d);
  if (c_.judge_mode == JudgeMode::kGroup || c_.algorithm == Algorithm::kOnlineDpo)  // (evaluation is pointwise)
    for (const auto& row : rows_)
      if (row.rubric)
        throw Error("the row has its own " + rubric_kind(row.rubric.get()) + ", which the judge grades pointwise only",
                    c_.prompts + ":" + std::to_string(row.line),
                    "use train.judge_mode = \"pointwise\" and a policy-gradient algorithm, or drop the row's items");
  const int64_t need = c_.max_prompt_length + c_.max_completion_length;
  if (need > model_->config().max_position_embeddings)
    throw Error("max_prompt_length + max_completion_length = " + std::to_string(need) +
                    " exceeds the model's context of " + std::to_string(model_->config().max_position_embeddings),
                "train.max_completion_length", "lower one of them");
  trainable_ = make_trainable(model_, c_);
  bf16_ = c_.use_bf16();
  const bool needs_ref = c_.beta > 0 || c_.algorithm == Algorithm::kOnlineDpo;
  if (needs_ref && !c_.use_lora) {  // full fine-tuning: a frozen copy (LoRA: the base with adapters off)
    ref_ = load_model(c_.model_path);
    for (auto& p : ref_->parameters()) p.requires_grad_(false);
  }
  std::string precision = set_inference_precision(model_, c_.dtype);
  GeneratorOptions go;
  go.max_batch = c_.generation_batch_size;
  go.max_seq_len = need;
  gen_ = std::make_unique<Generator>(model_, *tokenizer_, eos, go);
  if (c_.episodes()) {
    chat_ = std::make_unique<ChatTemplate>(ChatTemplate::for_tokenizer(*tokenizer_));
    env_ = make_environment(c_.env);
  }
  if (c_.has_judge) {  // (with [env] the environment's reward may be the only one)
    judge_ = std::make_unique<Judge>(c_.judge.rank_share(dist_->rank(), dist_->world_size()));
    stream_ = std::make_unique<JudgeStream>(*judge_);
  }
  opt_ = make_adamw(c_, trainable_);
  replicas_ = std::make_unique<Replicas>(*dist_, c_, trainable_, *opt_);
  order_ = std::make_unique<DataOrder>(rows_.size(), c_.seed);
  total_steps_ = c_.total_steps(static_cast<int64_t>(rows_.size()), true, dist_->world_size());
  if (!o_.quiet && dist_->is_main())
    std::fprintf(
        stderr, "train: %s (%s, %zu trainable tensors), %zu prompts, sampling %s, training %s, %d threads%s\n",
        c_.model_path.c_str(), c_.use_lora ? "LoRA" : "full fine-tuning", trainable_.params.size(), rows_.size(),
        precision.c_str(), bf16_ ? "bf16 matmuls, fp32 master weights" : "fp32", torch::get_num_threads(),
        dist_->world_size() > 1
            ? (" per rank, " + std::to_string(dist_->world_size()) + " ranks (" + dist_->env().launcher + ")").c_str()
            : "");
  if (env_ && !o_.quiet && dist_->is_main())
    std::fprintf(stderr,
                 "train: each sample an episode against a %s environment (%d at once), at most %d turns of %d tokens\n",
                 c_.env.type.c_str(), env_->capacity(), c_.env.max_turns, c_.env.max_turn_tokens);
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

CheckpointContents RlTrainer::contents() { return checkpoint_contents(c_, model_, opt_.get(), trainable_); }

// samples.jsonl (every completion of the kept groups), metrics.jsonl (every logging_steps steps and the last one),
// reward-integrity warnings and the progress bar.
void RlTrainer::log_step(const RolloutBatch& batch, nlohmann::json& m, Progress& bar) {
  const int64_t step = m["step"].get<int64_t>();
  auto all = gather_batch(*dist_, batch);  // every rank's groups
  if (dist_->world_size() > 1) {
    m["timing/step"] = dist_->max({m["timing/step"].get<double>()})[0];             // the slowest rank's
    m["dist/wait"] = dist_->sum(dist_->take_wait_seconds()) / dist_->world_size();  // mean over ranks
  }
  m["tokens_per_s"] = m.value("train/tokens", 0.0) / std::max(1e-9, m["timing/step"].get<double>());
  if (!dist_->is_main()) return;
  write_samples(all, step);
  warn_integrity(m);
  if (step % c_.logging_steps == 0 || step == total_steps_) metrics_->write(m);
  bar.set_extra("reward " + std::to_string(m["reward"].get<double>()).substr(0, 6) +
                (m.contains("kl") ? " kl " + std::to_string(m["kl"].get<double>()).substr(0, 7) : "") +
                (judge_ ? " judge p50 " + std::to_string(m["judge/latency_p50"].get<double>()).substr(0, 5) + "s"
                        : " env wait " + std::to_string(m["env/wait_s"].get<double>()).substr(0, 5) + "s"));
  bar.advance();
}

// samples.jsonl: every completion of the kept groups with its reward (and advantage), scores and grades.
void RlTrainer::write_samples(const RolloutBatch& batch, int64_t step) {
  if (batch.empty()) return;
  const auto valid = batch.valid.accessor<bool, 2>();
  const auto reward = batch.rewards.accessor<double, 2>();
  for (int64_t g = 0; g < batch.groups(); ++g)
    for (size_t i = 0; i < batch.samples[g].size(); ++i) {
      const auto& s = batch.samples[g][i];
      nlohmann::json line = {{"step", step},
                             {"prompt", rows_[batch.rows[g]].text},
                             {"completion", s.text},
                             {"finish_reason", to_string(s.finish_reason)},
                             {"completion_tokens", s.token_ids.size()},
                             {"valid", valid[g][i]},
                             {"reward", reward[g][i]}};
      if (batch.advantages.defined()) line["advantage"] = batch.advantages.accessor<double, 2>()[g][i];
      if (!batch.episodes.empty()) line["episode"] = batch.episodes[g][i];
      const auto& j = batch.judged[g][i];
      if (j.ok) {
        line["scores"] = j.verdict.scores;
        if (const auto& own = rows_[batch.rows[g]].rubric) line["items"] = rubric_items(*own, j.verdict.scores);
        if (!j.grades.empty()) line["grades"] = j.grades;
        if (!j.judge_rewards.empty()) line["judges"] = j.judge_rewards;
      }
      samples_->write(line);
    }
}

// A checkpoint every save_steps steps and after the last one.
void RlTrainer::checkpoint(int64_t done_steps, const TrainerState& started, bool now) {
  if (!(now || (c_.save_steps > 0 && done_steps % c_.save_steps == 0) || done_steps == total_steps_)) return;
  TrainerState s;
  s.step = done_steps;
  s.data_epoch = order_->epoch();
  s.data_position = order_->position();
  s.config_fingerprint = started.config_fingerprint;
  if (judge_) s.extra["judge_spend"] = dist_->sum(judge_->spend());  // the job's: budgets continue on --resume
  replicas_->save(s, contents());
}

void RlTrainer::log_judge_stats(nlohmann::json& m) {
  if (!judge_) return;
  const auto& st = judge_->stats();
  auto job = dist_->sum({double(st.judged - last_stats_.judged), double(st.cache_hits - last_stats_.cache_hits),
                         double(st.pairs_ok - last_stats_.pairs_ok), double(st.flips - last_stats_.flips),
                         judge_->total_stats().cost});  // summed over ranks
  const double judged = job[0], hits = job[1], ok = job[2], flips = job[3];
  m["judge/cache_hit_rate"] = judged ? hits / judged : 0.0;
  if (c_.algorithm == Algorithm::kOnlineDpo) m["judge/flip_rate"] = ok ? flips / ok : 0.0;
  m["judge/cost"] = job[4];
  last_stats_ = st;
  endpoint_metrics_.add(*judge_, *dist_, m);
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
  check("reward_format_corr", c_.warn_reward_format_corr, true,
        "the reward follows formatting (lists, headers, bold, code fences, emoji) rather than content");
  check("integrity/master_key_share", c_.warn_master_key_share, false,
        "completions without content (\"Thought process:\", punctuation, the prompt said back): is the judge passing "
        "them? add a required content grader");
  check("judge/position_corr", c_.warn_position_corr, true,
        "group judging scores by position: keep [judge] shuffle_group = true");
  if (warnings.empty()) return;
  m["warnings"] = warnings;
  if (!o_.quiet)
    for (const auto& w : warnings)
      std::fprintf(stderr, "\nwarning: step %lld: %s\n", (long long)m["step"].get<int64_t>(), w.c_str());
}

RunOutcome run_rl(const TrainConfig& config, const RunOptions& options) {
  config.validate("run config");
  return RlTrainer(config, options).run();
}

}  // namespace rlaif
