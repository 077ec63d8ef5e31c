// `rlaif serve` as a real process on 127.0.0.1, driven over real sockets: the OpenAI protocol (completions, chat,
// logprobs, streaming, models, health), the bearer token, OpenAI-style errors and limits, batching of concurrent
// requests, rlaif's own judge client against it, and a clean stop on SIGTERM.
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "adapter_test_util.h"
#include "judge/openai_chat.h"
#include "rlaif/init_model.h"
#include "rlaif/jsonl.h"
#include "rlaif/judge.h"
#include "rlaif/judge_prompt.h"
#include "rlaif/rubric.h"
#include "serve_process.h"
#include "test_util.h"

using json = nlohmann::json;
using rlaif_test::ServeProcess;
using rlaif_test::TempDir;

namespace {

class Serve : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    rlaif::InitModelOptions o;
    o.seed = 5;
    rlaif::init_model(o, *dir_ / "model");
    setenv("RLAIF_TEST_SERVE_KEY", "sekret", 1);
    server_ = new ServeProcess(*dir_ / "model",
                               "--api-key-env RLAIF_TEST_SERVE_KEY --max-request-bytes 4000 --max-tokens 512");
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }
  static httplib::Client client(bool auth = true) {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(60, 0);
    if (auth) c.set_default_headers({{"Authorization", "Bearer sekret"}});
    return c;
  }
  static json post(const std::string& path, const json& body, int want_status = 200) {
    auto res = client().Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(res) << path;
    if (!res) return json();
    EXPECT_EQ(res->status, want_status) << res->body;
    return json::parse(res->body, nullptr, false);
  }
  static TempDir* dir_;
  static ServeProcess* server_;
};
TempDir* Serve::dir_ = nullptr;
ServeProcess* Serve::server_ = nullptr;

TEST_F(Serve, CompletionsEqualRlaifGenerateForTheSameSeedWithLogprobs) {
  const std::string prompt = "Once upon a time";
  auto reply = post("/v1/completions", {{"prompt", prompt},
                                        {"max_tokens", 12},
                                        {"temperature", 0.9},
                                        {"seed", 7},
                                        {"logprobs", 3},
                                        {"model", "whatever"}});
  ASSERT_EQ(reply["object"], "text_completion");
  ASSERT_EQ(reply["choices"].size(), 1u);
  const auto& c = reply["choices"][0];
  rlaif_test::write_text(*dir_ / "p.jsonl", json({{"prompt", prompt}, {"seed", 7}}).dump() + "\n");
  auto r = rlaif_test::run_command(std::string(RLAIF_BIN) + " generate --quiet --model " + (*dir_ / "model") +
                                   " --prompts " + (*dir_ / "p.jsonl") + " --out " + (*dir_ / "g.jsonl") +
                                   " --max-new-tokens 12 --temperature 0.9");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto want = json::parse(rlaif::read_jsonl(*dir_ / "g.jsonl").at(0).value.dump());
  EXPECT_EQ(c["text"], want["completion"]);
  EXPECT_EQ(c["finish_reason"], want["finish_reason"]);
  const auto& lp = c["logprobs"];
  ASSERT_EQ(lp["token_logprobs"].size(), want["logprobs"].size());
  for (size_t i = 0; i < want["logprobs"].size(); ++i) {
    EXPECT_NEAR(lp["token_logprobs"][i].get<double>(), want["logprobs"][i].get<double>(), 1e-5);
    // OpenAI's dict of the top 3: tokens that decode to the same text (partial UTF-8) share a key.
    ASSERT_GE(lp["top_logprobs"][i].size(), 1u);
    ASSERT_LE(lp["top_logprobs"][i].size(), 3u);
    double best = -1e9;
    for (auto it = lp["top_logprobs"][i].begin(); it != lp["top_logprobs"][i].end(); ++it)
      best = std::max(best, it.value().get<double>());
    EXPECT_GE(best + 1e-5, lp["token_logprobs"][i].get<double>());  // nothing sampled beats the top token
  }
  EXPECT_EQ(reply["usage"]["completion_tokens"], want["token_ids"].size());
}

