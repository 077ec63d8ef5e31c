// run.toml: reading (with --set overrides) and up-front validation of every option and their interactions.
#include "rlaif/train_config.h"

#include <cmath>
#include <sstream>

#include "core/toml_reader.h"
#include "rlaif/cpu_features.h"
#include "rlaif/error.h"

namespace rlaif {

const Choices<LrSchedule> kLrSchedules = {
    {"constant", LrSchedule::kConstant}, {"linear", LrSchedule::kLinear}, {"cosine", LrSchedule::kCosine}};
const Choices<JudgeMode> kJudgeModes = {{"pointwise", JudgeMode::kPointwise}, {"group", JudgeMode::kGroup}};
const Choices<AgreementMetric> kAgreementMetrics = {{"accuracy", AgreementMetric::kAccuracy},
                                                    {"spearman", AgreementMetric::kSpearman},
                                                    {"kendall", AgreementMetric::kKendall},
                                                    {"kappa", AgreementMetric::kKappa}};

namespace {

// Applies "a.b.c=value" to `root`: value in TOML syntax (1e-5, true, "x", [..]); anything else is a string.
void apply_override(toml::table& root, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Error("--set needs key=value, got \"" + assignment + "\"", "--set", "e.g. --set train.learning_rate=1e-5");
  std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    parsed = toml::table{{"v", value}};
  }
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
  toml::table* t = &root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    toml::node* n = t->get(parts[i]);
    if (!n) n = &t->insert_or_assign(parts[i], toml::table{}).first->second;
    if (!n->is_table()) throw Error("\"" + parts[i] + "\" is not a table", "--set " + key);
    t = n->as_table();
  }
  t->insert_or_assign(parts.back(), *parsed.get("v"));
}

}  // namespace

