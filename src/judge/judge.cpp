#include "rlaif/judge.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <filesystem>
#include <thread>
#include <fstream>
#include <nlohmann/json.hpp>

#include "judge/command_backend.h"
#include "judge/local_backend.h"
#include "judge/judge_cache.h"
#include "rlaif/error.h"
#include "rlaif/sha256.h"

namespace rlaif {
namespace {

using json = nlohmann::json;

json result_to_json(const JudgeResult& r) {
  return {{"ok", r.ok}, {"failure", r.failure}, {"detail", r.detail}, {"scores", r.verdict.scores},
          {"reward", r.verdict.reward}, {"rationale", r.verdict.rationale}, {"clamped", r.verdict.clamped},
          {"prompt_tokens", r.prompt_tokens}, {"completion_tokens", r.completion_tokens}, {"cost", r.cost},
          {"latency_s", r.latency_s}, {"attempts", r.attempts}, {"reply", r.reply}};
}

JudgeResult result_from_json(const json& j) {
  JudgeResult r;
  r.ok = j.value("ok", false);
  r.failure = j.value("failure", "");
  r.detail = j.value("detail", "");
  r.verdict.ok = r.ok;
  r.verdict.scores = j.value("scores", std::map<std::string, double>{});
  r.verdict.reward = j.value("reward", 0.0);
  r.verdict.rationale = j.value("rationale", "");
  r.verdict.clamped = j.value("clamped", std::vector<std::string>{});
  r.reply = j.value("reply", "");
  return r;
}

// The reply text, token counts and failure of an OpenAI chat completion body.
void read_openai_reply(const std::string& body, JudgeResult& r) {
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    r.failure = "bad_response";
    r.detail = "the reply is not JSON: " + body.substr(0, 120);
    return;
  }
  if (j.contains("usage") && j["usage"].is_object()) {
    r.prompt_tokens = j["usage"].value("prompt_tokens", 0);
    r.completion_tokens = j["usage"].value("completion_tokens", 0);
  }
  if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty() ||
      !j["choices"][0].contains("message") || !j["choices"][0]["message"].contains("content") ||
      !j["choices"][0]["message"]["content"].is_string()) {
    r.failure = "bad_response";
    r.detail = "the reply has no choices[0].message.content: " + body.substr(0, 120);
    return;
  }
  r.reply = j["choices"][0]["message"]["content"].get<std::string>();
}

}  // namespace

Judge::Judge(JudgeConfig config) : config_(std::move(config)) {
  config_.validate("judge config");
  http_ = std::make_unique<HttpClient>(config_.http);
  if (!config_.cache_path.empty()) cache_ = std::make_unique<JudgeCache>(config_.cache_path);
  if (config_.backend == "local") local_ = std::make_unique<LocalJudge>(config_.model_path, config_.local_batch,
                                                                     config_.local_rationale_tokens);
  for (const auto& member : config_.panel) panel_.push_back(std::make_unique<Judge>(member));
}

Judge::~Judge() = default;

std::string Judge::cache_key(const JudgeSample& s) const {
  json material = {{"backend", config_.backend}, {"command", config_.command}, {"base_url", config_.base_url}, {"model", config_.model},
                   {"temperature", config_.temperature}, {"max_tokens", config_.max_tokens},
                   {"response_format", config_.response_format}, {"system", config_.tmpl.system},
                   {"user", config_.tmpl.user}, {"reference", config_.rubric.reference},
                   {"pass_fail", config_.rubric.pass_fail}, {"prompt", s.prompt}, {"completion", s.completion},
                   {"sample_reference", s.reference}};
  if (config_.backend == "local") {  // the folder's weights may change between runs: key on their size and time
    material["model_path"] = config_.model_path;
    for (const char* f : {"config.json", "model.safetensors", "model.safetensors.index.json"}) {
      std::error_code ec;
      auto p = std::filesystem::path(config_.model_path) / f;
      if (!std::filesystem::exists(p, ec)) continue;
      material["stamp"].push_back({f, std::filesystem::file_size(p, ec),
                                   std::filesystem::last_write_time(p, ec).time_since_epoch().count()});
    }
  }
  for (const auto& c : config_.rubric.criteria)
    material["criteria"].push_back({c.name, c.description, c.min, c.max, c.weight});
  return sha256_hex(material.dump());
}

