#include "judge/openai_chat.h"

#include <cstdio>
#include <cstdlib>

#include "rlaif/error.h"

namespace rlaif {

using json = nlohmann::json;

namespace {
HttpClientOptions pool_options(const JudgeConfig& config) {
  HttpClientOptions o = config.http;
  o.endpoints = config.base_urls;  // each request's url is the path appended to an endpoint of the pool
  return o;
}
}  // namespace

OpenAiChat::OpenAiChat(const JudgeConfig& config)
    : config_(config), http_(std::make_unique<HttpClient>(pool_options(config))) {}

std::vector<std::string> OpenAiChat::headers() const {
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

HttpRequest OpenAiChat::request(const JudgeMessages& messages, const json& schema) const {
  json body = {{"model", config_.model},
               {"messages", messages.to_openai()},
               {"temperature", config_.temperature},
               {"max_tokens", config_.max_tokens}};
  if (config_.response_format == ResponseFormat::kJsonObject) body["response_format"] = {{"type", "json_object"}};
  if (config_.response_format == ResponseFormat::kJsonSchema)
    body["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "verdict"}, {"schema", schema}}}};
  if (config_.top_logprobs > 0) body["logprobs"] = true, body["top_logprobs"] = config_.top_logprobs;
  HttpRequest q;
  q.url = "/chat/completions";  // on the endpoint of the pool the client picks
  q.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  q.headers = headers();
  q.tokens = static_cast<double>(q.body.size()) / 4 + config_.max_tokens;  // rough estimate for rate limits
  return q;
}

namespace {

// choices[0].logprobs.content of a chat completion as tokens with their alternatives; empty when absent or malformed.
std::vector<ReplyToken> reply_tokens(const json& reply) {
  std::vector<ReplyToken> out;
  const json& choice = reply["choices"][0];
  if (!choice.contains("logprobs") || !choice["logprobs"].is_object()) return out;
  const json& content = choice["logprobs"].value("content", json());
  if (!content.is_array()) return out;
  for (const auto& t : content) {
    if (!t.is_object() || !t.contains("token") || !t["token"].is_string()) return {};
    ReplyToken token{t["token"].get<std::string>(), {}};
    if (t.contains("top_logprobs") && t["top_logprobs"].is_array())
      for (const auto& alt : t["top_logprobs"])
        if (alt.is_object() && alt.contains("token") && alt["token"].is_string() && alt.contains("logprob") &&
            alt["logprob"].is_number())
          token.top.emplace_back(alt["token"].get<std::string>(), alt["logprob"].get<double>());
    out.push_back(std::move(token));
  }
  return out;
}

}  // namespace

void OpenAiChat::read_reply(const std::string& body, JudgeResult& r, std::vector<ReplyToken>* tokens) const {
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
  r.cost =
      (r.prompt_tokens * config_.price_input_per_million + r.completion_tokens * config_.price_output_per_million) /
      1e6;
  if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty() ||
      !j["choices"][0].contains("message") || !j["choices"][0]["message"].contains("content") ||
      !j["choices"][0]["message"]["content"].is_string()) {
    r.failure = "bad_response";
    r.detail = "the reply has no choices[0].message.content: " + body.substr(0, 120);
    return;
  }
  r.reply = j["choices"][0]["message"]["content"].get<std::string>();
  if (tokens) *tokens = reply_tokens(j);
}

HttpClient::ReplyCheck OpenAiChat::reply_check(std::function<std::string(size_t, const std::string&)> valid,
                                               std::function<void(size_t, const JudgeResult&)> spent) const {
  return [this, valid = std::move(valid), spent = std::move(spent)](size_t index, const std::string& body) {
    JudgeResult r;
    read_reply(body, r);
    std::string cause = r.failure.empty() ? valid(index, r.reply) : r.failure;
    if (!cause.empty()) spent(index, r);
    return cause;
  };
}

OpenAiBackend::OpenAiBackend(const JudgeConfig& config, std::shared_ptr<OpenAiChat> chat)
    : config_(config), chat_(std::move(chat)) {}

void OpenAiBackend::score(const std::vector<JudgeSample>& samples, const Done& done,
                          const std::function<bool()>& keep_going) {
  std::vector<HttpRequest> requests;
  std::vector<json> messages;  // journaled with each result (headers, and so the API key, never are)
  const json schema = verdict_schema(config_.rubric);
  auto rubric = [&](size_t k) -> const Rubric& { return judged_on(samples[k], config_.rubric); };
  for (size_t k = 0; k < samples.size(); ++k) {
    auto m = render_judge_prompt(config_.tmpl, config_.rubric, samples[k]);
    messages.push_back(m.to_openai());
    requests.push_back(chat_->request(m, samples[k].rubric ? verdict_schema(rubric(k)) : schema));
  }
  std::vector<JudgeResult> refused(samples.size());  // the usage of replies sent again: paid for all the same
  auto check = chat_->reply_check(
      [&](size_t k, const std::string& text) {
        Verdict v = parse_verdict(text, rubric(k));
        return v.ok ? std::string() : v.failure;
      },
      [&](size_t k, const JudgeResult& usage) {
        refused[k].prompt_tokens += usage.prompt_tokens;
        refused[k].completion_tokens += usage.completion_tokens;
        refused[k].cost += usage.cost;
      });
  chat_->http().run(
      requests,
      [&](size_t k, HttpResponse&& resp) {
        JudgeResult r;
        r.latency_s = resp.latency_s;
        r.attempts = resp.attempts;
        if (!resp.failure.empty()) {
          r.failure = resp.failure == "stopped" ? "budget_exhausted" : resp.failure;
          r.detail = resp.detail;
        } else {
          std::vector<ReplyToken> tokens;
          chat_->read_reply(resp.body, r, &tokens);
          if (r.failure.empty()) {
            r.verdict = parse_verdict(r.reply, rubric(k));
            if (r.verdict.ok) {
              r.ok = true;
              if (config_.top_logprobs > 0) apply_logprobs(tokens, rubric(k), r);
            } else {
              r.failure = r.verdict.failure;
              r.detail = r.verdict.detail;
            }
          }
        }
        r.prompt_tokens += refused[k].prompt_tokens;
        r.completion_tokens += refused[k].completion_tokens;
        r.cost += refused[k].cost;
        done(k, std::move(r), messages[k]);
      },
      keep_going, check);
}

void OpenAiBackend::apply_logprobs(const std::vector<ReplyToken>& tokens, const Rubric& rubric, JudgeResult& r) {
  if (tokens.empty()) {
    if (!warned_no_logprobs_)
      std::fprintf(stderr,
                   "judge: the server returned no logprobs (top_logprobs = %lld was asked for); the parsed scores "
                   "are used\n",
                   static_cast<long long>(config_.top_logprobs));
    warned_no_logprobs_ = true;
    return;
  }
  r.distributions = score_distributions(r.reply, tokens, rubric);
  if (r.distributions.empty()) return;
  for (const auto& [name, d] : r.distributions) r.verdict.scores[name] = d.mean;
  r.verdict.reward = rubric.aggregate(r.verdict.scores);
}

}  // namespace rlaif
