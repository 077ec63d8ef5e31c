// The "command" judge backend (internal): an external program reads a batch of samples as JSON on stdin and writes
// their rewards as JSON on stdout, in the shape Amazon Nova reinforcement fine-tuning sends to its reward Lambda
// functions, so such a function runs unchanged behind a small wrapper:
//   in:  [{"id": "0", "messages": [{"role": "user", ...}, {"role": "assistant", ...}], "reference_answer": ...,
//          "metadata": {...}, "rubric": {"kind": "rubric" | "checklist", "items": [{"name", "criterion", "weight",
//          "min", "max"}]}}, ...]   ("rubric" only for a data row that carries its own rubric or checklist)
//   out: [{"id": "0", "aggregate_reward_score": 0.7, "metrics_list": [{"name": ..., "value": ..., "type": "Metric"}]}]
#pragma once

#include <string>
#include <vector>

#include "rlaif/judge.h"
#include "rlaif/judge_backend.h"

namespace rlaif {

// Runs `argv` once for `samples` and fills `results` (one per sample): ok with verdict.reward = the aggregate score
// and verdict.scores = the metrics, or a failure (command_timeout, command_failed, bad_response, missing_score).
void run_command_batch(const std::vector<std::string>& argv, double timeout_s, const std::vector<JudgeSample>& samples,
                       std::vector<JudgeResult>& results);

// Reads a command's stdout into `results` (sized to the batch): each row's id is its sample's index. A sample
// without a row fails as missing_score, a row without a numeric aggregate_reward_score as non_numeric_score, an id
// returned twice as bad_response; stdout that is not a JSON list (or a {"body": ...} holding one) fails them all.
void read_command_output(const std::string& out, std::vector<JudgeResult>& results);

// The "command" backend: run_command_batch over batches of command_batch samples, one after another.
class CommandBackend : public JudgeBackend {
 public:
  explicit CommandBackend(const JudgeConfig& config) : config_(config) {}
  void score(const std::vector<JudgeSample>& samples, const Done& done,
             const std::function<bool()>& keep_going) override;

 private:
  JudgeConfig config_;
};

}  // namespace rlaif