void Judge::read_reply(const std::string& body, JudgeResult& r) {
  read_openai_reply(body, r);
  r.cost = (r.prompt_tokens * config_.price_input_per_million + r.completion_tokens * config_.price_output_per_million) / 1e6;
  stats_.prompt_tokens += r.prompt_tokens;
  stats_.completion_tokens += r.completion_tokens;
  stats_.cost += r.cost;
}

std::vector<std::string> Judge::auth_headers() const {
  std::vector<std::string> headers = config_.headers;
  if (!config_.api_key_env.empty()) {
    const char* key = std::getenv(config_.api_key_env.c_str());
    if (!key || !*key)
      throw Error("the environment variable " + config_.api_key_env + " (api_key_env) is empty", "judge config",
                  "export it, or remove api_key_env for servers without a key");
    headers.push_back(std::string("Authorization: Bearer ") + key);
  }
  return headers;
}

std::string Judge::request_body(const JudgeMessages& messages, const json& schema) const {
  json body = {{"model", config_.model}, {"messages", messages.to_openai()}, {"temperature", config_.temperature},
               {"max_tokens", config_.max_tokens}};
  if (config_.response_format == "json_object") body["response_format"] = {{"type", "json_object"}};
  if (config_.response_format == "json_schema")
    body["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "verdict"}, {"schema", schema}}}};
  if (config_.top_logprobs > 0) body["logprobs"] = true, body["top_logprobs"] = config_.top_logprobs;
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::vector<PairResult> Judge::compare(const std::vector<PairSample>& pairs,
                                       const std::function<void(size_t, const PairResult&)>& on_result) {
  if (config_.backend != "openai") throw Error("pairwise judging needs the openai backend", "judge config", "the " + config_.backend + " backend scores one completion at a time");
  if (!panel_.empty()) throw Error("a panel of judges judges pointwise only", "judge config: panel", "compare with one judge");
  std::vector<PairResult> results(pairs.size());
  std::vector<HttpRequest> requests;
  const json schema = {{"type", "object"},
                       {"properties", {{"rationale", {{"type", "string"}}}, {"winner", {{"enum", {"A", "B", "tie"}}}}}},
                       {"required", {"rationale", "winner"}}};
  auto headers = auth_headers();
  for (const auto& p : pairs)
    for (int order = 0; order < 2; ++order) {
      auto m = render_pairwise_prompt(config_.pairwise_tmpl, config_.rubric, p.prompt, order ? p.b : p.a,
                                      order ? p.a : p.b, p.reference);
      HttpRequest q;
      q.url = config_.base_url + "/chat/completions";
      q.body = request_body(m, schema);
      q.headers = headers;
      q.tokens = static_cast<double>(q.body.size()) / 4 + config_.max_tokens;
      requests.push_back(std::move(q));
    }
  std::vector<int> pending(pairs.size(), 2);
  std::vector<std::string> verdict(requests.size()), failure(requests.size()), detail(requests.size());
  std::ofstream journal;
  if (!config_.journal_path.empty()) journal.open(config_.journal_path, std::ios::app);
  http_->run(requests, [&](size_t k, HttpResponse&& resp) {
    size_t i = k / 2;
    PairResult& r = results[i];
    r.latency_s = std::max(r.latency_s, resp.latency_s);
    if (!resp.failure.empty()) {
      failure[k] = resp.failure, detail[k] = resp.detail;
    } else {
      JudgeResult reply;
      read_reply(resp.body, reply);
      if (!reply.failure.empty()) failure[k] = reply.failure, detail[k] = reply.detail;
      else verdict[k] = parse_pairwise(reply.reply, &failure[k], k % 2 == 0 ? &r.rationale : nullptr);
    }
    if (--pending[i] > 0) return;
    ++stats_.pairs;
    r.first = verdict[2 * i];
    r.second = verdict[2 * i + 1];
    for (size_t o : {2 * i, 2 * i + 1})
      if (!failure[o].empty() && r.failure.empty()) r.failure = failure[o], r.detail = detail[o];
    if (r.failure.empty()) {
      // The second request showed b as A: map both verdicts back to a/b.
      std::string w1 = r.first == "A" ? "a" : r.first == "B" ? "b" : "tie";
      std::string w2 = r.second == "A" ? "b" : r.second == "B" ? "a" : "tie";
      r.ok = true;
      r.flipped = w1 != w2;
      r.winner = r.flipped ? "tie" : w1;
      ++stats_.pairs_ok;
      stats_.flips += r.flipped;
    } else {
      ++stats_.failures[r.failure];
    }
    if (journal) {
      json line = {{"pairwise", true}, {"ok", r.ok}, {"winner", r.winner}, {"flipped", r.flipped},
                   {"first", r.first}, {"second", r.second}, {"failure", r.failure}, {"detail", r.detail},
                   {"rationale", r.rationale}, {"latency_s", r.latency_s}, {"model", config_.model}};
      journal << line.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
      journal.flush();
    }
    if (on_result) on_result(i, r);
  });
  return results;
}

std::vector<GroupResult> Judge::rank(const std::vector<GroupSample>& groups) {
  if (config_.backend != "openai") throw Error("group ranking needs the openai backend", "judge config");
  if (!panel_.empty()) throw Error("a panel of judges judges pointwise only", "judge config: panel", "rank with one judge");
  const Criterion& scale = config_.rubric.criteria[0];
  std::vector<GroupResult> results(groups.size());
  std::vector<HttpRequest> requests;
  auto headers = auth_headers();
  auto numbered = [&](size_t n) {  // one criterion per completion, named 1..n, on the scale
    Rubric r;
    for (size_t k = 0; k < n; ++k) r.criteria.push_back({std::to_string(k + 1), "", scale.min, scale.max, 1});
    return r;
  };
  for (const auto& g : groups) {
    // The completions as numbered blocks; the judge answers {"scores": {"1": n, "2": n, ...}}.
    JudgeSample all{g.prompt, "", g.reference};
    for (const auto& c : g.completions) all.completion += c + "\x1f";
    const std::string nonce = judge_nonce(all);
    std::string list;
    for (size_t k = 0; k < g.completions.size(); ++k)
      list += "Response " + std::to_string(k + 1) + ":\n" +
              quoted_block("response-" + std::to_string(k + 1), g.completions[k], nonce, config_.rubric) + "\n\n";
    std::string prompt_block = quoted_block("prompt", g.prompt, nonce, config_.rubric);
    std::string criteria, format = "{\"rationale\": \"<one or two sentences>\", \"scores\": {";
    for (size_t i = 0; i < config_.rubric.criteria.size(); ++i)
      criteria += "- " + config_.rubric.criteria[i].name + ": " + config_.rubric.criteria[i].description + "\n";
    for (size_t k = 0; k < g.completions.size(); ++k)
      format += std::string(k ? ", " : "") + "\"" + std::to_string(k + 1) + "\": <integer " +
                std::to_string(static_cast<int>(scale.min)) + "-" + std::to_string(static_cast<int>(scale.max)) + ">";
    format += "}}";
    JudgeMessages m{config_.tmpl.system,
                    "Prompt:\n" + prompt_block + "\n\n" + std::to_string(g.completions.size()) +
                        " responses to assess, each on its own:\n\n" + list + "Criteria:\n" + criteria +
                        "\nScore every response, then answer with only this JSON object and nothing else:\n" + format};
    HttpRequest q;
    q.url = config_.base_url + "/chat/completions";
    q.body = request_body(m, verdict_schema(numbered(g.completions.size())));
    q.headers = headers;
    q.tokens = static_cast<double>(q.body.size()) / 4 + config_.max_tokens;
    requests.push_back(std::move(q));
  }
  http_->run(requests, [&](size_t i, HttpResponse&& resp) {
    GroupResult& r = results[i];
    r.latency_s = resp.latency_s;
    if (!resp.failure.empty()) {
      r.failure = resp.failure, r.detail = resp.detail;
      ++stats_.failures[r.failure];
      return;
    }
    JudgeResult reply;
    read_reply(resp.body, reply);
    if (!reply.failure.empty()) {
      r.failure = reply.failure, r.detail = reply.detail;
      ++stats_.failures[r.failure];
      return;
    }
    Verdict v = parse_verdict(reply.reply, numbered(groups[i].completions.size()));
    if (!v.ok) {
      r.failure = v.failure, r.detail = v.detail;
      ++stats_.failures[r.failure];
      return;
    }
    r.ok = true;
    r.rationale = v.rationale;
    for (size_t k = 0; k < groups[i].completions.size(); ++k) {
      double s = v.scores[std::to_string(k + 1)];
      r.scores.push_back(s);
      r.rewards.push_back((s - scale.min) / (scale.max - scale.min));
    }
  });
  return results;
}

void Judge::apply_graders(const JudgeSample& s, JudgeResult& r, double judges_weight) const {
  if (!r.ok) return;  // a failed judgment stays failed: no partial reward
  for (const auto& g : config_.graders)
    r.grades[g.name] = g.grade(s.completion, s.reference.empty() ? config_.rubric.reference : s.reference);
  mix_reward(r, judges_weight);
}

void Judge::mix_reward(JudgeResult& r, double judges_weight) const {
  double total = judges_weight * r.verdict.reward, weights = judges_weight;
  for (const auto& g : config_.graders) {
    total += g.weight * r.grades.at(g.name);
    weights += g.weight;
  }
  r.reward = weights > 0 ? total / weights : 0;
}

JudgeStats Judge::total_stats() const {
  JudgeStats t = stats_;
  for (const auto& j : panel_) {
    t.prompt_tokens += j->stats().prompt_tokens;
    t.completion_tokens += j->stats().completion_tokens;
    t.cost += j->stats().cost;
  }
  return t;
}

std::vector<JudgeResult> Judge::judge(const std::vector<JudgeSample>& samples,
                                      const std::function<void(size_t, const JudgeResult&)>& on_result) {
  if (panel_.empty()) return judge_alone(samples, on_result);
  // Every judge of the panel scores all samples at the same time as this one, each on its own thread (its own
  // connections, cache and journal).
  std::vector<std::vector<JudgeResult>> theirs(panel_.size());
  std::vector<std::exception_ptr> errors(panel_.size() + 1);
  std::vector<std::thread> threads;
  for (size_t j = 0; j < panel_.size(); ++j)
    threads.emplace_back([&, j] {
      try {
        theirs[j] = panel_[j]->judge(samples);
      } catch (...) {
        errors[j + 1] = std::current_exception();
      }
    });
  std::vector<JudgeResult> results;
  try {
    results = judge_alone(samples, {});
  } catch (...) {
    errors[0] = std::current_exception();
  }
  for (auto& t : threads) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  for (size_t i = 0; i < samples.size(); ++i) {
    std::vector<const JudgeResult*> verdicts;
    for (const auto& t : theirs) verdicts.push_back(&t[i]);
    combine_panel(verdicts, results[i]);
    if (on_result) on_result(i, results[i]);
  }
  return results;
}

void Judge::combine_panel(const std::vector<const JudgeResult*>& theirs, JudgeResult& r) {
  for (size_t j = 0; j < panel_.size() && r.ok; ++j) {
    if (theirs[j]->ok) continue;
    r.ok = false;  // judge_alone counted it ok: recount it as the failure it now is
    r.failure = theirs[j]->failure;
    r.detail = "judge \"" + panel_[j]->config().name + "\": " + theirs[j]->detail;
    --stats_.ok, ++stats_.failed, ++stats_.failures[r.failure];
  }
  if (!r.ok) return;
  const double own = own_weight();
  double total = own * r.verdict.reward, weights = own;
  if (own > 0) r.judge_rewards[config_.name] = r.verdict.reward;
  for (size_t j = 0; j < panel_.size(); ++j) {
    const JudgeResult& t = *theirs[j];
    const std::string& name = panel_[j]->config().name;
    const double w = panel_[j]->config().judge_weight;
    r.judge_rewards[name] = t.verdict.reward;
    for (const auto& [criterion, score] : t.verdict.scores) r.verdict.scores[name + "/" + criterion] = score;
    if (!t.verdict.rationale.empty())
      r.verdict.rationale += (r.verdict.rationale.empty() ? "" : "\n") + name + ": " + t.verdict.rationale;
    total += w * t.verdict.reward;
    weights += w;
    r.latency_s = std::max(r.latency_s, t.latency_s);
    r.prompt_tokens += t.prompt_tokens, r.completion_tokens += t.completion_tokens, r.cost += t.cost;
  }
  r.verdict.reward = total / weights;  // validate() keeps weights > 0
  mix_reward(r, weights);  // the graders graded the sample already (judge_alone)
}

std::vector<JudgeResult> Judge::judge_alone(const std::vector<JudgeSample>& samples,
                                            const std::function<void(size_t, const JudgeResult&)>& on_result) {
  std::vector<JudgeResult> results(samples.size());
  std::ofstream journal;
  if (!config_.journal_path.empty()) {
    journal.open(config_.journal_path, std::ios::app);
    if (!journal) throw Error("cannot append to the judge journal", config_.journal_path, "check the path");
  }
  auto record = [&](size_t i, const std::string& key, const json& request) {
    JudgeResult& r = results[i];
    ++stats_.judged;
    if (r.ok) ++stats_.ok;
    else ++stats_.failed, ++stats_.failures[r.failure];
    if (r.cached) ++stats_.cache_hits;
    else stats_.latencies.push_back(r.latency_s);
    if (journal) {
      json line = result_to_json(r);
      line["time"] = static_cast<double>(std::time(nullptr));
      line["key"] = key;
      line["cached"] = r.cached;
      line["model"] = config_.model;
      if (!config_.graders.empty()) line["grades"] = r.grades, line["combined_reward"] = r.reward;
      if (!r.cached) line["request"] = request;  // the messages; headers (and so the API key) are never written
      journal << line.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
      journal.flush();
    }
    if (on_result) on_result(i, r);
  };

  if (config_.backend == "none") {  // rule graders only: every sample is graded, nothing can fail
    for (size_t i = 0; i < samples.size(); ++i) {
      results[i].ok = true;
      apply_graders(samples[i], results[i], own_weight());
      record(i, "", json());
    }
    return results;
  }

  // Cache hits answer at once; the rest become HTTP requests.
  std::vector<std::string> keys(samples.size());
  std::vector<json> bodies(samples.size());
  std::vector<HttpRequest> requests;
  std::vector<size_t> request_sample;
  std::vector<std::string> headers = auth_headers();
  for (size_t i = 0; i < samples.size(); ++i) {
    keys[i] = cache_key(samples[i]);
    if (cache_) {
      if (auto hit = cache_->get(keys[i])) {
        auto j = json::parse(*hit, nullptr, false);
        if (j.is_object()) {
          results[i] = result_from_json(j);
          results[i].cached = true;
          apply_graders(samples[i], results[i], own_weight());
          record(i, keys[i], json());
          continue;
        }
      }
    }
    if (config_.backend == "command" || config_.backend == "local") {
      request_sample.push_back(i);  // scored by the command or the local model below
      continue;
    }
    auto messages = render_judge_prompt(config_.tmpl, config_.rubric, samples[i]);
    bodies[i] = {{"messages", messages.to_openai()}};
    HttpRequest q;
    q.url = config_.base_url + "/chat/completions";
    q.body = request_body(messages, verdict_schema(config_.rubric));
    q.headers = headers;
    q.tokens = static_cast<double>(q.body.size()) / 4 + config_.max_tokens;  // rough estimate for rate limits
    requests.push_back(std::move(q));
    request_sample.push_back(i);
  }

  if (config_.backend == "local") {
    std::vector<JudgeMessages> prompts;
    for (size_t i : request_sample) prompts.push_back(render_judge_prompt(config_.tmpl, config_.rubric, samples[i]));
    std::vector<JudgeResult> out(prompts.size());
    auto t0 = std::chrono::steady_clock::now();
    local_->score(prompts, config_.rubric, out);
    const double per = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / std::max<size_t>(1, out.size());
    for (size_t k = 0; k < request_sample.size(); ++k) {
      size_t i = request_sample[k];
      results[i] = std::move(out[k]);
      results[i].latency_s = per;
      if (results[i].ok && cache_) cache_->put(keys[i], result_to_json(results[i]).dump(-1, ' ', false, json::error_handler_t::replace));
      apply_graders(samples[i], results[i], own_weight());
      record(i, keys[i], json());
    }
    return results;
  }
  if (config_.backend == "command") {
    for (size_t start = 0; start < request_sample.size(); start += static_cast<size_t>(config_.command_batch)) {
      size_t end = std::min(request_sample.size(), start + static_cast<size_t>(config_.command_batch));
      std::vector<JudgeSample> batch;
      for (size_t k = start; k < end; ++k) batch.push_back(samples[request_sample[k]]);
      std::vector<JudgeResult> out;
      run_command_batch(config_.command, config_.command_timeout_s, batch, out);
      for (size_t k = start; k < end; ++k) {
        size_t i = request_sample[k];
        results[i] = std::move(out[k - start]);
        if (results[i].ok && cache_) cache_->put(keys[i], result_to_json(results[i]).dump(-1, ' ', false, json::error_handler_t::replace));
        apply_graders(samples[i], results[i], own_weight());
        record(i, keys[i], json());
      }
    }
    return results;
  }
  auto within_budget = [&]() {
    int64_t tokens = stats_.prompt_tokens + stats_.completion_tokens;
    return (config_.budget_tokens <= 0 || tokens < config_.budget_tokens) &&
           (config_.budget_cost <= 0 || stats_.cost < config_.budget_cost);
  };
  http_->run(
      requests,
      [&](size_t k, HttpResponse&& resp) {
        size_t i = request_sample[k];
        JudgeResult& r = results[i];
        r.latency_s = resp.latency_s;
        r.attempts = resp.attempts;
        if (!resp.failure.empty()) {
          r.failure = resp.failure == "stopped" ? "budget_exhausted" : resp.failure;
          r.detail = resp.detail;
        } else {
          read_reply(resp.body, r);
          if (r.failure.empty()) {
            r.verdict = parse_verdict(r.reply, config_.rubric);
            if (r.verdict.ok) {
              r.ok = true;
            } else {
              r.failure = r.verdict.failure;
              r.detail = r.verdict.detail;
            }
          }
        }
        if (r.ok && cache_) cache_->put(keys[i], result_to_json(r).dump(-1, ' ', false, json::error_handler_t::replace));
        apply_graders(samples[i], r, own_weight());
        record(i, keys[i], bodies[i]["messages"]);
      },
      within_budget);
  return results;
}

}  // namespace rlaif