TEST_F(Serve, ChatGreedyTopLogprobsAndStreamingMatchTheNonStreamedReply) {
  json body = {{"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi"}}}},
               {"max_tokens", 10},
               {"temperature", 0},
               {"logprobs", true},
               {"top_logprobs", 2},
               {"n", 2}};
  auto reply = post("/v1/chat/completions", body);
  ASSERT_EQ(reply["choices"].size(), 2u);
  const auto& content = reply["choices"][0]["logprobs"]["content"];
  ASSERT_FALSE(content.empty());
  for (const auto& t : content) {  // greedy: the chosen token is the most likely one
    ASSERT_EQ(t["top_logprobs"].size(), 2u);
    EXPECT_EQ(t["token"], t["top_logprobs"][0]["token"]);
    EXPECT_GE(t["top_logprobs"][0]["logprob"].get<double>(), t["top_logprobs"][1]["logprob"].get<double>());
  }
  EXPECT_EQ(reply["choices"][0]["message"]["content"], reply["choices"][1]["message"]["content"]);
  // Streamed: server-sent events whose deltas concatenate to the same text, then [DONE].
  body["stream"] = true;
  body["n"] = 1;
  auto res = client().Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_NE(res->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  std::string text, finish;
  int events = 0;
  std::istringstream lines(res->body);
  bool done = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("data: ", 0) != 0) continue;
    if (line == "data: [DONE]") {
      done = true;
      break;
    }
    auto chunk = json::parse(line.substr(6));
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    const auto& d = chunk["choices"][0];
    if (d["delta"].contains("content")) text += d["delta"]["content"].get<std::string>();
    if (!d["finish_reason"].is_null()) finish = d["finish_reason"];
    ++events;
  }
  EXPECT_TRUE(done);
  EXPECT_GT(events, 2);
  EXPECT_EQ(text, reply["choices"][0]["message"]["content"]);
  EXPECT_EQ(finish, reply["choices"][0]["finish_reason"]);
  // A stop string taken from the middle of the greedy text: streamed and whole replies both end before it.
  const std::string full = reply["choices"][0]["message"]["content"];
  ASSERT_GE(full.size(), 6u);
  const std::string stop = full.substr(full.size() / 2, 2);
  body["stop"] = stop;
  body.erase("logprobs");
  body.erase("top_logprobs");
  json whole_body = body;
  whole_body.erase("stream");
  auto whole = post("/v1/chat/completions", whole_body);
  const std::string expect = whole["choices"][0]["message"]["content"];
  EXPECT_EQ(expect, full.substr(0, full.find(stop)));
  auto streamed = client().Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(streamed);
  std::string joined;
  std::istringstream stop_events(streamed->body);
  for (std::string line; std::getline(stop_events, line);)
    if (line.rfind("data: {", 0) == 0) {
      auto d = json::parse(line.substr(6))["choices"][0]["delta"];
      if (d.contains("content")) joined += d["content"].get<std::string>();
    }
  EXPECT_EQ(joined, expect);
}

