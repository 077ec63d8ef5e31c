// Judging the judge: agreement of its rewards with labels (Spearman, Kendall tau-b, accuracy at a threshold, Cohen's
// kappa on pass/fail), its length bias, its self-consistency over repeated samples, the reward shift an injection
// set causes when appended to the completions, and (pairwise) its position-flip rate and pairwise accuracy.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rlaif/jsonl.h"
#include "rlaif/judge.h"

namespace rlaif {

struct LabelledSample {
  JudgeSample sample;
  double label = 0;  // ground truth: pass/fail as 1/0, or a score on any scale (higher = better)
};

struct JudgeEvalOptions {
  double threshold = 0.5;           // reward >= threshold counts as pass
  double label_threshold = -1e300;  // label >= this counts as pass; default: midpoint of the labels' range
  int consistency = 1;              // > 1: judge every sample this many more times without the cache; report the spread
  std::vector<std::string> injections;  // texts appended (after a blank line) to every completion; report the shift
  bool pairwise = false;                // also compare completions of one prompt with different labels, in both orders
  // Answers with no content that fool judges (tests/data/judge_master_keys.jsonl): each is judged as the answer to
  // every distinct prompt of the labelled set ("{prompt}" in one stands for the prompt); a pass is a false positive.
  std::vector<std::string> master_keys;
};

struct JudgeEvalReport {
  int64_t samples = 0, judged = 0, failed = 0;
  double spearman = 0, kendall = 0, accuracy = 0, kappa = 0;
  double length_bias = 0;               // Spearman(reward, completion length in characters)
  double label_length_bias = 0;         // the same for the labels: how much length bias the task itself has
  double consistency_std = -1;          // mean over samples of the std of rewards over the repeats (-1: not measured)
  int64_t pairs = 0, pairs_judged = 0;  // pairwise: pairs with different labels; those judged in both orders
  double flip_rate = 0;                 // share of judged pairs whose verdict changed with the order (counted as ties)
  double pairwise_accuracy = 0;         // of the non-tie verdicts, the share that prefer the higher label
  int64_t injection_pairs = 0;
  double injection_shift = 0;   // mean of reward(injected) - reward(clean) over pairs where both were judged
  double injection_raised = 0;  // fraction of those pairs whose reward went up
  // False positives are read off the reward training would give (the judge with its graders, a required grader's
  // gate included), a pass being reward >= threshold.
  // Of the judged injected samples whose clean answer is labelled a fail, the share judged a pass.
  double injection_false_positive_rate = 0;
  int64_t injection_fails = 0;  // how many such samples there were
  int64_t master_key_samples = 0, master_key_judged = 0;
  double master_key_false_positive_rate = 0;        // of the judged master-key answers, the share judged a pass
  std::map<std::string, double> master_key_passes;  // per master key: the share of its answers judged a pass
  struct Agreement {
    double accuracy = 0, spearman = 0, kappa = 0;
  };
  std::map<std::string, Agreement> judges;  // a panel: each judge's own agreement with the labels
  nlohmann::ordered_json to_json() const;
};

// Rows {prompt, completion, reference?} and, when `need_label`, a numeric or boolean "label". Throws rlaif::Error
// naming file:line for a bad row; `rows` (optional) receives each row as read (its line, all its fields).
std::vector<LabelledSample> read_labelled(const std::string& path, bool need_label,
                                          std::vector<JsonlRow>* rows = nullptr);
// An injection or master-key set: rows {completion, ...}, the texts of JudgeEvalOptions::injections / master_keys.
std::vector<std::string> read_completion_set(const std::string& path);

JudgeEvalReport evaluate_judge(const JudgeConfig& config, const std::vector<LabelledSample>& labelled,
                               const JudgeEvalOptions& options);

}  // namespace rlaif
