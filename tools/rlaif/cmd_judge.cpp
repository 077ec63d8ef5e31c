// rlaif judge: score a JSONL file of {prompt, completion[, reference]} rows with the judge of judge.toml.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "rlaif/atomic_file.h"
#include "rlaif/error.h"
#include "rlaif/jsonl.h"
#include "rlaif/judge.h"
#include "rlaif/judge_eval.h"
#include "rlaif/judge_prompt.h"
#include "rlaif/progress.h"
#include "rlaif/verdict.h"

namespace rlaif_cli {
namespace {

struct JudgeArgs {
  std::string config, in, out;
  bool quiet = false, pairwise = false, group = false;
  // judge eval
  std::string labels, injections, master_keys, report;
  double threshold = 0.5, label_threshold = -1e300;
  int consistency = 1;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// An output row: the input row's own fields first (its id, metadata, anything but the texts judged), so results join
// back to the data, then "line" and what the judge says (added by the caller). An input field named like one of the
// judge's is kept as "input_<name>".
nlohmann::ordered_json output_row(const rlaif::JsonlRow& input, const std::vector<std::string>& judged) {
  static const std::vector<std::string> kOurs = {
      "line",   "ok",     "reward",    "judge_reward", "grades",  "judges", "scores", "rationale", "clamped", "failure",
      "detail", "cached", "latency_s", "winner",       "flipped", "first",  "second", "rewards",   "items"};
  nlohmann::ordered_json row = nlohmann::ordered_json::object();
  for (const auto& [k, v] : input.value.items()) {
    if (std::find(judged.begin(), judged.end(), k) != judged.end()) continue;
    row[std::find(kOurs.begin(), kOurs.end(), k) == kOurs.end() ? k : "input_" + k] = v;
  }
  row["line"] = input.line;
  return row;
}

// Pairwise and group judging grade on the judge's rubric only: a row's own would be silently ignored.
void refuse_row_rubric(const nlohmann::json& row, const std::string& where, const char* mode) {
  if (row.contains("rubric") || row.contains("checklist"))
    throw rlaif::Error(std::string("a row's own rubric or checklist is graded pointwise only, not with ") + mode, where,
                       "judge these rows without " + std::string(mode));
}

int run_judge(const JudgeArgs& a) {
  auto config = rlaif::JudgeConfig::from_toml(a.config);
  std::vector<rlaif::JudgeSample> samples;
  std::vector<rlaif::JsonlRow> inputs;
  for (auto& l : rlaif::read_labelled(a.in, false, &inputs)) samples.push_back(std::move(l.sample));
  rlaif::Judge judge(config);
  rlaif::Progress progress("judge", static_cast<int64_t>(samples.size()), "samples", !a.quiet);
  auto results = judge.judge(samples, [&](size_t, const rlaif::JudgeResult&) { progress.advance(); });
  progress.finish();

  std::string out;
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    nlohmann::ordered_json row = output_row(inputs[i], {"prompt", "completion", "reference"});
    row["ok"] = r.ok;
    if (r.ok) {
      row["reward"] = r.reward;
      if (!r.grades.empty() || !r.judge_rewards.empty()) row["judge_reward"] = r.verdict.reward;
      if (!r.grades.empty()) row["grades"] = r.grades;
      if (!r.judge_rewards.empty()) row["judges"] = r.judge_rewards;
      row["scores"] = r.verdict.scores;
      if (samples[i].rubric) row["items"] = rlaif::rubric_items(*samples[i].rubric, r.verdict.scores);
      row["rationale"] = r.verdict.rationale;
      if (!r.verdict.clamped.empty()) row["clamped"] = r.verdict.clamped;
    } else {
      row["failure"] = r.failure;
      row["detail"] = r.detail;
    }
    row["cached"] = r.cached;
    row["latency_s"] = r.latency_s;
    out += row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  rlaif::write_file_atomic(a.out, out);

  // Summary: mean per criterion, failures by cause, cache hits, latency, tokens and cost (of the whole panel).
  const auto st = judge.total_stats();
  std::map<std::string, std::pair<double, int>> sums;
  for (const auto& r : results)
    if (r.ok)
      for (const auto& [k, v] : r.verdict.scores) sums[k].first += v, ++sums[k].second;
  std::fprintf(stderr, "judge: %lld judged, %lld ok, %lld failed, %lld from cache\n", static_cast<long long>(st.judged),
               static_cast<long long>(st.ok), static_cast<long long>(st.failed), static_cast<long long>(st.cache_hits));
  for (const auto& [k, s] : sums) std::fprintf(stderr, "  mean %-12s %.3f\n", k.c_str(), s.first / s.second);
  for (const auto& [k, n] : st.failures)
    std::fprintf(stderr, "  failed %-12s %lld\n", k.c_str(), static_cast<long long>(n));
  std::fprintf(stderr, "  latency p50 %.3fs p95 %.3fs; tokens in %lld out %lld; cost %.6f\n",
               percentile(st.latencies, 0.5), percentile(st.latencies, 0.95), static_cast<long long>(st.prompt_tokens),
               static_cast<long long>(st.completion_tokens), st.cost);
  if (const rlaif::HttpStats* http = judge.http_stats())
    for (const auto& [cause, n] : http->retried_causes)
      std::fprintf(stderr, "  retried %-11s %lld\n", cause.c_str(), static_cast<long long>(n));
  if (const rlaif::HttpStats* http = judge.http_stats(); http && http->endpoints.size() > 1)
    for (const auto& e : http->endpoints)  // a pool: each server's share
      std::fprintf(stderr, "  server %s: %lld requests, %lld failed, mean %.3fs%s\n", e.url.c_str(),
                   static_cast<long long>(e.attempts), static_cast<long long>(e.failures),
                   e.ended ? e.latency_s / e.ended : 0.0, e.circuit_opened ? ", ejected" : "");
  return st.failed > 0 ? 4 : 0;
}

// rlaif judge --pairwise: rows {prompt, completion_a, completion_b, reference?}, both orders, flips are ties.
int run_pairwise(const JudgeArgs& a) {
  auto config = rlaif::JudgeConfig::from_toml(a.config);
  std::vector<rlaif::PairSample> pairs;
  std::vector<rlaif::JsonlRow> inputs;
  for (const auto& r : rlaif::read_jsonl(a.in)) {
    std::string where = a.in + ":" + std::to_string(r.line);
    const auto& v = r.value;
    if (!r.error.empty() || !v.is_object() || !v.contains("prompt") || !v["prompt"].is_string() ||
        !v.contains("completion_a") || !v["completion_a"].is_string() || !v.contains("completion_b") ||
        !v["completion_b"].is_string())
      throw rlaif::Error("pairwise rows need string \"prompt\", \"completion_a\" and \"completion_b\"", where,
                         r.error.empty() ? "add the missing field" : r.error);
    refuse_row_rubric(v, where, "--pairwise");
    pairs.push_back({v["prompt"], v["completion_a"], v["completion_b"], v.value("reference", "")});
    inputs.push_back(r);
  }
  rlaif::Judge judge(config);
  rlaif::Progress progress("judge pairs", static_cast<int64_t>(pairs.size()), "pairs", !a.quiet);
  auto results = judge.compare(pairs, [&](size_t, const rlaif::PairResult&) { progress.advance(); });
  progress.finish();
  std::string out;
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    nlohmann::ordered_json row = output_row(inputs[i], {"prompt", "completion_a", "completion_b", "reference"});
    row["ok"] = r.ok;
    if (r.ok) {
      row["winner"] = r.winner;
      row["flipped"] = r.flipped;
      row["first"] = r.first;
      row["second"] = r.second;
      row["rationale"] = r.rationale;
    } else {
      row["failure"] = r.failure;
      row["detail"] = r.detail;
    }
    out += row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  rlaif::write_file_atomic(a.out, out);
  const auto& st = judge.stats();
  std::fprintf(stderr, "judge: %lld pairs, %lld judged in both orders, flip rate %.3f\n",
               static_cast<long long>(st.pairs), static_cast<long long>(st.pairs_ok),
               st.pairs_ok ? static_cast<double>(st.flips) / st.pairs_ok : 0.0);
  for (const auto& [k, n] : st.failures)
    std::fprintf(stderr, "  failed %-12s %lld\n", k.c_str(), static_cast<long long>(n));
  return st.pairs_ok < st.pairs ? 4 : 0;
}

// rlaif judge --group: rows {prompt, completions: [...], reference?}; all completions of a row in one judge call.
int run_group(const JudgeArgs& a) {
  auto config = rlaif::JudgeConfig::from_toml(a.config);
  std::vector<rlaif::GroupSample> groups;
  std::vector<rlaif::JsonlRow> inputs;
  for (const auto& r : rlaif::read_jsonl(a.in)) {
    std::string where = a.in + ":" + std::to_string(r.line);
    const auto& v = r.value;
    bool ok = r.error.empty() && v.is_object() && v.contains("prompt") && v["prompt"].is_string() &&
              v.contains("completions") && v["completions"].is_array() && v["completions"].size() >= 2;
    if (ok)
      for (const auto& c : v["completions"]) ok = ok && c.is_string();
    if (!ok)
      throw rlaif::Error(
          "group rows need a string \"prompt\" and \"completions\", a list of at least 2 strings", where,
          r.error.empty() ? "e.g. {\"prompt\": \"...\", \"completions\": [\"a\", \"b\", \"c\"]}" : r.error);
    refuse_row_rubric(v, where, "--group");
    groups.push_back({v["prompt"], v["completions"].get<std::vector<std::string>>(), v.value("reference", "")});
    inputs.push_back(r);
  }
  rlaif::Judge judge(config);
  auto results = judge.rank(groups);
  std::string out;
  int64_t failed = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    nlohmann::ordered_json row = output_row(inputs[i], {"prompt", "completions", "reference"});
    row["ok"] = r.ok;
    if (r.ok) {
      row["scores"] = r.scores;
      row["rewards"] = r.rewards;
      row["rationale"] = r.rationale;
    } else {
      row["failure"] = r.failure;
      row["detail"] = r.detail;
      ++failed;
    }
    row["latency_s"] = r.latency_s;
    out += row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  rlaif::write_file_atomic(a.out, out);
  std::fprintf(stderr, "judge: %zu groups ranked, %lld failed\n", results.size(), static_cast<long long>(failed));
  for (const auto& [k, n] : judge.stats().failures)
    std::fprintf(stderr, "  failed %-12s %lld\n", k.c_str(), static_cast<long long>(n));
  return failed > 0 ? 4 : 0;
}

int run_judge_eval(const JudgeArgs& a) {
  auto config = rlaif::JudgeConfig::from_toml(a.config);
  auto labelled = rlaif::read_labelled(a.labels, true);
  rlaif::JudgeEvalOptions o;
  o.threshold = a.threshold;
  o.label_threshold = a.label_threshold;
  o.consistency = a.consistency;
  o.pairwise = a.pairwise;
  if (!a.injections.empty()) o.injections = rlaif::read_completion_set(a.injections);
  if (!a.master_keys.empty()) o.master_keys = rlaif::read_completion_set(a.master_keys);
  auto rep = rlaif::evaluate_judge(config, labelled, o);
  std::string text = rep.to_json().dump(2);
  if (!a.report.empty()) rlaif::write_file_atomic(a.report, text + "\n");
  std::printf("%s\n", text.c_str());
  return 0;
}

// rlaif judge render: the judge's chat messages for each row, exactly as a judge model receives them, plus the verdict
// as the assistant's answer when the row carries its scores — `rlaif sft` data for training a judge model.
int run_judge_render(const JudgeArgs& a) {
  auto config = rlaif::JudgeConfig::from_toml(a.config);
  std::string out;
  int64_t with_verdict = 0, rows = 0;
  for (const auto& r : rlaif::read_jsonl(a.in)) {
    std::string where = a.in + ":" + std::to_string(r.line);
    const auto& v = r.value;
    if (!r.error.empty() || !v.is_object() || !v.contains("prompt") || !v["prompt"].is_string() ||
        !v.contains("completion") || !v["completion"].is_string())
      throw rlaif::Error(
          "row needs string \"prompt\" and \"completion\"", where,
          r.error.empty() ? "rows look like {\"prompt\": ..., \"completion\": ..., \"label\": 1}" : r.error);
    rlaif::JudgeSample sample{v["prompt"], v["completion"], v.value("reference", ""), rlaif::read_row_rubric(v, where)};
    const rlaif::Rubric& rubric = rlaif::judged_on(sample, config.rubric);
    auto messages = rlaif::render_judge_prompt(config.tmpl, config.rubric, sample).to_openai();
    std::map<std::string, double> scores;
    if (v.contains("scores")) {
      if (!v["scores"].is_object()) throw rlaif::Error("\"scores\" must be an object {criterion: score}", where);
      for (auto it = v["scores"].begin(); it != v["scores"].end(); ++it) {
        if (!it.value().is_number()) throw rlaif::Error("score of \"" + it.key() + "\" is not a number", where);
        scores[it.key()] = it.value().get<double>();
      }
    } else if (v.contains("label")) {
      if (!(v["label"].is_number() || v["label"].is_boolean()))
        throw rlaif::Error("\"label\" must be a number or a boolean", where);
      // A label scores every criterion alike: 1/true is each scale's top, 0/false its bottom, other numbers as given.
      const double label = v["label"].is_boolean() ? (v["label"].get<bool>() ? 1 : 0) : v["label"].get<double>();
      for (const auto& c : rubric.criteria) scores[c.name] = v["label"].is_boolean() ? (label ? c.max : c.min) : label;
    }
    if (!scores.empty()) {
      for (const auto& c : rubric.criteria) {
        auto it = scores.find(c.name);
        if (it == scores.end())
          throw rlaif::Error("no score for criterion \"" + c.name + "\"", where, "add it to \"scores\"");
        if (it->second < c.min || it->second > c.max)
          throw rlaif::Error("score " + std::to_string(it->second) + " of \"" + c.name + "\" is outside its scale [" +
                                 std::to_string(c.min) + ", " + std::to_string(c.max) + "]",
                             where);
      }
      messages.push_back(
          {{"role", "assistant"}, {"content", rlaif::format_verdict(rubric, scores, v.value("rationale", ""))}});
      ++with_verdict;
    }
    ++rows;
    out +=
        nlohmann::json({{"messages", messages}}).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  rlaif::write_file_atomic(a.out, out);
  std::fprintf(stderr, "judge render: %lld rows (%lld with a verdict) -> %s\n", static_cast<long long>(rows),
               static_cast<long long>(with_verdict), a.out.c_str());
  return 0;
}

}  // namespace

Run add_judge(CLI::App& app) {
  auto a = std::make_shared<JudgeArgs>();
  app.footer(
      "Input rows: {\"prompt\": ..., \"completion\": ..., \"reference\": ... (optional), \"rubric\" or "
      "\"checklist\": [items] (optional: the row's own criteria, 1-10 each, or yes/no questions)}. Output rows: line, "
      "ok, reward (weighted rubric score in [0, 1]), scores (and items, for a row's own), rationale, or failure and "
      "detail; cached, latency_s. A failed "
      "judgment is reported as failed, never scored. Exit code 4 when some judgments failed. See docs/config.md for "
      "judge.toml.");
  app.add_option("--config", a->config, "judge.toml: [judge] endpoint and limits, [rubric], [template]");
  app.add_option("--in", a->in, "JSONL rows to judge");
  app.add_option("--out", a->out, "JSONL results, written atomically");
  app.add_flag("--quiet", a->quiet, "no progress bar");
  app.add_flag("--pairwise", a->pairwise,
               "rows {prompt, completion_a, completion_b}: which is better, asked in both orders (a verdict that flips "
               "with the order is a tie); prints the flip rate");
  app.add_flag("--group", a->group,
               "rows {prompt, completions: [...]}: all completions of a row scored in one judge call (group ranking); "
               "output rows carry scores and rewards per completion");
  auto* eval =
      app.add_subcommand("eval", "agreement of the judge with labels, length bias, consistency, injection shift");
  eval->add_option("--config", a->config, "judge.toml")->required();
  eval->add_option("--labels", a->labels, "JSONL rows {prompt, completion, reference?, label}")->required();
  eval->add_option("--threshold", a->threshold, "reward >= threshold is a pass")->capture_default_str();
  eval->add_option("--label-threshold", a->label_threshold,
                   "label >= this is a pass (default: midpoint of the labels)");
  eval->add_option("--consistency", a->consistency, "judge every sample K times (no cache) and report the spread")
      ->capture_default_str();
  eval->add_option("--injections", a->injections,
                   "JSONL rows {completion}: texts appended to every completion; "
                   "reports the reward shift they cause (e.g. tests/data/judge_injections.jsonl)");
  eval->add_option("--report", a->report, "also write the report (JSON) to this file");
  eval->add_option("--master-keys", a->master_keys,
                   "JSONL {completion} rows of answers without content that fool judges (\":\", \"Thought "
                   "process:\", \"{prompt}\" said back, ...); each is judged as the answer to every prompt of the "
                   "labelled set; reports master_key_false_positive_rate, the share judged a pass (e.g. "
                   "tests/data/judge_master_keys.jsonl)");
  eval->add_flag("--pairwise", a->pairwise,
                 "also compare completions of one prompt with different labels, in both orders: reports the flip "
                 "rate (verdicts that change with the order) and pairwise accuracy");
  auto* render = app.add_subcommand(
      "render",
      "the judge prompt of each row as chat messages, with the verdict as the answer where the row has "
      "\"label\" or \"scores\": SFT data for training a judge model (rlaif sft)");
  render->add_option("--config", a->config, "judge.toml ([rubric], [template])")->required();
  render->add_option("--in", a->in, "JSONL rows {prompt, completion, reference?, label? | scores?, rationale?}")
      ->required();
  render->add_option("--out", a->out, "JSONL rows {messages}, written atomically")->required();
  return [a, eval, render]() {
    if (*eval) return run_judge_eval(*a);
    if (*render) return run_judge_render(*a);
    if (a->config.empty() || a->in.empty() || a->out.empty())
      throw CLI::RequiredError("rlaif judge needs --config, --in and --out (or the eval subcommand)");
    if (a->pairwise && a->group) throw CLI::ValidationError("--pairwise and --group", "choose one mode");
    return a->pairwise ? run_pairwise(*a) : a->group ? run_group(*a) : run_judge(*a);
  };
}

}  // namespace rlaif_cli