TEST_F(Serve, StreamingIsLiveTheFirstTokensArriveLongBeforeTheEnd) {
  json body = {{"prompt", "Stream this"}, {"max_tokens", 512}, {"n", 8}, {"seed", 2},
               {"stream", true},          {"stop", {"zz"}}};
  auto start = std::chrono::steady_clock::now();
  double first_text = -1, done = -1;
  std::string buffer;
  std::vector<std::string> text(8);
  httplib::Client c = client();
  httplib::Headers headers = {{"Authorization", "Bearer sekret"}};
  // Each event is timed as it arrives, through a content receiver.
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.headers = headers;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    buffer.append(data, n);
    for (size_t at; (at = buffer.find("\n\n")) != std::string::npos;) {
      std::string e = buffer.substr(0, at);
      buffer.erase(0, at + 2);
      if (e == "data: [DONE]") {
        done = t;
        continue;
      }
      auto chunk = json::parse(e.substr(6));
      const auto& ch = chunk["choices"][0];
      if (!ch["text"].get<std::string>().empty() && first_text < 0) first_text = t;
      text[ch["index"].get<size_t>()] += ch["text"].get<std::string>();
    }
    return true;
  };
  httplib::Response streamed;
  httplib::Error err;
  start = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.send(req, streamed, err));
  ASSERT_GT(done, 0);
  ASSERT_GE(first_text, 0);
  std::cout << "streaming: first text after " << first_text << " s, [DONE] after " << done << " s\n";
  EXPECT_LT(first_text, 0.5 * done);  // sent while the rest is still being generated
  // The same seed without streaming: the deltas concatenate to exactly its texts.
  body.erase("stream");
  auto whole = post("/v1/completions", body);
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(text[i], whole["choices"][i]["text"]) << i;
}

TEST_F(Serve, JsonObjectResponseFormatConstrainsTheReplyToJson) {
  auto reply = post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Answer in JSON."}}}},
                                             {"max_tokens", 64},
                                             {"n", 6},
                                             {"seed", 11},
                                             {"response_format", {{"type", "json_object"}}}});
  int parsed = 0;
  for (const auto& c : reply["choices"]) {
    const std::string text = c["message"]["content"];
    ASSERT_FALSE(text.empty());
    EXPECT_EQ(text.find_first_not_of(" \t\n\r"), text.find('{')) << text;  // it opens an object first
    if (c["finish_reason"] == "stop") {
      auto j = json::parse(text, nullptr, false);
      EXPECT_TRUE(!j.is_discarded() && j.is_object()) << text;
      ++parsed;
    }
  }
  EXPECT_GT(parsed, 0);
}

// The judge's own verdict schema as response_format json_schema: every finished reply of a random model parses and
// validates (keys, required keys, integer scores within the rubric's scale), and the judge's reply reader takes it.
TEST_F(Serve, JsonSchemaResponseFormatHoldsForTheJudgesVerdictSchema) {
  const rlaif::Rubric rubric = rlaif::Rubric::default_rubric();
  const json schema = rlaif::verdict_schema(rubric);
  auto reply = post(
      "/v1/chat/completions",
      {{"messages", {{{"role", "user"}, {"content", "Judge it."}}}},
       {"max_tokens", 512},
       {"n", 8},
       {"seed", 3},
       {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "verdict"}, {"schema", schema}}}}}});
  rlaif::JudgeConfig c;
  c.base_urls = {"http://127.0.0.1:" + std::to_string(server_->port()) + "/v1"};
  c.rubric = rubric;
  rlaif::OpenAiChat chat(c);
  int finished = 0;
  for (const auto& choice : reply["choices"]) {
    const std::string text = choice["message"]["content"];
    if (choice["finish_reason"] != "stop") continue;
    ++finished;
    const json j = json::parse(text, nullptr, false);
    ASSERT_TRUE(j.is_object()) << text;
    EXPECT_EQ(j.size(), 2u) << text;
    ASSERT_TRUE(j.contains("rationale") && j["rationale"].is_string()) << text;
    ASSERT_TRUE(j.contains("scores") && j["scores"].is_object()) << text;
    EXPECT_EQ(j["scores"].size(), rubric.criteria.size()) << text;
    for (const auto& cr : rubric.criteria) {
      ASSERT_TRUE(j["scores"].contains(cr.name) && j["scores"][cr.name].is_number_integer()) << text;
      EXPECT_GE(j["scores"][cr.name].get<double>(), cr.min) << text;
      EXPECT_LE(j["scores"][cr.name].get<double>(), cr.max) << text;
    }
    json one = reply;
    one["choices"] = json::array({choice});
    rlaif::JudgeResult r;
    chat.read_reply(one.dump(), r);
    EXPECT_TRUE(r.failure.empty()) << r.detail << "\n" << text;
  }
  EXPECT_GT(finished, 0);
  // A schema keyword that cannot be enforced is a 400 naming it, never a silently unconstrained reply.
  json bad = schema;
  bad["properties"]["rationale"]["pattern"] = "^[a-z]+$";
  auto e = post("/v1/chat/completions",
                {{"messages", {{{"role", "user"}, {"content", "x"}}}},
                 {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "v"}, {"schema", bad}}}}}},
                400);
  EXPECT_EQ(e["error"]["param"], "response_format");
  EXPECT_NE(e["error"]["message"].get<std::string>().find("properties.rationale.pattern"), std::string::npos) << e;
}

