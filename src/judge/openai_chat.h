// The OpenAI chat-completions wire format a judge speaks: request bodies (with a JSON schema when response_format asks
// for one), auth headers from the environment, replies read into text, token counts and cost; and the concurrent
// client the requests go through. Internal to the judge (pointwise, pairwise and group judging share it).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "rlaif/http_client.h"
#include "rlaif/judge.h"
#include "rlaif/judge_backend.h"
#include "rlaif/verdict.h"

namespace rlaif {

class OpenAiChat {
 public:
  explicit OpenAiChat(const JudgeConfig& config);
  // A POST of `messages` to /chat/completions on an endpoint of the pool (base_urls); `schema` is the reply's shape
  // under response_format json_schema. Throws rlaif::Error when api_key_env names an empty variable.
  HttpRequest request(const JudgeMessages& messages, const nlohmann::json& schema) const;
  // Reads a chat-completion body into r: reply text, token counts and cost, or the failure bad_response. With
  // `tokens`, also the reply's tokens and their top alternatives (choices[0].logprobs.content; left empty when the
  // server sent none, or sent them malformed).
  void read_reply(const std::string& body, JudgeResult& r, std::vector<ReplyToken>* tokens = nullptr) const;
  // For HttpClient::run's check_reply: refuses a reply that is not a chat completion (bad_response), or whose text
  // `valid` refuses (returns its cause), so that the client sends it again. A refused reply was paid for: its
  // usage goes to `spent`.
  HttpClient::ReplyCheck reply_check(std::function<std::string(size_t index, const std::string& text)> valid,
                                     std::function<void(size_t index, const JudgeResult& usage)> spent) const;
  HttpClient& http() { return *http_; }

 private:
  std::vector<std::string> headers() const;

  JudgeConfig config_;
  std::unique_ptr<HttpClient> http_;
};

// The "openai" backend: one chat completion per sample, all sent concurrently through the chat's client, each reply
// parsed into a verdict (a reply without one is a failure with its cause). With top_logprobs > 0, a criterion's
// score is the expected score under the distribution at its score token (score_distributions), as the local judge's
// is; where the server returns no logprobs the parsed score stands (said once on stderr).
class OpenAiBackend : public JudgeBackend {
 public:
  OpenAiBackend(const JudgeConfig& config, std::shared_ptr<OpenAiChat> chat);
  void score(const std::vector<JudgeSample>& samples, const Done& done,
             const std::function<bool()>& keep_going) override;

 private:
  // Replaces the parsed scores of r's verdict with expected scores where the reply's logprobs give them.
  void apply_logprobs(const std::vector<ReplyToken>& tokens, const Rubric& rubric, JudgeResult& r);

  JudgeConfig config_;
  std::shared_ptr<OpenAiChat> chat_;
  bool warned_no_logprobs_ = false;
};

}  // namespace rlaif
