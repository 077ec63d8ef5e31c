// The judge: rubric -> prompt -> backend -> verdict, for many samples at once, with a persistent content-addressed
// cache (SQLite), a JSONL journal of every judgment, token and cost accounting and budget caps. A judgment that fails
// (transport, or a reply without a valid verdict) is returned as failed with its cause — never as a score.
//
// Backends (judge_backend.h): "openai", any server speaking /v1/chat/completions (vLLM, llama.cpp, Ollama, SGLang,
// OpenAI, ...), "command", an external program scoring batches of samples in Amazon Nova's reward-Lambda JSON shape,
// "none", rule graders only (verifiable rewards), "local", a model folder run in-process whose score distributions
// are read exactly from its next-token probabilities, and any backend registered by name.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rlaif/choices.h"
#include "rlaif/graders.h"
#include "rlaif/http_client.h"
#include "rlaif/judge_prompt.h"
#include "rlaif/rubric.h"
#include "rlaif/verdict.h"

namespace rlaif {

class TomlReader;

// How an openai judge asks for its reply's shape: a JSON schema of the verdict, any JSON object, or nothing.
enum class ResponseFormat { kJsonSchema, kJsonObject, kNone };
extern const Choices<ResponseFormat> kResponseFormats;  // json_schema | json_object | none

struct JudgeConfig {
  std::string name = "judge";        // how metrics, reports and a panel's scores name this judge
  std::string backend = "openai";    // openai | command | local | none (rule graders only)
  std::string model_path;            // local backend: the judge's Hugging Face model folder (or a LoRA adapter folder)
  std::string adapter;               // local backend: a PEFT LoRA adapter folder merged into model_path's weights
  int local_batch = 16;              // local backend: sequences per forward
  int local_rationale_tokens = 0;    // local backend: > 0 = write the rationale first (greedy, at most
                                     // this many tokens), then read the scores conditioned on it
  std::vector<std::string> command;  // command backend: program and arguments
  double command_timeout_s = 300;    // per batch
  int command_batch = 64;            // samples per run of the command
  // .../chat/completions is appended. Several: a pool of servers of the same model (judge.toml's base_url as a list);
  // each request goes to the one with the fewest in flight (http_client.h).
  std::vector<std::string> base_urls = {"http://127.0.0.1:8000/v1"};
  std::string model;
  std::string api_key_env;           // name of the environment variable holding the key ("" = none)
  std::vector<std::string> headers;  // extra "Name: value" headers
  double temperature = 0;
  int max_tokens = 512;
  ResponseFormat response_format = ResponseFormat::kJsonSchema;
  int top_logprobs = 0;       // > 0: ask for logprobs (reported per judgment)
  bool shuffle_group = true;  // group judging shows a group's completions in a shuffled order (against position bias)
  HttpClientOptions http;
  Rubric rubric = Rubric::default_rubric();
  JudgeTemplate tmpl = JudgeTemplate::pointwise_default();
  JudgeTemplate pairwise_tmpl = JudgeTemplate::pairwise_default();
  std::string cache_path;    // "" = no cache
  std::string journal_path;  // "" = no journal
  double price_input_per_million = 0, price_output_per_million = 0;
  double budget_tokens = 0, budget_cost = 0;  // 0 = no cap
  // Rule graders combined with the judge: reward = (judge_weight * judge reward + sum of weight * grade) / weights.
  std::vector<Grader> graders;
  double judge_weight = 1;
  // A panel: more judges (each its own judge.toml, named, weighted by its judge_weight) that score every sample at
  // the same time as this one. The judges' reward is their weighted mean; the graders then combine with it:
  // reward = (judge_weight * own + sum of panel weight * theirs + sum of grader weight * grade) / all weights.
  // A sample fails when any judge of the panel fails on it. Pointwise only.
  std::vector<JudgeConfig> panel;