// `rlaif judge` against `rlaif serve`: with the verdict's schema enforced, even a random model's replies are verdicts
// the judge reads (scores on the rubric's scale); without it, none are.
TEST_F(Serve, RlaifJudgeGetsAVerdictInEveryReplyWhenTheSchemaIsEnforced) {
  TempDir tmp;
  std::string rows;
  for (int i = 0; i < 6; ++i)
    rows += json{{"prompt", "Name a colour."}, {"completion", "Blue " + std::to_string(i)}}.dump() + "\n";
  rlaif_test::write_text(tmp / "rows.jsonl", rows);
  auto judge = [&](const std::string& format, const std::string& out) {
    rlaif_test::write_text(tmp / (format + ".toml"),
                           "[judge]\nbase_url = \"http://127.0.0.1:" + std::to_string(server_->port()) +
                               "/v1\"\nmodel = \"model\"\napi_key_env = \"RLAIF_TEST_SERVE_KEY\"\ntemperature = 1.0\n"
                               "max_tokens = 512\nresponse_format = \"" +
                               format + "\"\n");
    return rlaif_test::run_command(std::string(RLAIF_BIN) + " judge --config " + (tmp / (format + ".toml")) + " --in " +
                                   (tmp / "rows.jsonl") + " --out " + (tmp / out) + " --quiet");
  };
  auto r = judge("json_schema", "schema.jsonl");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("6 judged, 6 ok, 0 failed"), std::string::npos) << r.output;
  for (const auto& row : rlaif::read_jsonl(tmp / "schema.jsonl")) {
    ASSERT_EQ(row.value["ok"], true) << row.value.dump();
    for (const auto& [name, score] : row.value["scores"].items()) {
      EXPECT_GE(score.get<double>(), 1) << name;
      EXPECT_LE(score.get<double>(), 10) << name;
      EXPECT_EQ(score.get<double>(), std::round(score.get<double>())) << name;
    }
  }
  r = judge("none", "none.jsonl");
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("6 judged, 0 ok, 6 failed"), std::string::npos) << r.output;
}