TrainConfig TrainConfig::from_toml(const std::string& path, const std::vector<std::string>& overrides) {
  auto root = parse_toml_file(path);
  for (const auto& o : overrides) apply_override(root, o);
  TrainConfig c;
  // Strings are written as single-line basic strings: toml++'s literal and multi-line forms do not round-trip every
  // string (one holding ''' ends a literal string early; a leading newline is trimmed from a multi-line one).
  constexpr auto flags = toml::toml_formatter::default_flags & ~toml::format_flags::allow_literal_strings &
                         ~toml::format_flags::allow_multi_line_strings;
  std::ostringstream effective;
  effective << toml::toml_formatter(root, flags);
  c.effective_toml = effective.str() + "\n";
  TomlReader top(root, path);
  if (const toml::table* t = top.table("model")) {
    TomlReader r(*t, path + ": model");
    r.get("path", c.model_path);
    r.get("dtype", c.dtype);
    r.check_unknown();
  }
  if (const toml::table* t = top.table("data")) {
    TomlReader r(*t, path + ": data");
    r.get("prompts", c.prompts);
    r.get("eval_prompts", c.eval_prompts);
    r.check_unknown();
  }
  if (const toml::table* t = top.table("train")) {
    TomlReader r(*t, path + ": train");
    r.get("output_dir", c.output_dir);
    r.get_choice("algorithm", c.algorithm, kAlgorithms);
    r.get("max_steps", c.max_steps);
    r.get("num_train_epochs", c.num_train_epochs);
    r.get("per_device_train_batch_size", c.per_device_train_batch_size);
    r.get("gradient_accumulation_steps", c.gradient_accumulation_steps);
    r.get("num_generations", c.num_generations);
    r.get("max_prompt_length", c.max_prompt_length);
    r.get("max_completion_length", c.max_completion_length);
    r.get("temperature", c.temperature);
    r.get("top_p", c.top_p);
    r.get("top_k", c.top_k);
    r.get("min_p", c.min_p);
    r.get("learning_rate", c.learning_rate);
    r.get("adam_beta1", c.adam_beta1);
    r.get("adam_beta2", c.adam_beta2);
    r.get("adam_epsilon", c.adam_epsilon);
    r.get("weight_decay", c.weight_decay);
    r.get("max_grad_norm", c.max_grad_norm);
    r.get_choice("lr_scheduler_type", c.lr_scheduler_type, kLrSchedules);
    r.get("warmup_steps", c.warmup_steps);
    r.get("warmup_ratio", c.warmup_ratio);
    r.get("beta", c.beta);
    r.get_choice("kl_estimator", c.kl_estimator, kKlEstimators);
    r.get("kl_in_reward", c.kl_in_reward);
    r.get("epsilon", c.epsilon);
    r.get("epsilon_high", c.epsilon_high);
    r.get_choice("loss_type", c.loss_type, kLossTypes);
    r.get_choice("scale_rewards", c.scale_rewards, kScaleRewards);
    r.get_choice("importance_sampling_level", c.importance_sampling_level, kImportanceSamplingLevels);
    r.get("num_iterations", c.num_iterations);
    r.get("mask_truncated_completions", c.mask_truncated_completions);
    r.get("entropy_coef", c.entropy_coef);
    r.get("importance_sampling_correction", c.importance_sampling_correction);
    r.get("importance_sampling_cap", c.importance_sampling_cap);
    r.get_choice("judge_mode", c.judge_mode, kJudgeModes);
    r.get("dynamic_sampling", c.dynamic_sampling);
    r.get("max_dynamic_sampling_rounds", c.max_dynamic_sampling_rounds);
    r.get("overlong_buffer_length", c.overlong_buffer_length);
    r.get("overlong_penalty_factor", c.overlong_penalty_factor);
    r.get("missing_eos_penalty", c.missing_eos_penalty);
    r.get("integrity_verifier", c.integrity_verifier);
    r.get("integrity_judge_threshold", c.integrity_judge_threshold);
    r.get("warn_reward_length_corr", c.warn_reward_length_corr);
    r.get("warn_judge_verifier_gap", c.warn_judge_verifier_gap);
    r.get("warn_flip_rate", c.warn_flip_rate);
    r.get("warn_reward_format_corr", c.warn_reward_format_corr);
    r.get("warn_master_key_share", c.warn_master_key_share);
    r.get("warn_position_corr", c.warn_position_corr);
    r.get("judge_eval_labels", c.judge_eval_labels);
    r.get("judge_eval_injections", c.judge_eval_injections);
    r.get("judge_eval_master_keys", c.judge_eval_master_keys);
    r.get("judge_max_false_positive_rate", c.judge_max_false_positive_rate);
    r.get("judge_max_injection_shift", c.judge_max_injection_shift);
    r.get_choice("judge_agreement_metric", c.judge_agreement_metric, kAgreementMetrics);
    r.get("judge_min_agreement", c.judge_min_agreement);
    r.get("seed", c.seed);
    r.get("logging_steps", c.logging_steps);
    r.get("save_steps", c.save_steps);
    r.get("save_total_limit", c.save_total_limit);
    r.get("eval_steps", c.eval_steps);
    r.get("eval_samples", c.eval_samples);
    r.get("generation_batch_size", c.generation_batch_size);
    r.get("num_threads", c.num_threads);
    r.get("ddp_timeout", c.ddp_timeout);
    r.get("ddp_bucket_cap_mb", c.ddp_bucket_cap_mb);
    r.get("zero_stage", c.zero_stage);
    bool bf16 = false;
    if (t->contains("bf16")) {
      r.get("bf16", bf16);
      c.bf16 = bf16 ? 1 : 0;
    } else {
      r.get("bf16", bf16);  // marks the key as known
    }
    r.check_unknown();
  }
  if (const toml::table* t = top.table("lora")) {
    TomlReader r(*t, path + ": lora");
    c.use_lora = true;
    r.get("enabled", c.use_lora);
    r.get("r", c.lora.r);
    r.get("lora_alpha", c.lora.lora_alpha);
    r.get("lora_dropout", c.lora.lora_dropout);
    r.get_strings("target_modules", c.lora.target_modules);
    r.get("use_rslora", c.lora.use_rslora);
    r.check_unknown();
  }
  for (const char* k : {"judge", "rubric", "template", "graders"}) c.has_judge = c.has_judge || root.contains(k);
  c.judge = JudgeConfig::read_tables(top, path);
  c.env = EnvConfig::read_table(top, path);
  if (c.episodes() && !c.has_judge) c.judge.backend = "none";  // the environment's reward alone
  top.check_unknown(std::string("model, data, train, lora, env, ") + JudgeConfig::kTables);
  return c;
}

bool TrainConfig::use_bf16() const { return bf16 < 0 ? packed_linear_supported(/*bf16=*/true) : bf16 == 1; }

int64_t TrainConfig::total_steps(int64_t rows, bool rl, int world_size) const {
  if (max_steps > 0) return max_steps;
  const int64_t per_step = (rl ? prompts_per_step() : generation_batch()) * world_size;
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(num_train_epochs * rows / double(per_step))));
}

