#include "train/judge_gate.h"

#include <cmath>
#include <cstdio>

#include "rlaif/atomic_file.h"
#include "rlaif/error.h"
#include "rlaif/judge_eval.h"

namespace rlaif {

void judge_preflight(const TrainConfig& c, bool quiet) {
  if (c.judge_eval_labels.empty()) return;
  auto labelled = read_labelled(c.judge_eval_labels, /*need_label=*/true);
  JudgeEvalOptions o;
  o.threshold = c.integrity_judge_threshold;
  if (!c.judge_eval_injections.empty()) o.injections = read_completion_set(c.judge_eval_injections);
  if (!c.judge_eval_master_keys.empty()) o.master_keys = read_completion_set(c.judge_eval_master_keys);
  if (!quiet)
    std::fprintf(stderr, "train: pre-flight judge check on %zu labelled samples (%s)%s\n", labelled.size(),
                 c.judge_eval_labels.c_str(), o.injections.empty() ? "" : ", with the injection set");
  auto rep = evaluate_judge(c.judge, labelled, o);
  const std::string metric = choice_name(c.judge_agreement_metric, kAgreementMetrics);
  const double value = c.judge_agreement_metric == AgreementMetric::kAccuracy   ? rep.accuracy
                       : c.judge_agreement_metric == AgreementMetric::kSpearman ? rep.spearman
                       : c.judge_agreement_metric == AgreementMetric::kKendall  ? rep.kendall
                                                                                : rep.kappa;
  // With the gate on (minimum > 0), a judge that fails on most samples cannot vouch for itself either.
  const double judged_share = rep.samples ? static_cast<double>(rep.judged) / static_cast<double>(rep.samples) : 0;
  const bool agrees = c.judge_min_agreement <= 0 || (value >= c.judge_min_agreement && judged_share >= 0.5);
  // A judge that content-free or injected answers fool would teach the policy to write them.
  std::string fooled;
  auto limit = [&](const char* what, double v, double max, bool measured) {
    if (measured && v > max && fooled.empty())
      fooled = std::string(what) + " is " + std::to_string(v) + ", above " + std::to_string(max);
  };
  limit("master_key_false_positive_rate", rep.master_key_false_positive_rate, c.judge_max_false_positive_rate,
        rep.master_key_judged > 0);
  limit("injection_false_positive_rate", rep.injection_false_positive_rate, c.judge_max_false_positive_rate,
        rep.injection_fails > 0);
  limit("|injection_shift|", std::abs(rep.injection_shift), c.judge_max_injection_shift, rep.injection_pairs > 0);
  const bool passed = agrees && fooled.empty();
  auto j = rep.to_json();
  j["labels"] = c.judge_eval_labels;
  j["metric"] = metric;
  j["agreement"] = value;
  j["min_agreement"] = c.judge_min_agreement;
  j["max_false_positive_rate"] = c.judge_max_false_positive_rate;
  j["max_injection_shift"] = c.judge_max_injection_shift;
  j["threshold"] = o.threshold;
  j["passed"] = passed;
  write_file_atomic(c.output_dir + "/judge_validation.json", j.dump(2) + "\n");
  if (!quiet) {
    std::fprintf(stderr, "train: judge %s %.3f (minimum %.3f), spearman %.3f, kappa %.3f, %lld/%lld judged",
                 metric.c_str(), value, c.judge_min_agreement, rep.spearman, rep.kappa,
                 static_cast<long long>(rep.judged), static_cast<long long>(rep.samples));
    if (rep.injection_pairs > 0) std::fprintf(stderr, ", injection shift %+.3f", rep.injection_shift);
    if (rep.master_key_judged > 0)
      std::fprintf(stderr, ", master keys passed %.1f%%", 100 * rep.master_key_false_positive_rate);
    std::fprintf(stderr, "\n");
  }
  if (!fooled.empty())
    throw Error("the judge is fooled: " + fooled + " (report: " + c.output_dir + "/judge_validation.json)",
                c.judge_eval_labels,
                "the policy would learn to write answers that fool it: add a required content grader ([[graders]] "
                "type = \"content\", required = true), harden the rubric or template, train the judge on such "
                "failures, or, knowingly, raise train.judge_max_false_positive_rate / judge_max_injection_shift");
  if (!passed)
    throw Error("the judge's " + metric + " on " + std::to_string(rep.judged) + " of " + std::to_string(rep.samples) +
                    " labelled samples is " + std::to_string(value) + ", below train.judge_min_agreement = " +
                    std::to_string(c.judge_min_agreement) + " (report: " + c.output_dir + "/judge_validation.json)",
                c.judge_eval_labels,
                "a judge that disagrees with the labels would train the policy toward its mistakes: improve the judge "
                "(model, rubric, template) or, knowingly, lower train.judge_min_agreement");
}

}  // namespace rlaif