// The official OpenAI Node SDK (npm openai, tests/reference/openai_sdk_ref.js) against the server, as an application
// would use it: every call returns what OpenAI's would, the streamed deltas concatenate to the whole reply, errors
// arrive as the SDK's APIError with OpenAI's fields, and every finished structured-output reply parses.
TEST_F(Serve, TheOfficialOpenAiNodeSdkGetsWhatOpenAiWouldReturn) {
  TempDir tmp;
  const std::string base = "http://127.0.0.1:" + std::to_string(server_->port()) + "/v1";
  auto run = rlaif_test::run_command("node " + std::string(RLAIF_REFERENCE_DIR) + "/openai_sdk_ref.js " +
                                     RLAIF_NPM_DIR + " " + base + " sekret " + (tmp / "sdk.json"));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const json r = json::parse(rlaif::read_file(tmp / "sdk.json"));
  EXPECT_EQ(r["models"], json::array({"model"}));
  EXPECT_EQ(r["chat"]["object"], "chat.completion");
  EXPECT_EQ(r["chat"]["role"], "assistant");
  ASSERT_EQ(r["chat"]["logprobs"].size(), r["chat"]["usage"]["completion_tokens"].get<size_t>());
  for (const auto& t : r["chat"]["logprobs"]) {
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
    EXPECT_EQ(t["top"], 3);
  }
  EXPECT_EQ(r["stream"]["text"], r["chat"]["content"]);  // the deltas are the whole reply, in order
  EXPECT_GT(r["stream"]["chunks"].get<int>(), 2);
  EXPECT_EQ(r["stream"]["finish"], r["chat"]["finish"]);
  EXPECT_EQ(r["completion"]["object"], "text_completion");
  EXPECT_GT(r["completion"]["tokens"].get<int>(), 0);
  // The same completion through a plain HTTP client: the SDK sent what it says.
  auto plain = post("/v1/completions", {{"prompt", "Once upon"}, {"max_tokens", 16}, {"temperature", 0}});
  EXPECT_EQ(r["completion"]["text"], plain["choices"][0]["text"]);
  EXPECT_EQ(r["error"]["api_error"], true);
  EXPECT_EQ(r["error"]["status"], 400);
  EXPECT_EQ(r["error"]["type"], "invalid_request_error");
  EXPECT_EQ(r["error"]["param"], "max_tokens");
  EXPECT_EQ(r["auth_error"]["status"], 401);
  EXPECT_EQ(r["auth_error"]["code"], "invalid_api_key");
  int objects = 0, verdicts = 0;
  for (const auto& c : r["json_object"]) {
    if (c["finish"] != "stop") continue;
    EXPECT_TRUE(json::parse(c["content"].get<std::string>(), nullptr, false).is_object()) << c;
    ++objects;
  }
  for (const auto& c : r["json_schema"]) {
    if (c["finish"] != "stop") continue;
    const json v = json::parse(c["content"].get<std::string>(), nullptr, false);
    ASSERT_TRUE(v.is_object() && v.size() == 2 && v.contains("score") && v.contains("label")) << c;
    EXPECT_TRUE(v["score"].is_number_integer() && v["score"] >= 1 && v["score"] <= 5) << c;
    EXPECT_TRUE(v["label"] == "good" || v["label"] == "bad") << c;
    ++verdicts;
  }
  EXPECT_GT(objects, 0);
  EXPECT_GT(verdicts, 0);
}

