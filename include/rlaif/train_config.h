// run.toml: everything one RL run (`rlaif train`) or SFT run (`rlaif sft`) needs, in one file. Option names follow
// TRL's GRPOConfig / SFTConfig wherever the concept is the same. Every option is documented in docs/config.md.
//
//   [model]    path, dtype (sampling precision)
//   [data]     prompts, eval_prompts, completion_only_loss (sft)
//   [train]    the algorithm and its hyper-parameters, optimisation, checkpoints, logging
//   [lora]     enabled, r, lora_alpha, lora_dropout, target_modules, use_rslora
//   [judge] [rubric] [template] [[graders]]   the reward, exactly as in judge.toml
//   [env]      multi-turn episodes against an environment instead of single completions (docs/episodes.md)
#pragma once

#include <string>
#include <vector>

#include "rlaif/choices.h"
#include "rlaif/environment.h"
#include "rlaif/judge.h"
#include "rlaif/lora_config.h"
#include "rlaif/rl_options.h"

namespace rlaif {

enum class LrSchedule { kConstant, kLinear, kCosine };
enum class JudgeMode { kPointwise, kGroup };
enum class AgreementMetric { kAccuracy, kSpearman, kKendall, kKappa };
extern const Choices<LrSchedule> kLrSchedules;            // constant | linear | cosine
extern const Choices<JudgeMode> kJudgeModes;              // pointwise | group
extern const Choices<AgreementMetric> kAgreementMetrics;  // accuracy | spearman | kendall | kappa

struct TrainConfig {
  // [model]
  std::string model_path;      // Hugging Face folder of the policy (and of the reference)
  std::string dtype = "auto";  // sampling precision: auto | float32 | bfloat16

  // [data]
  std::string prompts;       // JSONL: {"prompt": "..."} or {"messages": [...]}, optional "reference"
  std::string eval_prompts;  // held-out JSONL for evaluation ("" = none)

  // [train]
  std::string output_dir;
  Algorithm algorithm = Algorithm::kGrpo;
  int64_t max_steps = -1;  // optimizer steps; -1 = num_train_epochs passes over the data
  double num_train_epochs = 1;
  int64_t per_device_train_batch_size = 8;  // completions per micro-batch
  int64_t gradient_accumulation_steps = 1;  // micro-batches per optimizer step
  int64_t num_generations = 8;              // G completions per prompt
  int64_t max_prompt_length = 512;          // tokens; longer prompts keep their end
  int64_t max_completion_length = 256;
  double temperature = 1.0, top_p = 1.0, min_p = 0.0;
  int64_t top_k = 0;
  double learning_rate = 1e-6;
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_epsilon = 1e-8, weight_decay = 0.0;
  double max_grad_norm = 1.0;
  LrSchedule lr_scheduler_type = LrSchedule::kLinear;
  int64_t warmup_steps = 0;
  double warmup_ratio = 0.0;
  double beta = 0.0;  // KL coefficient
  KlEstimator kl_estimator = KlEstimator::kK3;
  bool kl_in_reward = false;  // false: beta * KL in the loss; true: subtracted from the reward
  double epsilon = 0.2;
  double epsilon_high = -1;  // < 0: same as epsilon
  LossType loss_type = LossType::kDapo;
  ScaleRewards scale_rewards = ScaleRewards::kGroup;
  ImportanceSamplingLevel importance_sampling_level = ImportanceSamplingLevel::kToken;  // sequence = GSPO
  int64_t num_iterations = 1;  // mu: optimizer passes over each generated batch
  bool mask_truncated_completions = false;
  double entropy_coef = 0.0;
  bool importance_sampling_correction = false;  // truncated IS between sampler and trainer log-probs
  double importance_sampling_cap = 2.0;
  JudgeMode judge_mode = JudgeMode::kPointwise;  // group: all G completions of a prompt in one judge call
  bool dynamic_sampling = false;                 // drop zero-variance groups and sample more prompts to refill
  int64_t max_dynamic_sampling_rounds = 4;
  int64_t overlong_buffer_length = 0;  // DAPO soft overlong punishment over the last L_cache tokens (0 = off)
  double overlong_penalty_factor = 1.0;
  double missing_eos_penalty = 0.0;  // subtracted from the reward of completions cut at max length
  // Reward-integrity telemetry (docs/metrics.md): a grader named here is the ground-truth check the judge is compared
  // with (give it weight 0 to keep it out of the reward); warnings when a threshold is crossed (0 = no warning).
  std::string integrity_verifier;
  double integrity_judge_threshold = 0.5;  // judge reward >= this counts as the judge calling it a success
  double warn_reward_length_corr = 0.5;    // |corr(reward, length)| above this
  double warn_judge_verifier_gap = 0.2;    // judge success rate - verifier success rate above this
  double warn_flip_rate = 0.3;             // pairwise flip rate above this
  double warn_reward_format_corr = 0.5;    // |corr(reward, formatting)| above this (lists, headers, bold, ...)
  double warn_master_key_share = 0.05;     // share of content-free completions above this
  double warn_position_corr = 0.3;         // group judging: |corr(score, position shown)| above this
  // Pre-flight gate: before the first step the judge scores this labelled set (rlaif judge eval's report goes to
  // output_dir/judge_validation.json); training refuses to start when the agreement metric is below the minimum.
  std::string judge_eval_labels;             // JSONL {prompt, completion, reference?, label}; "" = no gate
  std::string judge_eval_injections;         // optional injection set: its score shift is reported too
  std::string judge_eval_master_keys;        // optional master-key set: its false-positive rate is reported too
  double judge_max_false_positive_rate = 1;  // the gate refuses a judge passing more master keys / injected fails
  double judge_max_injection_shift = 1;      // the gate refuses a judge whose |injection shift| is above this
  AgreementMetric judge_agreement_metric = AgreementMetric::kAccuracy;
  double judge_min_agreement = 0.0;  // the gate; a pass is judge reward >= integrity_judge_threshold
  uint64_t seed = 42;
  int64_t logging_steps = 1;
  int64_t save_steps = 50;             // 0 = only at the end
  int64_t save_total_limit = 3;        // checkpoints kept
  int64_t eval_steps = 0;              // 0 = no evaluation during training
  int64_t eval_samples = 64;           // held-out prompts per evaluation
  int64_t generation_batch_size = 32;  // sequences the sampler decodes together
  int num_threads = 0;                 // 0 = all cores
  int bf16 = -1;                       // training matmuls in bfloat16 (fp32 master weights): 1 on, 0 off,
                                       // -1 auto = on where the CPU has AVX512_BF16 (docs/perf.md)
  bool use_bf16() const;