void TrainConfig::validate(const std::string& where, bool rl) const {
  auto fail = [&](const std::string& key, const std::string& what, const std::string& hint = "") {
    throw Error(what, where + ": " + key, hint);
  };
  if (model_path.empty()) fail("model.path", "the policy model folder is not set", "path = \"models/my-model\"");
  if (prompts.empty()) fail("data.prompts", "the training data file is not set", "prompts = \"prompts.jsonl\"");
  if (output_dir.empty()) fail("train.output_dir", "the output folder is not set", "output_dir = \"runs/my-run\"");
  if (dtype != "auto" && dtype != "float32" && dtype != "bfloat16")
    fail("model.dtype", "unknown dtype \"" + dtype + "\"", "use auto, float32 or bfloat16");
  if (max_steps == 0 || max_steps < -1) fail("train.max_steps", "must be >= 1, or -1 to run num_train_epochs");
  if (!(num_train_epochs > 0)) fail("train.num_train_epochs", "must be > 0");
  // Upper bounds far past any machine keep the products below (completions per step, tokens per sequence) exact.
  const int64_t kMaxCount = int64_t(1) << 20, kMaxTokens = int64_t(1) << 24;
  if (per_device_train_batch_size < 1 || per_device_train_batch_size > kMaxCount)
    fail("train.per_device_train_batch_size", "must be in [1, 2^20]");
  if (gradient_accumulation_steps < 1 || gradient_accumulation_steps > kMaxCount)
    fail("train.gradient_accumulation_steps", "must be in [1, 2^20]");
  if (!(num_train_epochs <= 1e6)) fail("train.num_train_epochs", "must be at most 1e6");
  if (!(learning_rate > 0)) fail("train.learning_rate", "must be > 0");
  if (!(adam_beta1 >= 0 && adam_beta1 < 1) || !(adam_beta2 >= 0 && adam_beta2 < 1))
    fail("train.adam_beta1/adam_beta2", "must be in [0, 1)");
  if (!(adam_epsilon > 0)) fail("train.adam_epsilon", "must be > 0");
  if (weight_decay < 0) fail("train.weight_decay", "must be >= 0");
  if (max_grad_norm < 0) fail("train.max_grad_norm", "must be >= 0 (0 = no clipping)");
  if (warmup_steps < 0 || warmup_ratio < 0 || warmup_ratio > 1)
    fail("train.warmup_steps/warmup_ratio", "must be >= 0 (ratio <= 1)");
  if (max_prompt_length < 1 || max_prompt_length > kMaxTokens) fail("train.max_prompt_length", "must be in [1, 2^24]");
  if (max_completion_length < 1 || max_completion_length > kMaxTokens)
    fail("train.max_completion_length", "must be in [1, 2^24]");
  if (save_total_limit < 1) fail("train.save_total_limit", "must be >= 1");
  if (save_steps < 0 || logging_steps < 1 || eval_steps < 0)
    fail("train.save_steps/logging_steps/eval_steps", "must be >= 0 (logging_steps >= 1)");
  if (ddp_timeout < 1 || ddp_timeout > 86400 * 365) fail("train.ddp_timeout", "must be in [1, 31536000] (seconds)");
  if (zero_stage != 0 && zero_stage != 1)
    fail("train.zero_stage", "must be 0 or 1 (stage 1: the optimizer state sharded over the ranks)");
  if (ddp_bucket_cap_mb < 0) fail("train.ddp_bucket_cap_mb", "must be >= 0 (0 = one sum after backward)");
  if (use_lora) lora.validate(where + ": lora");
  if (!rl) return;
  if (num_generations < 2) fail("train.num_generations", "must be >= 2: advantages compare the samples of one prompt");
  if (num_generations > kMaxCount) fail("train.num_generations", "must be at most 2^20");
  const bool online_dpo = algorithm == Algorithm::kOnlineDpo;
  if (online_dpo && num_generations != 2)
    fail("train.num_generations", "online_dpo compares exactly 2 completions per prompt", "set num_generations = 2");
  if (generation_batch() % num_generations != 0)
    fail("train.per_device_train_batch_size",
         "per_device_train_batch_size x gradient_accumulation_steps = " + std::to_string(generation_batch()) +
             " completions per step is not divisible by num_generations = " + std::to_string(num_generations),
         "make it a multiple, e.g. per_device_train_batch_size = " + std::to_string(num_generations));
  if (!(temperature > 0)) fail("train.temperature", "must be > 0 (the loss divides logits by it)");
  if (!(top_p > 0 && top_p <= 1)) fail("train.top_p", "must be in (0, 1]");
  if (top_k < 0) fail("train.top_k", "must be >= 0 (0 = off)");
  if (!(min_p >= 0 && min_p < 1)) fail("train.min_p", "must be in [0, 1)");
  if (beta < 0) fail("train.beta", "must be >= 0");
  if (!(epsilon > 0 && epsilon < 1)) fail("train.epsilon", "must be in (0, 1)");
  if (epsilon_high >= 0 && epsilon_high < epsilon) fail("train.epsilon_high", "must be >= epsilon (clip-higher)");
  if (num_iterations < 1) fail("train.num_iterations", "must be >= 1");
  if (importance_sampling_cap < 1) fail("train.importance_sampling_cap", "must be >= 1");
  if (overlong_buffer_length < 0 || overlong_buffer_length >= max_completion_length)
    fail("train.overlong_buffer_length", "must be in [0, max_completion_length)");
  if (max_dynamic_sampling_rounds < 1) fail("train.max_dynamic_sampling_rounds", "must be >= 1");
  if (generation_batch_size < 1) fail("train.generation_batch_size", "must be >= 1");
  if (eval_steps > 0 && eval_prompts.empty())
    fail("train.eval_steps", "evaluation needs held-out prompts", "set data.eval_prompts");
  if (episodes()) {
    env.validate(where);
    if (online_dpo)
      fail("env", "episodes train with a policy-gradient algorithm",
           "use grpo, dr_grpo, dapo, gspo, rloo or reinforce_pp");
    if (overlong_buffer_length >= env.max_episode_tokens)
      fail("train.overlong_buffer_length",
           "must be less than env.max_episode_tokens (an episode's length is the "
           "policy's tokens over its turns)");
    if (static_cast<int64_t>(env.max_episode_tokens) > max_completion_length)
      fail("env.max_episode_tokens",
           "is more than train.max_completion_length (" + std::to_string(max_completion_length) +
               "), which bounds the whole episode after its first prompt",
           "raise train.max_completion_length to cover the policy's turns and the observations");
    if (env.type == "tools" && !has_judge)
      fail("env.type", "a tools environment gives no reward of its own",
           "add a [judge] table (a trajectory rubric) or [[graders]] that reward the final answer");
  }
  if (!has_judge && !episodes())
    fail("judge", "no reward is configured",
         "add a [judge] table (and [rubric]) or [[graders]] with [judge] backend = \"none\", or an [env]");
  if (!has_judge && !judge_eval_labels.empty())
    fail("train.judge_eval_labels", "the pre-flight gate checks a judge, and the run has none", "add a [judge] table");
  if (judge_mode == JudgeMode::kGroup && (judge.backend != "openai" || online_dpo))
    fail("train.judge_mode", "group judging needs an openai-compatible judge and a policy-gradient algorithm");
  if (!judge.panel.empty() && (judge_mode == JudgeMode::kGroup || online_dpo))
    fail("panel", "a panel of judges scores pointwise only",
         "use judge_mode = \"pointwise\" and a policy-gradient algorithm");
  if (online_dpo && judge.backend != "openai")
    fail("judge.backend", "online_dpo needs pairwise preferences from an openai-compatible judge");
  if (has_judge) judge.validate(where);
  if (!(judge_min_agreement >= 0 && judge_min_agreement <= 1))
    fail("train.judge_min_agreement", "must be in [0, 1] (0 = report only)",
         "0.8 = refuse to train with a judge agreeing on less than 80%");
  if (judge_min_agreement > 0 && judge_eval_labels.empty())
    fail("train.judge_min_agreement", "a minimum agreement needs train.judge_eval_labels",
         "name a labelled JSONL file");
  if (!judge_eval_injections.empty() && judge_eval_labels.empty())
    fail("train.judge_eval_injections", "the injection shift is measured on train.judge_eval_labels",
         "name that file too");
  if (!judge_eval_master_keys.empty() && judge_eval_labels.empty())
    fail("train.judge_eval_master_keys", "the master keys answer the prompts of train.judge_eval_labels",
         "name that file too");
  for (auto [key, v] :
       {std::pair<const char*, double>{"train.judge_max_false_positive_rate", judge_max_false_positive_rate},
        {"train.judge_max_injection_shift", judge_max_injection_shift}})
    if (!(v >= 0 && v <= 1)) fail(key, "must be in [0, 1] (1 = report only)", "e.g. 0.05");
  if (judge_max_false_positive_rate < 1 && judge_eval_master_keys.empty() && judge_eval_injections.empty())
    fail("train.judge_max_false_positive_rate", "needs train.judge_eval_master_keys or train.judge_eval_injections",
         "name tests/data/judge_master_keys.jsonl, for example");
  if (judge_max_injection_shift < 1 && judge_eval_injections.empty())
    fail("train.judge_max_injection_shift", "needs train.judge_eval_injections",
         "name tests/data/judge_injections.jsonl, for example");
  if (!integrity_verifier.empty()) {
    bool found = false;
    std::string names;
    for (const auto& g : judge.graders)
      found = found || g.name == integrity_verifier, names += (names.empty() ? "" : ", ") + g.name;
    if (!found)
      fail("train.integrity_verifier", "no grader is named \"" + integrity_verifier + "\"",
           names.empty() ? "add a [[graders]] entry with that name (weight = 0 keeps it out of the reward)"
                         : "graders: " + names);
  }
}

}  // namespace rlaif