TEST_F(Serve, ModelsHealthAuthAndOpenAiStyleErrors) {
  auto anon = client(false);
  auto health = anon.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);  // health needs no key
  // The engine decodes on every core by default (libtorch's own default on a new thread can be 1).
  EXPECT_EQ(json::parse(health->body)["threads"].get<int>(),
            static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  auto models = anon.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 401);
  EXPECT_EQ(json::parse(models->body)["error"]["code"], "invalid_api_key");
  auto list = client().Get("/v1/models");
  ASSERT_TRUE(list);
  EXPECT_EQ(json::parse(list->body)["data"][0]["id"], "model");
  auto e = post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 513}}, 400);
  EXPECT_EQ(e["error"]["param"], "max_tokens");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  e = post("/v1/chat/completions", {{"messages", json::array()}}, 400);
  EXPECT_EQ(e["error"]["param"], "messages");
  e = post("/v1/completions", {{"prompt", "x"}, {"temperature", "hot"}}, 400);
  EXPECT_EQ(e["error"]["param"], "temperature");
  e = post("/v1/completions", {{"prompt", "x"}, {"response_format", {{"type", "xml"}}}}, 400);
  EXPECT_EQ(e["error"]["param"], "response_format");
  // Fields of the wrong JSON type are the client's 400 naming them, not a 500 from the JSON library.
  e = post("/v1/completions", {{"prompt", "x"}, {"stream", "yes"}}, 400);
  EXPECT_EQ(e["error"]["param"], "stream");
  e = post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"logprobs", 1}}, 400);
  EXPECT_EQ(e["error"]["param"], "logprobs");
  e = post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", {{{"type", 7}}}}}}}}, 400);
  EXPECT_EQ(e["error"]["param"], "messages[0].content");
  e = post("/v1/completions", {{"prompt", "x"}, {"response_format", {{"type", {1, 2}}}}}, 400);
  EXPECT_EQ(e["error"]["param"], "response_format");
  auto bad = client().Post("/v1/completions", "{not json", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  auto big = client().Post("/v1/completions", json({{"prompt", std::string(5000, 'a')}}).dump(), "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  auto missing = client().Post("/v1/embeddings", "{}", "application/json");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_TRUE(json::parse(missing->body).contains("error"));
}

TEST_F(Serve, ConcurrentRequestsShareBatchesAndTheJudgeClientWorksAgainstIt) {
  auto before = json::parse(client().Get("/health")->body);
  const int n = 8;
  std::vector<std::thread> threads;
  std::vector<int> status(n, 0);
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      auto res = client().Post(
          "/v1/completions", json({{"prompt", "Count: " + std::to_string(i)}, {"max_tokens", 16}, {"seed", i}}).dump(),
          "application/json");
      status[i] = res ? res->status : -1;
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < n; ++i) EXPECT_EQ(status[i], 200) << i;
  auto after = json::parse(client().Get("/health")->body);
  auto delta = [&](const char* key) { return after[key].get<int64_t>() - before[key].get<int64_t>(); };
  EXPECT_EQ(delta("requests"), n);
  // Requests that ran at the same time shared decode steps: more tokens were decoded than steps were run.
  EXPECT_GT(delta("decode_tokens"), delta("decode_steps"));

  // rlaif's judge client: every judgment ends as a score or a counted failure (a random model rarely writes a verdict).
  rlaif::JudgeConfig c;
  c.base_urls = {"http://127.0.0.1:" + std::to_string(server_->port()) + "/v1"};
  c.model = "model";
  c.api_key_env = "RLAIF_TEST_SERVE_KEY";
  c.max_tokens = 16;
  c.top_logprobs = 5;
  c.http.max_in_flight = 4;
  rlaif::Judge judge(c);
  std::vector<rlaif::JudgeSample> samples;
  for (int i = 0; i < 6; ++i) samples.push_back({"Say " + std::to_string(i), "Answer " + std::to_string(i), ""});
  auto results = judge.judge(samples);
  ASSERT_EQ(results.size(), samples.size());
  const auto& st = judge.stats();
  EXPECT_EQ(st.ok + st.failed, 6);
  // The protocol itself never fails: only the random model's replies may lack a verdict.
  for (const auto& [cause, count] : st.failures)
    EXPECT_TRUE(cause != "bad_response" && cause.rfind("http", 0) != 0 && cause != "timeout" && cause != "deadline")
        << cause << " x" << count;
  for (const auto& r : results) EXPECT_TRUE(r.ok || !r.failure.empty());
}

// Continuous batching: a short request sent while a long one decodes joins the running batch and is answered
// before the long one ends (a server that ran one batch at a time would make it wait for the end), with the same
// greedy text as when it ran alone.
TEST_F(Serve, ARequestThatArrivesDuringALongOneJoinsItsBatchAndEndsFirst) {
  const json short_request = {{"prompt", "Short"}, {"max_tokens", 8}, {"temperature", 0}};
  const json alone = post("/v1/completions", short_request);
  const json long_request = {{"prompt", "Long"}, {"max_tokens", 512}, {"n", 16},
                             {"seed", 3},        {"stream", true},    {"ignore_eos", true}};
  rlaif_test::RawConnection stream(server_->port());
  ASSERT_TRUE(stream.send_all(rlaif_test::http_post("/v1/completions", long_request.dump(), "sekret")));
  ASSERT_NE(stream.read(30, "\"text\":\"").find("\"text\":\""), std::string::npos);  // it is decoding
  const auto t0 = std::chrono::steady_clock::now();
  const json joined = post("/v1/completions", short_request);
  const double short_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const bool long_done_first = stream.read(0.01).find("[DONE]") != std::string::npos;
  const std::string all = stream.read(60, "[DONE]");
  const double long_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "short request answered after " << short_s << " s; the long one ended after " << long_s << " s\n";
  EXPECT_FALSE(long_done_first) << "the short request waited for the long one";
  ASSERT_NE(all.find("[DONE]"), std::string::npos);
  EXPECT_EQ(joined["choices"][0]["text"], alone["choices"][0]["text"]);
  // ignore_eos: every one of the long request's samples ran to max_tokens.
  EXPECT_NE(all.find("\"completion_tokens\":8192"), std::string::npos);
}

