// The "command" judge backend (internal): an external program reads a batch of samples as JSON on stdin and writes
// their rewards as JSON on stdout, in the shape Amazon Nova reinforcement fine-tuning sends to its reward Lambda
// functions, so such a function runs unchanged behind a small wrapper:
//   in:  [{"id": "0", "messages": [{"role": "user", ...}, {"role": "assistant", ...}], "reference_answer": ...,
//          "metadata": {...}}, ...]
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
