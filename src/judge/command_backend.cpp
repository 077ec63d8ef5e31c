#include "judge/command_backend.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/subprocess.h"

namespace rlaif {
namespace {

void fail_all(std::vector<JudgeResult>& results, const std::string& cause, const std::string& detail) {
  for (auto& r : results) {
    r.ok = false;
    r.failure = cause;
    r.detail = detail;
  }
}

}  // namespace

void read_command_output(const std::string& out, std::vector<JudgeResult>& results) {
  nlohmann::json j;
  try {  // a number past a double's range throws out_of_range even without exceptions for syntax errors
    j = nlohmann::json::parse(out, nullptr, false);
    if (j.is_object() && j.contains("body")) j = j["body"];  // a Lambda-style {"statusCode", "body"} wrapper
    if (j.is_string()) j = nlohmann::json::parse(j.get<std::string>(), nullptr, false);
  } catch (const nlohmann::json::exception& e) {
    return fail_all(results, "bad_response", std::string("the command's stdout is not valid JSON: ") + e.what());
  }
  if (!j.is_array())
    return fail_all(results, "bad_response", "the command's stdout is not a JSON list: " + out.substr(0, 200));
  for (auto& r : results) r.failure = "missing_score", r.detail = "the command returned no result for this id";
  std::vector<bool> seen(results.size(), false);
  for (const auto& row : j) {
    if (!row.is_object() || !row.contains("id")) continue;
    std::string id = row["id"].is_string() ? row["id"].get<std::string>() : row["id"].dump();
    char* end = nullptr;
    unsigned long i = std::strtoul(id.c_str(), &end, 10);
    if (id.empty() || !end || *end || i >= results.size()) continue;
    JudgeResult& r = results[i];
    r.reply = row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (seen[i]) {  // two answers for one sample: neither can be trusted
      r.ok = false;
      r.verdict = Verdict();
      r.failure = "bad_response";
      r.detail = "the command returned id " + id + " more than once";
      continue;
    }
    seen[i] = true;
    if (!row.contains("aggregate_reward_score") || !row["aggregate_reward_score"].is_number()) {
      r.failure = "non_numeric_score";
      r.detail = "aggregate_reward_score is missing or not a number";
      continue;
    }
    r.ok = true;
    r.failure.clear();
    r.detail.clear();
    r.verdict.ok = true;
    r.verdict.reward = row["aggregate_reward_score"].get<double>();
    if (row.contains("metrics_list") && row["metrics_list"].is_array())
      for (const auto& m : row["metrics_list"])
        if (m.is_object() && m.contains("name") && m["name"].is_string() && m.contains("value") &&
            m["value"].is_number())
          r.verdict.scores[m["name"].get<std::string>()] = m["value"].get<double>();
  }
}

void run_command_batch(const std::vector<std::string>& argv, double timeout_s, const std::vector<JudgeSample>& samples,
                       std::vector<JudgeResult>& results) {
  results.assign(samples.size(), JudgeResult());
  nlohmann::json batch = nlohmann::json::array();
  for (size_t i = 0; i < samples.size(); ++i) {
    nlohmann::json row = {{"id", std::to_string(i)},
                          {"messages",
                           {{{"role", "user"}, {"content", samples[i].prompt}},
                            {{"role", "assistant"}, {"content", samples[i].completion}}}},
                          {"metadata", nlohmann::json::object()}};
    if (!samples[i].reference.empty()) row["reference_answer"] = samples[i].reference;
    if (const auto& own = samples[i].rubric) {  // the data row's own items: the command answers per item name
      nlohmann::json items = rubric_items(*own, {});
      for (size_t k = 0; k < items.size(); ++k)
        items[k]["min"] = own->criteria[k].min, items[k]["max"] = own->criteria[k].max;
      row["rubric"] = {{"kind", rubric_kind(own.get())}, {"items", items}};
    }
    batch.push_back(row);
  }
  const std::string input = batch.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const ProcessResult run = run_process(argv, input, timeout_s);
  for (auto& r : results) r.latency_s = run.latency_s, r.attempts = 1;
  if (!run.failure.empty()) return fail_all(results, "command_failed", run.failure);
  if (run.timed_out)
    return fail_all(results, "command_timeout", "the command ran past " + std::to_string(timeout_s) + " s");
  if (run.exit_status != 0)
    return fail_all(results, "command_failed",
                    "the command exited with status " + std::to_string(run.exit_status) + ": " + tail_of(run.err));
  read_command_output(run.out, results);
}

void CommandBackend::score(const std::vector<JudgeSample>& samples, const Done& done, const std::function<bool()>&) {
  const size_t per_batch = static_cast<size_t>(config_.command_batch);
  for (size_t start = 0; start < samples.size(); start += per_batch) {
    const size_t end = std::min(samples.size(), start + per_batch);
    std::vector<JudgeSample> batch(samples.begin() + start, samples.begin() + end);
    std::vector<JudgeResult> out;
    run_command_batch(config_.command, config_.command_timeout_s, batch, out);
    for (size_t k = start; k < end; ++k) done(k, std::move(out[k - start]), nlohmann::json());
  }
}

}  // namespace rlaif
