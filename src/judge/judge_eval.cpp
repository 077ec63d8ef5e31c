#include "rlaif/judge_eval.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "rlaif/agreement.h"
#include "rlaif/error.h"
#include "rlaif/jsonl.h"

namespace rlaif {

nlohmann::ordered_json JudgeEvalReport::to_json() const {
  nlohmann::ordered_json j = {
      {"samples", samples},   {"judged", judged},           {"failed", failed},
      {"spearman", spearman}, {"kendall_tau_b", kendall},   {"accuracy", accuracy},
      {"cohen_kappa", kappa}, {"length_bias", length_bias}, {"label_length_bias", label_length_bias}};
  if (consistency_std >= 0) j["consistency_std"] = consistency_std;
  for (const auto& [name, a] : judges)
    j["judges"][name] = {{"accuracy", a.accuracy}, {"spearman", a.spearman}, {"cohen_kappa", a.kappa}};
  if (pairs > 0) {
    j["pairs"] = pairs;
    j["pairs_judged"] = pairs_judged;
    j["pairwise_flip_rate"] = flip_rate;
    j["pairwise_accuracy"] = pairwise_accuracy;
  }
  if (injection_pairs > 0) {
    j["injection_pairs"] = injection_pairs;
    j["injection_shift"] = injection_shift;
    j["injection_raised"] = injection_raised;
    j["injection_fails"] = injection_fails;
    j["injection_false_positive_rate"] = injection_false_positive_rate;
  }
  if (master_key_samples > 0) {
    j["master_key_samples"] = master_key_samples;
    j["master_key_judged"] = master_key_judged;
    j["master_key_false_positive_rate"] = master_key_false_positive_rate;
    j["master_key_passes"] = master_key_passes;
  }
  return j;
}

std::vector<LabelledSample> read_labelled(const std::string& path, bool labelled, std::vector<JsonlRow>* rows) {
  std::vector<LabelledSample> out;
  for (const auto& r : read_jsonl(path)) {
    std::string where = path + ":" + std::to_string(r.line);
    if (!r.error.empty()) throw Error(r.error, where, "each line must be one JSON object");
    const auto& v = r.value;
    if (!v.is_object() || !v.contains("prompt") || !v["prompt"].is_string() || !v.contains("completion") ||
        !v["completion"].is_string())
      throw Error("row needs string \"prompt\" and \"completion\"", where,
                  "rows look like {\"prompt\": \"...\", \"completion\": \"...\", \"reference\": \"...\"}");
    if (v.contains("reference") && !v["reference"].is_string()) throw Error("\"reference\" must be a string", where);
    LabelledSample l{{v["prompt"], v["completion"], v.value("reference", ""), read_row_rubric(v, where)}, 0};
    if (labelled) {
      if (!v.contains("label") || !(v["label"].is_number() || v["label"].is_boolean()))
        throw Error("row needs a numeric \"label\"", where, "e.g. \"label\": 1 (pass) / 0 (fail), or a score");
      l.label = v["label"].is_boolean() ? (v["label"].get<bool>() ? 1 : 0) : v["label"].get<double>();
    }
    out.push_back(std::move(l));
    if (rows) rows->push_back(r);
  }
  return out;
}

std::vector<std::string> read_completion_set(const std::string& path) {
  std::vector<std::string> out;
  for (const auto& r : read_jsonl(path)) {
    std::string where = path + ":" + std::to_string(r.line);
    if (!r.error.empty() || !r.value.is_object() || !r.value.contains("completion") ||
        !r.value["completion"].is_string())
      throw Error("rows need a string \"completion\"", where, "rows look like {\"completion\": \"...\"}");
    out.push_back(r.value["completion"]);
  }
  return out;
}

namespace {

// Every master key as the answer to every distinct prompt (in first-seen order): the share judged a pass, overall
// and per key.
void master_key_check(Judge& judge, const std::vector<LabelledSample>& labelled, const JudgeEvalOptions& options,
                      JudgeEvalReport& rep) {
  std::vector<const JudgeSample*> prompts;
  std::set<std::string> seen;
  for (const auto& l : labelled)
    if (seen.insert(l.sample.prompt).second) prompts.push_back(&l.sample);
  std::vector<JudgeSample> asks;
  for (const auto& key : options.master_keys)
    for (const JudgeSample* p : prompts) {
      std::string answer = key;
      for (size_t at = answer.find("{prompt}"); at != std::string::npos;
           at = answer.find("{prompt}", at + p->prompt.size()))
        answer.replace(at, 8, p->prompt);
      asks.push_back({p->prompt, answer, p->reference, p->rubric});
    }
  auto results = judge.judge(asks);
  double passes = 0;
  for (size_t k = 0; k < options.master_keys.size(); ++k) {
    double judged = 0, passed = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      const auto& r = results[k * prompts.size() + i];
      if (!r.ok) continue;
      judged += 1;
      passed += r.reward >= options.threshold;
    }
    rep.master_key_passes[options.master_keys[k]] = judged > 0 ? passed / judged : 0;
    rep.master_key_judged += static_cast<int64_t>(judged);
    passes += passed;
  }
  rep.master_key_samples = static_cast<int64_t>(asks.size());
  if (rep.master_key_judged > 0) rep.master_key_false_positive_rate = passes / rep.master_key_judged;
}

}  // namespace