// Concurrent clients, each with its own stream, share the decode batch; each one's text is what the same request
// gets alone (temperature 0), and each stream's deltas add up to it.
TEST_F(Serve, ConcurrentStreamsEachEqualTheSameRequestAlone) {
  const int n = 6;
  std::vector<json> bodies;
  std::vector<std::string> alone;
  for (int i = 0; i < n; ++i) {
    bodies.push_back(
        {{"prompt", "Client " + std::to_string(i) + " says"}, {"max_tokens", 16 + 8 * i}, {"temperature", 0}});
    alone.push_back(post("/v1/completions", bodies.back())["choices"][0]["text"]);
  }
  std::vector<std::string> streamed(n);
  std::vector<int> events(n, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      json body = bodies[i];
      body["stream"] = true;
      httplib::Client c = client();
      std::string buffer;
      httplib::Request req;
      req.method = "POST";
      req.path = "/v1/completions";
      req.headers = {{"Authorization", "Bearer sekret"}, {"Content-Type", "application/json"}};
      req.body = body.dump();
      req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
        buffer.append(data, len);
        for (size_t at; (at = buffer.find("\n\n")) != std::string::npos;) {
          const std::string e = buffer.substr(0, at);
          buffer.erase(0, at + 2);
          if (e == "data: [DONE]") continue;
          streamed[i] += json::parse(e.substr(6))["choices"][0]["text"].get<std::string>();
          events[i] += 1;
        }
        return true;
      };
      httplib::Response res;
      httplib::Error err;
      c.send(req, res, err);
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(streamed[i], alone[i]) << i;
    EXPECT_GE(events[i], 2) << i;  // deltas and the final event, not one reply
  }
}

// The OpenAI judge's reader understands rlaif serve's logprobs: a greedy chat reply's tokens, each its own most
// likely alternative among at most top_logprobs.
TEST_F(Serve, TheJudgeReadsServesLogprobs) {
  const json body = {{"messages", {{{"role", "user"}, {"content", "Score this."}}}},
                     {"max_tokens", 12},
                     {"temperature", 0},
                     {"logprobs", true},
                     {"top_logprobs", 5},
                     {"ignore_eos", true}};
  auto res = client().Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  rlaif::JudgeConfig c;
  c.base_urls = {"http://127.0.0.1:" + std::to_string(server_->port()) + "/v1"};
  rlaif::OpenAiChat chat(c);
  rlaif::JudgeResult r;
  std::vector<rlaif::ReplyToken> tokens;
  chat.read_reply(res->body, r, &tokens);
  ASSERT_TRUE(r.failure.empty()) << r.detail;
  ASSERT_EQ(tokens.size(), 12u);
  for (const auto& t : tokens) {
    ASSERT_GE(t.top.size(), 1u);
    EXPECT_LE(t.top.size(), 5u);
    EXPECT_EQ(t.top[0].first, t.text);  // greedy: the drawn token is the most likely one
    for (size_t k = 1; k < t.top.size(); ++k) EXPECT_LE(t.top[k].second, t.top[k - 1].second);
    EXPECT_LE(t.top[0].second, 1e-6);
  }
}