  // Reads judge.toml ([judge], [judge.headers], [rubric], [[rubric.criteria]], [template]); every key is checked,
  // unknown keys are errors naming file and key. Relative cache/journal paths are relative to the working directory.
  static JudgeConfig from_toml(const std::string& path);
  // The judge's tables of an already opened TOML file (run.toml holds them beside its own), marking them seen; does
  // not validate. kTables names them for the reader's unknown-table check.
  static JudgeConfig read_tables(TomlReader& top, const std::string& path);
  static constexpr const char* kTables = "judge, rubric, template, graders, panel";
  void validate(const std::string& where) const;
  // What one rank of a data-parallel job of `world` ranks runs (itself, rank 0 of 1, without one): the rate limits
  // (requests_per_minute, tokens_per_minute) and budgets (budget_tokens, budget_cost) divided by `world`, so that the
  // job as a whole holds them, and a journal of its own (journal.rankN for rank N > 0; lines of two processes never
  // interleave). The panel's judges likewise.
  JudgeConfig rank_share(int rank, int world) const;
};

struct JudgeResult {
  bool ok = false;
  std::string failure, detail;  // cause when !ok: a transport cause (timeout, http_429, ...), bad_response,
                                // no_verdict, missing_score, non_numeric_score, budget_exhausted
  Verdict verdict;
  // local backend, and openai with top_logprobs: per criterion (mean is the score)
  std::map<std::string, ScoreDistribution> distributions;
  double reward = 0;                     // the judge's reward combined with the graders (== verdict.reward without any)
  std::map<std::string, double> grades;  // per grader name, 1 or 0
  std::map<std::string, double> judge_rewards;  // with a panel: each judge's own reward by its name
  std::string rubric_kind;  // "" = graded on the judge's rubric; "rubric" or "checklist" = on the sample's own
  bool cached = false;
  double latency_s = 0;
  int attempts = 0;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  double cost = 0;
  std::string reply;  // the judge's raw reply text
};

// Pairwise: which of two responses to one prompt is better, asked in both orders.
struct PairSample {
  std::string prompt, a, b, reference;
};
struct PairResult {
  bool ok = false;
  std::string failure, detail;
  std::string winner;         // "a", "b" or "tie"; a verdict that flips with the order is a tie
  bool flipped = false;       // the two orders disagreed
  std::string first, second;  // raw verdicts: A/B/tie with (a, b) shown as (A, B), then with (b, a) as (A, B)
  std::string rationale;
  double latency_s = 0;
};

// Group ranking: all completions of one prompt in one call, one score each (on the rubric's first criterion scale).
struct GroupSample {
  std::string prompt;
  std::vector<std::string> completions;
  std::string reference;
};
struct GroupResult {
  bool ok = false;
  std::string failure, detail;
  std::vector<double> scores;   // per completion, on the scale
  std::vector<double> rewards;  // per completion, scores mapped to [0, 1]
  std::vector<int> positions;   // per completion, where the judge saw it (0 = first); see shuffle_group
  std::string rationale;
  double latency_s = 0;
};

struct JudgeStats {
  int64_t judged = 0, ok = 0, failed = 0, cache_hits = 0;
  int64_t pairs = 0, pairs_ok = 0, flips = 0;  // pairwise: flip rate = flips / pairs_ok
  int64_t prompt_tokens = 0, completion_tokens = 0;
  double cost = 0;
  std::map<std::string, int64_t> failures;  // by cause
  std::vector<double> latencies;            // of non-cached judgments
};

class JudgeBackend;
class JudgeCache;
class OpenAiChat;

class Judge {
 public:
  explicit Judge(JudgeConfig config);
  ~Judge();
  // Judges every sample; on_result(i, result) fires as each one ends. Results are in input order.
  std::vector<JudgeResult> judge(const std::vector<JudgeSample>& samples,
                                 const std::function<void(size_t, const JudgeResult&)>& on_result = {});
  // Pairwise judgments (not cached; journaled). Each pair costs two requests, sent concurrently with the others.
  std::vector<PairResult> compare(const std::vector<PairSample>& pairs,
                                  const std::function<void(size_t, const PairResult&)>& on_result = {});
  // Group ranking: one request per group; a reply missing any completion's score fails the whole group. Cached,
  // journaled and held to the budget as pointwise judgments are.
  std::vector<GroupResult> rank(const std::vector<GroupSample>& groups);
  // Final outcomes (with a panel: a sample any judge failed on is failed here); tokens and cost of this judge only.
  const JudgeStats& stats() const { return stats_; }
  // The openai backend's HTTP counts (per endpoint of the pool too); null for other backends.
  const HttpStats* http_stats() const;
  // The other judges of the panel, each with its own stats, cache and journal.
  const std::vector<std::unique_ptr<Judge>>& panel() const { return panel_; }
  // Tokens and cost summed over this judge and its panel.
  JudgeStats total_stats() const;
  const JudgeConfig& config() const { return config_; }
  // The cache key of a sample: SHA-256 over the judge model, backend settings, template, rubric and the texts.
  std::string cache_key(const JudgeSample& sample) const;
  // The tokens and cost this judge and its panel have spent: prompt tokens, completion tokens and cost of this judge,
  // then of each panel judge in order. restore_spend puts them back (times `share`): a resumed run continues its
  // budgets instead of starting them again.
  std::vector<double> spend() const;
  void restore_spend(const std::vector<double>& spent, double share = 1.0);

 private:
  std::vector<JudgeResult> judge_alone(const std::vector<JudgeSample>& samples,
                                       const std::function<void(size_t, const JudgeResult&)>& on_result);
  // Folds the panel's verdicts on one sample into this judge's (graded) result and mixes the reward again.
  void combine_panel(const std::vector<const JudgeResult*>& theirs, JudgeResult& r);
  // Grades the sample, then mix_reward.
  void apply_graders(const JudgeSample& sample, JudgeResult& result, double judges_weight) const;
  // reward = (judges_weight * verdict.reward + sum of weight * grade) / (judges_weight + grader weights), or 0 when a
  // required grader failed
  void mix_reward(JudgeResult& result, double judges_weight) const;
  double own_weight() const;
  // Adds a reply's tokens and cost to stats (budgets read them).
  void count_usage(const JudgeResult& r);
  // Whether budget_tokens and budget_cost leave room for another request.
  bool within_budget() const;
  // Group judging: the order its n completions are shown in (shown[p] = the completion at position p).
  std::vector<size_t> shown_order(size_t n, const std::string& cache_key) const;

  JudgeConfig config_;
  std::shared_ptr<OpenAiChat> chat_;  // openai: the wire format and client (pointwise, pairwise and group judging)
  std::unique_ptr<JudgeBackend> backend_;
  std::unique_ptr<JudgeCache> cache_;
  std::vector<std::unique_ptr<Judge>> panel_;
  JudgeStats stats_;
};

}  // namespace rlaif
