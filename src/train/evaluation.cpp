// Evaluation during `rlaif train`: held-out prompts, one completion (with [env]: one episode) each, judged.
#include "train/rl_trainer.h"

namespace rlaif {

// Held-out prompts, one completion each with the step's sampling settings (fixed seed), judged; mean scores logged
// and the samples written, so runs can be compared before and after training.
void RlTrainer::evaluate(int64_t step) {
  const size_t n = std::min<size_t>(eval_rows_.size(), static_cast<size_t>(c_.eval_samples));
  std::vector<JudgeSample> samples;
  std::vector<JudgeResult> judged;
  std::vector<nlohmann::json> episodes;  // with [env]: each prompt's episode
  if (c_.episodes()) {
    judged = evaluate_episodes(n, samples, episodes);
  } else {
    std::vector<GenerationRequest> requests;
    for (size_t k = 0; k < n; ++k) {
      GenerationRequest q;
      q.prompt_ids = eval_rows_[k].prompt_ids;
      q.seed = sample_seed(c_.seed ^ 0xE7A1ULL, k);
      q.params = generation_params();
      requests.push_back(std::move(q));
    }
    auto results = gen_->generate(requests);
    for (size_t k = 0; k < n; ++k)
      samples.push_back(
          {eval_rows_[k].text, results[k].samples[0].text, eval_rows_[k].reference, eval_rows_[k].rubric});
    judged = judge_->judge(samples);
  }
  nlohmann::json m = {{"step", step}};
  double sum = 0;
  int64_t ok = 0;
  std::map<std::string, std::pair<double, int64_t>> per;
  for (size_t k = 0; k < n; ++k) {
    const auto& r = judged[k];
    nlohmann::json line = {
        {"step", step}, {"prompt", samples[k].prompt}, {"completion", samples[k].completion}, {"ok", r.ok}};
    if (r.ok) {
      sum += r.reward, ++ok;
      line["reward"] = r.reward;
      line["scores"] = r.verdict.scores;
      line["rationale"] = r.verdict.rationale;
      if (!r.grades.empty()) line["grades"] = r.grades;
      if (const auto& own = eval_rows_[k].rubric)  // its items' names mean something only within the row
        line["items"] = rubric_items(*own, r.verdict.scores);
      else
        for (const auto& [name, s] : r.verdict.scores) per[name].first += s, per[name].second++;
      for (const auto& [name, s] : r.grades) per[name].first += s, per[name].second++;
    } else {
      line["failure"] = r.failure;
    }
    if (!eval_rows_[k].reference.empty()) line["reference"] = eval_rows_[k].reference;
    if (!eval_rows_[k].metadata.empty()) line["metadata"] = eval_rows_[k].metadata;
    if (!episodes.empty()) line["episode"] = episodes[k];
    eval_log_->write(line);
  }
  m["eval/reward"] = ok ? sum / ok : 0.0;
  m["eval/failures"] = static_cast<int64_t>(n) - ok;
  for (const auto& [name, v] : per) m["eval/rewards/" + name + "/mean"] = v.first / std::max<int64_t>(1, v.second);
  metrics_->write(m);
  if (!o_.quiet)
    std::fprintf(stderr, "eval at step %lld: reward %.4f over %zu prompts\n", (long long)step,
                 m["eval/reward"].get<double>(), n);
}

}  // namespace rlaif