// A client that closes its connection mid-stream cancels its request: its sequences leave the batch at once.
TEST_F(Serve, AClientThatGoesAwayCancelsItsRequest) {
  const json before = json::parse(client().Get("/health")->body);
  {
    rlaif_test::RawConnection stream(server_->port());
    const json long_request = {
        {"prompt", "Abandoned"}, {"max_tokens", 512}, {"n", 16}, {"stream", true}, {"ignore_eos", true}};
    ASSERT_TRUE(stream.send_all(rlaif_test::http_post("/v1/completions", long_request.dump(), "sekret")));
    ASSERT_NE(stream.read(30, "\"text\":\"").find("\"text\":\""), std::string::npos);
  }  // closed
  json after;
  for (int i = 0; i < 100; ++i) {
    after = json::parse(client().Get("/health")->body);
    if (after["cancelled"].get<int64_t>() > before["cancelled"].get<int64_t>() && after["running"] == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(after["cancelled"].get<int64_t>() - before["cancelled"].get<int64_t>(), 1);
  EXPECT_EQ(after["running"], 0);
  EXPECT_EQ(after["requests"], before["requests"]);  // it never finished
  // It stopped early: far fewer than its 16 x 512 tokens were decoded.
  EXPECT_LT(after["decode_tokens"].get<int64_t>() - before["decode_tokens"].get<int64_t>(), 16 * 512 / 2);
}

TEST(ServeProcessTest, StopsCleanlyOnSigterm) {
  TempDir dir;
  rlaif::InitModelOptions o;
  rlaif::init_model(o, dir / "m");
  ServeProcess server(dir / "m", "");
  httplib::Client c("127.0.0.1", server.port());
  auto res = c.Get("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(server.stop(), 0);
  auto r = rlaif_test::run_command(std::string(RLAIF_BIN) + " serve --model " + (dir / "missing"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("missing"), std::string::npos) << r.output;
}

}  // namespace

namespace {

// A LoRA checkpoint served directly, or a base served with --adapter: the adapter is merged into the weights the
// server decodes with, so its greedy completions are those of `rlaif generate` on the merged folder.
TEST(ServeAdapter, ALoraCheckpointIsServedMergedAsGenerateDecodesIt) {
  TempDir dir;
  rlaif::InitModelOptions o;
  o.seed = 6;
  rlaif::init_model(o, dir / "base");
  rlaif_test::write_adapter(dir / "base", dir / "run/final");
  auto r = rlaif_test::run_command(std::string(RLAIF_BIN) + " export --model " + (dir / "run/final") + " --out " +
                                   (dir / "merged"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string prompt = "Once upon a time";
  rlaif_test::write_text(dir / "p.jsonl", json({{"prompt", prompt}}).dump() + "\n");
  auto generated = [&](const std::string& model) {
    auto g = rlaif_test::run_command(std::string(RLAIF_BIN) + " generate --quiet --model " + model + " --prompts " +
                                     (dir / "p.jsonl") + " --out " + (dir / "g.jsonl") +
                                     " --max-new-tokens 10 --temperature 0");
    EXPECT_EQ(g.exit_code, 0) << g.output;
    return rlaif::read_jsonl(dir / "g.jsonl").at(0).value["completion"].get<std::string>();
  };
  const std::string want = generated(dir / "merged");
  EXPECT_NE(want, generated(dir / "base"));  // the adapter changes the greedy text
  for (const std::string& args :
       {std::string(dir / "run/final"), (dir / "base") + " --adapter " + (dir / "run/final")}) {
    ServeProcess server(args, "");
    httplib::Client c("127.0.0.1", server.port());
    c.set_read_timeout(60, 0);
    auto res = c.Post("/v1/completions", json({{"prompt", prompt}, {"max_tokens", 10}, {"temperature", 0}}).dump(),
                      "application/json");
    ASSERT_TRUE(res) << args;
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(json::parse(res->body)["choices"][0]["text"], want) << args;
    EXPECT_EQ(server.stop(), 0);
  }
}

}  // namespace
