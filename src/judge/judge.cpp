#include "rlaif/judge.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "core/sha256.h"
#include "judge/judge_cache.h"
#include "judge/openai_chat.h"
#include "rlaif/error.h"
#include "rlaif/judge_backend.h"
#include "rlaif/rewards.h"

namespace rlaif {
namespace {

using json = nlohmann::json;

json result_to_json(const JudgeResult& r) {
  return {{"ok", r.ok},
          {"failure", r.failure},
          {"detail", r.detail},
          {"scores", r.verdict.scores},
          {"reward", r.verdict.reward},
          {"rationale", r.verdict.rationale},
          {"clamped", r.verdict.clamped},
          {"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"cost", r.cost},
          {"latency_s", r.latency_s},
          {"attempts", r.attempts},
          {"reply", r.reply}};
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

}  // namespace

Judge::Judge(JudgeConfig config) : config_(std::move(config)) {
  config_.validate("judge config");
  if (config_.backend == "openai") {  // pairwise and group judging speak to the same server through the same client
    chat_ = std::make_shared<OpenAiChat>(config_);
    backend_ = std::make_unique<OpenAiBackend>(config_, chat_);
  } else {
    backend_ = make_judge_backend(config_);
  }
  if (!config_.cache_path.empty()) cache_ = std::make_unique<JudgeCache>(config_.cache_path);
  for (const auto& member : config_.panel) panel_.push_back(std::make_unique<Judge>(member));
}

Judge::~Judge() = default;

const HttpStats* Judge::http_stats() const { return chat_ ? &chat_->http().stats() : nullptr; }

std::string Judge::cache_key(const JudgeSample& s) const {
  // One server: its URL, as before pools existed (caches stay valid). A pool: its URLs in any order.
  auto pool = config_.base_urls;
  std::sort(pool.begin(), pool.end());
  json material = {{"backend", config_.backend},
                   {"command", config_.command},
                   {"base_url", pool.size() == 1 ? json(pool[0]) : json(pool)},
                   {"model", config_.model},
                   {"temperature", config_.temperature},
                   {"max_tokens", config_.max_tokens},
                   {"response_format", choice_name(config_.response_format, kResponseFormats)},
                   {"system", config_.tmpl.system},
                   {"user", config_.tmpl.user},
                   {"reference", config_.rubric.reference},
                   {"pass_fail", config_.rubric.pass_fail},
                   {"prompt", s.prompt},
                   {"completion", s.completion},
                   {"sample_reference", s.reference}};
  backend_->add_cache_material(material);
  for (const auto& c : judged_on(s, config_.rubric).criteria)
    material["criteria"].push_back({c.name, c.description, c.min, c.max, c.weight});
  if (s.rubric) material["row_rubric"] = rubric_kind(s.rubric.get());
  return sha256_hex(material.dump());
}

double Judge::own_weight() const { return backend_->has_verdict() ? config_.judge_weight : 0.0; }

void Judge::count_usage(const JudgeResult& r) {
  stats_.prompt_tokens += r.prompt_tokens;
  stats_.completion_tokens += r.completion_tokens;
  stats_.cost += r.cost;
}

bool Judge::within_budget() const {
  const int64_t tokens = stats_.prompt_tokens + stats_.completion_tokens;
  return (config_.budget_tokens <= 0 || tokens < config_.budget_tokens) &&
         (config_.budget_cost <= 0 || stats_.cost < config_.budget_cost);
}

std::vector<double> Judge::spend() const {
  std::vector<double> s = {double(stats_.prompt_tokens), double(stats_.completion_tokens), stats_.cost};
  for (const auto& j : panel_) {
    const JudgeStats& t = j->stats();  // panel judges have no panel of their own
    s.insert(s.end(), {double(t.prompt_tokens), double(t.completion_tokens), t.cost});
  }
  return s;
}

void Judge::restore_spend(const std::vector<double>& spent, double share) {
  auto put = [&](JudgeStats& t, size_t at) {
    if (at + 3 > spent.size()) return;  // a checkpoint of another panel: what it has
    t.prompt_tokens = std::llround(spent[at] * share);
    t.completion_tokens = std::llround(spent[at + 1] * share);
    t.cost = spent[at + 2] * share;
  };
  put(stats_, 0);
  for (size_t j = 0; j < panel_.size(); ++j) put(panel_[j]->stats_, 3 * (j + 1));
}

std::vector<PairResult> Judge::compare(const std::vector<PairSample>& pairs,
                                       const std::function<void(size_t, const PairResult&)>& on_result) {
  if (config_.backend != "openai")
    throw Error("pairwise judging needs the openai backend", "judge config",
                "the " + config_.backend + " backend scores one completion at a time");
  if (!panel_.empty())
    throw Error("a panel of judges judges pointwise only", "judge config: panel", "compare with one judge");
  std::vector<PairResult> results(pairs.size());
  std::vector<HttpRequest> requests;
  const json schema = {{"type", "object"},
                       {"properties", {{"rationale", {{"type", "string"}}}, {"winner", {{"enum", {"A", "B", "tie"}}}}}},
                       {"required", {"rationale", "winner"}}};
  for (const auto& p : pairs)
    for (int order = 0; order < 2; ++order) {
      auto m = render_pairwise_prompt(config_.pairwise_tmpl, config_.rubric, p.prompt, order ? p.b : p.a,
                                      order ? p.a : p.b, p.reference);
      requests.push_back(chat_->request(m, schema));
    }
  std::vector<int> pending(pairs.size(), 2);
  std::vector<std::string> verdict(requests.size()), failure(requests.size()), detail(requests.size());
  std::ofstream journal;
  if (!config_.journal_path.empty()) journal.open(config_.journal_path, std::ios::app);
  auto check = chat_->reply_check(
      [](size_t, const std::string& text) {
        std::string cause;
        parse_pairwise(text, &cause, nullptr);
        return cause;
      },
      [this](size_t, const JudgeResult& usage) { count_usage(usage); });
  chat_->http().run(
      requests,
      [&](size_t k, HttpResponse&& resp) {
        size_t i = k / 2;
        PairResult& r = results[i];
        r.latency_s = std::max(r.latency_s, resp.latency_s);
        if (!resp.failure.empty()) {
          failure[k] = resp.failure == "stopped" ? "budget_exhausted" : resp.failure, detail[k] = resp.detail;
        } else {
          JudgeResult reply;
          chat_->read_reply(resp.body, reply);
          count_usage(reply);
          if (!reply.failure.empty())
            failure[k] = reply.failure, detail[k] = reply.detail;
          else
            verdict[k] = parse_pairwise(reply.reply, &failure[k], k % 2 == 0 ? &r.rationale : nullptr);
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
          json line = {{"pairwise", true},         {"ok", r.ok},
                       {"winner", r.winner},       {"flipped", r.flipped},
                       {"first", r.first},         {"second", r.second},
                       {"failure", r.failure},     {"detail", r.detail},
                       {"rationale", r.rationale}, {"latency_s", r.latency_s},
                       {"model", config_.model}};
          journal << line.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
          journal.flush();
        }
        if (on_result) on_result(i, r);
      },
      [this] { return within_budget(); }, check);
  return results;
}

// The order in which a group's n completions are shown: shuffled (unless [judge] shuffle_group = false), from a seed
// that is the group's cache key, so the same group is always shown the same way and a cached verdict maps back.
std::vector<size_t> Judge::shown_order(size_t n, const std::string& key) const {
  std::vector<size_t> order(n);
  for (size_t k = 0; k < n; ++k) order[k] = k;
  if (!config_.shuffle_group) return order;
  std::mt19937_64 rng(std::stoull(key.substr(0, 16), nullptr, 16));
  for (size_t k = n; k > 1; --k) std::swap(order[k - 1], order[rng() % k]);  // Fisher-Yates
  return order;
}

std::vector<GroupResult> Judge::rank(const std::vector<GroupSample>& groups) {
  if (config_.backend != "openai") throw Error("group ranking needs the openai backend", "judge config");
  if (!panel_.empty())
    throw Error("a panel of judges judges pointwise only", "judge config: panel", "rank with one judge");
  const Criterion& scale = config_.rubric.criteria[0];
  std::vector<GroupResult> results(groups.size());
  std::vector<HttpRequest> requests;
  auto numbered = [&](size_t n) {  // one criterion per completion, named 1..n, on the scale
    Rubric r;
    for (size_t k = 0; k < n; ++k) r.criteria.push_back({std::to_string(k + 1), "", scale.min, scale.max, 1});
    return r;
  };
  // Scores on the scale -> the result (rewards mapped to [0, 1]).
  auto fill = [&](GroupResult& r, const std::vector<double>& scores, const std::string& rationale) {
    r.ok = true;
    r.rationale = rationale;
    r.scores = scores;
    for (double s : scores) r.rewards.push_back((s - scale.min) / (scale.max - scale.min));
  };
  std::ofstream journal;
  if (!config_.journal_path.empty()) {
    journal.open(config_.journal_path, std::ios::app);
    if (!journal) throw Error("cannot append to the judge journal", config_.journal_path, "check the path");
  }
  std::vector<std::string> keys(groups.size());
  std::vector<size_t> asked;  // groups not answered by the cache, in request order
  std::vector<json> messages;
  std::vector<std::vector<size_t>> shown(groups.size());  // shown[i][p]: the completion shown as response p + 1
  for (size_t i = 0; i < groups.size(); ++i) {
    const GroupSample& g = groups[i];
    // The completions as numbered blocks; the judge answers {"scores": {"1": n, "2": n, ...}}.
    JudgeSample all{g.prompt, "", g.reference};
    for (const auto& c : g.completions) all.completion += c + "\x1f";
    keys[i] = sha256_hex(json{{"mode", "group"}, {"sample", cache_key(all)}}.dump());
    shown[i] = shown_order(g.completions.size(), keys[i]);
    results[i].positions.assign(g.completions.size(), 0);
    for (size_t p = 0; p < shown[i].size(); ++p) results[i].positions[shown[i][p]] = static_cast<int>(p);
    if (cache_)
      if (auto hit = cache_->get(keys[i])) {
        auto j = json::parse(*hit, nullptr, false);
        if (j.is_object() && j.contains("scores") && j["scores"].is_array() &&
            j["scores"].size() == g.completions.size()) {
          fill(results[i], j["scores"].get<std::vector<double>>(), j.value("rationale", ""));
          ++stats_.judged, ++stats_.ok, ++stats_.cache_hits;
          continue;
        }
      }
    const std::string nonce = judge_nonce(all);
    std::string list;
    for (size_t k = 0; k < g.completions.size(); ++k)
      list += "Response " + std::to_string(k + 1) + ":\n" +
              quoted_block("response-" + std::to_string(k + 1), g.completions[shown[i][k]], nonce, config_.rubric) +
              "\n\n";
    std::string prompt_block = quoted_block("prompt", g.prompt, nonce, config_.rubric);
    std::string criteria, format = "{\"rationale\": \"<one or two sentences>\", \"scores\": {";
    for (size_t c = 0; c < config_.rubric.criteria.size(); ++c)
      criteria += "- " + config_.rubric.criteria[c].name + ": " + config_.rubric.criteria[c].description + "\n";
    for (size_t k = 0; k < g.completions.size(); ++k)
      format += std::string(k ? ", " : "") + "\"" + std::to_string(k + 1) + "\": <integer " +
                std::to_string(static_cast<int>(scale.min)) + "-" + std::to_string(static_cast<int>(scale.max)) + ">";
    format += "}}";
    JudgeMessages m{config_.tmpl.system,
                    "Prompt:\n" + prompt_block + "\n\n" + std::to_string(g.completions.size()) +
                        " responses to assess, each on its own:\n\n" + list + "Criteria:\n" + criteria +
                        "\nScore every response, then answer with only this JSON object and nothing else:\n" + format};
    asked.push_back(i);
    messages.push_back(m.to_openai());
    requests.push_back(chat_->request(m, verdict_schema(numbered(g.completions.size()))));
  }
  // Each reply: usage counted, a verdict with every completion's score or the group's failure, cache, journal.
  auto finish = [&](size_t q, GroupResult& r, const std::string& raw) {
    const size_t i = asked[q];
    if (r.ok && cache_) cache_->put(keys[i], json{{"scores", r.scores}, {"rationale", r.rationale}}.dump());
    ++stats_.judged;
    stats_.latencies.push_back(r.latency_s);
    if (r.ok)
      ++stats_.ok;
    else
      ++stats_.failed, ++stats_.failures[r.failure];
    if (!journal) return;
    json line = {{"group", true},
                 {"ok", r.ok},
                 {"scores", r.scores},
                 {"rationale", r.rationale},
                 {"failure", r.failure},
                 {"detail", r.detail},
                 {"latency_s", r.latency_s},
                 {"key", keys[i]},
                 {"model", config_.model},
                 {"reply", raw},
                 {"request", messages[q]},
                 {"time", static_cast<double>(std::time(nullptr))}};
    journal << line.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    journal.flush();
  };
  auto check = chat_->reply_check(
      [&](size_t q, const std::string& text) {
        Verdict v = parse_verdict(text, numbered(groups[asked[q]].completions.size()));
        return v.ok ? std::string() : v.failure;
      },
      [this](size_t, const JudgeResult& usage) { count_usage(usage); });
  chat_->http().run(
      requests,
      [&](size_t q, HttpResponse&& resp) {
        GroupResult& r = results[asked[q]];
        r.latency_s = resp.latency_s;
        JudgeResult reply;
        if (!resp.failure.empty()) {
          r.failure = resp.failure == "stopped" ? "budget_exhausted" : resp.failure, r.detail = resp.detail;
        } else {
          chat_->read_reply(resp.body, reply);
          count_usage(reply);
          if (!reply.failure.empty()) {
            r.failure = reply.failure, r.detail = reply.detail;
          } else {
            const size_t n = groups[asked[q]].completions.size();
            Verdict v = parse_verdict(reply.reply, numbered(n));
            if (!v.ok) {
              r.failure = v.failure, r.detail = v.detail;
            } else {
              std::vector<double> scores(n);  // in the completions' own order
              for (size_t p = 0; p < n; ++p) scores[shown[asked[q]][p]] = v.scores[std::to_string(p + 1)];
              fill(r, scores, v.rationale);
            }
          }
        }
        finish(q, r, reply.reply);
      },
      [this] { return within_budget(); }, check);
  return results;
}

void Judge::apply_graders(const JudgeSample& s, JudgeResult& r, double judges_weight) const {
  if (!r.ok) return;  // a failed judgment stays failed: no partial reward
  for (const auto& g : config_.graders)
    r.grades[g.name] = g.grade(s.answer ? *s.answer : s.completion,
                               s.reference.empty() ? config_.rubric.reference : s.reference, s.prompt);
  mix_reward(r, judges_weight);
}

void Judge::mix_reward(JudgeResult& r, double judges_weight) const {
  std::vector<RewardPart> parts = {{judges_weight, r.verdict.reward}};
  bool gated = false;  // a required grader failed
  for (const auto& g : config_.graders) {
    parts.push_back({g.weight, r.grades.at(g.name)});
    gated = gated || (g.required && r.grades.at(g.name) < 0.5);
  }
  r.reward = gated ? 0.0 : combine_rewards(parts);
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
  std::vector<RewardPart> parts = {{own, r.verdict.reward}};
  if (own > 0) r.judge_rewards[config_.name] = r.verdict.reward;
  for (size_t j = 0; j < panel_.size(); ++j) {
    const JudgeResult& t = *theirs[j];
    const std::string& name = panel_[j]->config().name;
    const double w = panel_[j]->config().judge_weight;
    r.judge_rewards[name] = t.verdict.reward;
    for (const auto& [criterion, score] : t.verdict.scores) r.verdict.scores[name + "/" + criterion] = score;
    if (!t.verdict.rationale.empty())
      r.verdict.rationale += (r.verdict.rationale.empty() ? "" : "\n") + name + ": " + t.verdict.rationale;
    parts.push_back({w, t.verdict.reward});
    r.latency_s = std::max(r.latency_s, t.latency_s);
    r.prompt_tokens += t.prompt_tokens, r.completion_tokens += t.completion_tokens, r.cost += t.cost;
  }
  double weights = 0;
  for (const auto& p : parts) weights += p.weight;
  r.verdict.reward = combine_rewards(parts);  // validate() keeps weights > 0
  mix_reward(r, weights);                     // the graders graded the sample already (judge_alone)
}

std::vector<JudgeResult> Judge::judge_alone(const std::vector<JudgeSample>& samples,
                                            const std::function<void(size_t, const JudgeResult&)>& on_result) {
  std::vector<JudgeResult> results(samples.size());
  std::vector<std::string> keys(samples.size());  // cache keys ("" when the backend's results are not cached)
  std::ofstream journal;
  if (!config_.journal_path.empty()) {
    journal.open(config_.journal_path, std::ios::app);
    if (!journal) throw Error("cannot append to the judge journal", config_.journal_path, "check the path");
  }
  // The one finish path of every result, from the cache or the backend: usage, cache, graders, stats, journal.
  auto finish = [&](size_t i, const json& request) {
    JudgeResult& r = results[i];
    r.rubric_kind = rubric_kind(samples[i].rubric.get());
    if (!r.cached) {
      count_usage(r);
      if (r.ok && cache_ && backend_->cacheable())
        cache_->put(keys[i], result_to_json(r).dump(-1, ' ', false, json::error_handler_t::replace));
    }
    apply_graders(samples[i], r, own_weight());
    ++stats_.judged;
    if (r.ok)
      ++stats_.ok;
    else
      ++stats_.failed, ++stats_.failures[r.failure];
    if (r.cached)
      ++stats_.cache_hits;
    else
      stats_.latencies.push_back(r.latency_s);
    if (journal) {
      json line = result_to_json(r);
      line["time"] = static_cast<double>(std::time(nullptr));
      line["key"] = keys[i];
      line["cached"] = r.cached;
      line["model"] = config_.model;
      if (!config_.graders.empty()) line["grades"] = r.grades, line["combined_reward"] = r.reward;
      if (!r.rubric_kind.empty()) line["rubric"] = r.rubric_kind;
      if (!r.cached) line["request"] = request;  // the messages; headers (and so the API key) are never written
      journal << line.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
      journal.flush();
    }
    if (on_result) on_result(i, r);
  };

  // Cache hits answer at once; the rest go to the backend.
  std::vector<size_t> asked;
  std::vector<JudgeSample> asks;
  for (size_t i = 0; i < samples.size(); ++i) {
    if (backend_->cacheable()) keys[i] = cache_key(samples[i]);
    if (cache_ && backend_->cacheable()) {
      if (auto hit = cache_->get(keys[i])) {
        auto j = json::parse(*hit, nullptr, false);
        if (j.is_object()) {
          results[i] = result_from_json(j);
          results[i].cached = true;
          finish(i, json());
          continue;
        }
      }
    }
    asked.push_back(i);
    asks.push_back(samples[i]);
  }
  if (!asks.empty())
    backend_->score(
        asks,
        [&](size_t k, JudgeResult&& r, const json& request) {
          results[asked[k]] = std::move(r);
          finish(asked[k], request);
        },
        [this] { return within_budget(); });
  return results;
}

}  // namespace rlaif
