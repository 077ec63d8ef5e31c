// The local judge backend: a model folder run in-process. Each criterion's score distribution is read exactly from
// the model's next-token probabilities at the score position of the verdict JSON — no sampling, no parsing. Internal
// to the judge.
#pragma once

#include <string>
#include <vector>

#include "rlaif/judge.h"
#include "rlaif/judge_backend.h"
#include "rlaif/model.h"
#include "rlaif/model_source.h"
#include "rlaif/tokenizer.h"

namespace rlaif {

class LocalJudge {
 public:
  // Loads the judge model folder; throws rlaif::Error naming it.
  // rationale_tokens > 0: the judge first writes its rationale, greedily, up to that many tokens.
  LocalJudge(const ModelSource& source, int64_t batch_size, int64_t rationale_tokens = 0);
  // Fills out[i] for every sample: ok, verdict (scores = expected values, reward), distributions. A prompt that does
  // not fit the judge's context fails with "prompt_too_long".
  void score(const std::vector<JudgeMessages>& prompts, const Rubric& rubric, std::vector<JudgeResult>& out);

 private:
  // Feeds tokens[s] into cache slot s at positions at[s].. and returns the next-token log-probabilities after each
  // row's last token, [n, V]. The cache keeps what was fed.
  torch::Tensor feed(KVCache& cache, const std::vector<std::vector<int64_t>>& tokens, const std::vector<int64_t>& at);

  CausalLM model_{nullptr};
  std::unique_ptr<Tokenizer> tokenizer_;
  // Greedy rationale for the rows of a batch whose prompts (ending in `{"rationale": "`) sit in the cache up to
  // cur[s]: returns each rationale; the cache then holds prompt + rationale + `first_key` up to cur[s] except its
  // last token, which is put in pending[s].
  std::vector<std::string> write_rationales(KVCache& cache, const std::vector<std::vector<int64_t>>& prompts,
                                            const std::string& first_key, std::vector<int64_t>& cur,
                                            std::vector<std::vector<int64_t>>& pending);

  int64_t batch_size_, rationale_tokens_;
};

// The "local" backend: the judge prompts rendered and scored by a LocalJudge in one call; each result carries the
// call's time divided by the samples. Its cache keys include the folder's file sizes and times (new weights, new keys).
class LocalBackend : public JudgeBackend {
 public:
  explicit LocalBackend(const JudgeConfig& config);
  void score(const std::vector<JudgeSample>& samples, const Done& done,
             const std::function<bool()>& keep_going) override;
  void add_cache_material(nlohmann::json& material) const override;

 private:
  JudgeConfig config_;
  ModelSource source_;  // the judge model (and adapter) config_ names
  LocalJudge judge_;
};

}  // namespace rlaif