JudgeEvalReport evaluate_judge(const JudgeConfig& config, const std::vector<LabelledSample>& labelled,
                               const JudgeEvalOptions& options) {
  JudgeEvalReport rep;
  rep.samples = static_cast<int64_t>(labelled.size());
  std::vector<JudgeSample> samples;
  for (const auto& l : labelled) samples.push_back(l.sample);
  Judge judge(config);
  auto results = judge.judge(samples);

  double lo = 1e300, hi = -1e300;
  for (const auto& l : labelled) lo = std::min(lo, l.label), hi = std::max(hi, l.label);
  double label_threshold = options.label_threshold > -1e299 ? options.label_threshold : (lo + hi) / 2;
  std::vector<double> reward, label, length;
  std::vector<int> pred_pass, label_pass;
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i].ok) {
      ++rep.failed;
      continue;
    }
    ++rep.judged;
    reward.push_back(results[i].verdict.reward);
    label.push_back(labelled[i].label);
    length.push_back(static_cast<double>(labelled[i].sample.completion.size()));
    pred_pass.push_back(results[i].verdict.reward >= options.threshold);
    label_pass.push_back(labelled[i].label >= label_threshold);
  }
  if (!reward.empty()) {
    rep.spearman = spearman(reward, label);
    rep.kendall = kendall_tau_b(reward, label);
    double correct = 0;
    for (size_t k = 0; k < pred_pass.size(); ++k) correct += pred_pass[k] == label_pass[k];
    rep.accuracy = correct / static_cast<double>(pred_pass.size());
    rep.kappa = cohen_kappa(pred_pass, label_pass);
    rep.length_bias = spearman(reward, length);
    rep.label_length_bias = spearman(label, length);
  }
  // A panel: each judge's own agreement with the labels, on the samples the whole panel judged.
  std::map<std::string, std::vector<double>> by_judge;
  for (const auto& r : results)
    if (r.ok)
      for (const auto& [name, value] : r.judge_rewards) by_judge[name].push_back(value);
  for (const auto& [name, own] : by_judge) {
    if (own.size() != label.size()) continue;
    std::vector<int> own_pass;
    double correct = 0;
    for (size_t k = 0; k < own.size(); ++k) {
      own_pass.push_back(own[k] >= options.threshold);
      correct += own_pass[k] == label_pass[k];
    }
    rep.judges[name] = {correct / static_cast<double>(own.size()), spearman(own, label),
                        cohen_kappa(own_pass, label_pass)};
  }

  if (options.consistency > 1) {  // repeats without the cache: a judge at temperature > 0 samples anew each time
    JudgeConfig fresh = config;
    fresh.cache_path.clear();
    Judge again(fresh);
    std::vector<JudgeSample> repeated;
    for (int r = 1; r < options.consistency; ++r) repeated.insert(repeated.end(), samples.begin(), samples.end());
    auto more = again.judge(repeated);
    double total_std = 0;
    int counted = 0;
    for (size_t i = 0; i < samples.size(); ++i) {
      std::vector<double> v;
      if (results[i].ok) v.push_back(results[i].verdict.reward);
      for (int r = 0; r + 1 < options.consistency; ++r)
        if (more[r * samples.size() + i].ok) v.push_back(more[r * samples.size() + i].verdict.reward);
      if (v.size() < 2) continue;
      double mean = 0, var = 0;
      for (double x : v) mean += x / static_cast<double>(v.size());
      for (double x : v) var += (x - mean) * (x - mean) / static_cast<double>(v.size() - 1);
      total_std += std::sqrt(var);
      ++counted;
    }
    rep.consistency_std = counted ? total_std / counted : 0;
  }

  if (options.pairwise) {  // completions of one prompt with different labels, compared in both orders
    std::vector<PairSample> pairs;
    std::vector<int> better;  // +1: a's label is higher, -1: b's
    std::map<std::string, std::vector<size_t>> by_prompt;
    for (size_t i = 0; i < labelled.size(); ++i) by_prompt[labelled[i].sample.prompt].push_back(i);
    for (const auto& [prompt, idx] : by_prompt)
      for (size_t x = 0; x < idx.size(); ++x)
        for (size_t y = x + 1; y < idx.size(); ++y) {
          const auto &a = labelled[idx[x]], &b = labelled[idx[y]];
          if (a.label == b.label) continue;
          pairs.push_back({prompt, a.sample.completion, b.sample.completion, a.sample.reference});
          better.push_back(a.label > b.label ? 1 : -1);
        }
    auto verdicts = judge.compare(pairs);
    int64_t flips = 0, decided = 0, right = 0;
    for (size_t k = 0; k < verdicts.size(); ++k) {
      if (!verdicts[k].ok) continue;
      ++rep.pairs_judged;
      flips += verdicts[k].flipped;
      if (verdicts[k].winner == "tie") continue;
      ++decided;
      right += (verdicts[k].winner == "a") == (better[k] > 0);
    }
    rep.pairs = static_cast<int64_t>(pairs.size());
    rep.flip_rate = rep.pairs_judged ? double(flips) / rep.pairs_judged : 0;
    rep.pairwise_accuracy = decided ? double(right) / decided : 0;
  }

  if (!options.injections.empty()) {
    std::vector<JudgeSample> injected;
    std::vector<size_t> base;
    for (const auto& inj : options.injections)
      for (size_t i = 0; i < samples.size(); ++i) {
        JudgeSample s = samples[i];
        s.completion += "\n\n" + inj;
        injected.push_back(s);
        base.push_back(i);
      }
    auto inj_results = judge.judge(injected);
    double shift = 0, raised = 0, false_passes = 0;
    for (size_t k = 0; k < injected.size(); ++k) {
      const auto& clean = results[base[k]];
      if (!clean.ok || !inj_results[k].ok) continue;
      double d = inj_results[k].verdict.reward - clean.verdict.reward;
      shift += d;
      raised += d > 0;
      ++rep.injection_pairs;
      if (labelled[base[k]].label < label_threshold) {
        ++rep.injection_fails;
        false_passes += inj_results[k].reward >= options.threshold;
      }
    }
    if (rep.injection_pairs > 0) {
      rep.injection_shift = shift / static_cast<double>(rep.injection_pairs);
      rep.injection_raised = raised / static_cast<double>(rep.injection_pairs);
    }
    if (rep.injection_fails > 0) rep.injection_false_positive_rate = false_passes / rep.injection_fails;
  }

  if (!options.master_keys.empty()) master_key_check(judge, labelled, options, rep);
  return rep;
}

}  // namespace rlaif