  // [lora]
  bool use_lora = false;
  LoraConfig lora;

  // [judge], [rubric], [template], [[graders]]
  JudgeConfig judge;
  bool has_judge = false;  // any of the judge tables present

  // [env]: each of the G samples of a prompt is an episode (type "" = single completions). Its whole sequence must fit
  // in max_prompt_length + max_completion_length tokens; its length is the policy's tokens.
  EnvConfig env;
  bool episodes() const { return !env.type.empty(); }

  int ddp_timeout = 1800;  // seconds a rank waits for the others (rendezvous, collectives) before it gives up
  int zero_stage = 0;      // 1: ZeRO stage 1, each rank keeps the optimizer state of its share of the weights only
  double ddp_bucket_cap_mb = 25;  // gradients summed across ranks in buckets of this size during backward (0 = after)

  // Completions per optimizer step and prompts per step, on one rank (data parallel: each rank's share, as TRL's
  // per_device_train_batch_size; the step's global batch is world_size times larger).
  int64_t generation_batch() const { return per_device_train_batch_size * gradient_accumulation_steps; }
  int64_t prompts_per_step() const { return generation_batch() / num_generations; }
  // Steps of the run over `rows` training rows on `world_size` ranks: max_steps, or enough for num_train_epochs passes.
  int64_t total_steps(int64_t rows, bool rl = true, int world_size = 1) const;
  double clip_high() const { return epsilon_high < 0 ? epsilon : epsilon_high; }

  // Reads `path`, applying `overrides` ("train.learning_rate=1e-5", values in TOML syntax; a bare word is a string)
  // first. Unknown tables and keys are errors naming file, key and line. Relative paths are relative to the working
  // directory. Does not validate.
  static TrainConfig from_toml(const std::string& path, const std::vector<std::string>& overrides = {});
  std::string effective_toml;  // the file as read, overrides applied (written to output_dir/run_config.toml)
  // Checks every option and their interactions up front; throws rlaif::Error saying how to fix it. `rl` = false
  // checks only what sft uses.
  void validate(const std::string& where, bool rl = true) const;
};

}  // namespace rlaif
