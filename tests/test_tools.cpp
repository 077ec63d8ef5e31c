// The "tools" environment: tool calls read from the policy's turn in both formats (Hermes/Qwen <tool_call> tags and
// Llama 3.x JSON turns), run as real commands (tests/data/table_tool.py) and real HTTP endpoints on 127.0.0.1; what the
// policy gets wrong (malformed, unknown tool, bad arguments, a tool's own error) comes back as a `tool` message, what
// it cannot help (a timeout, a dead endpoint) fails the episode; and a whole episode with a real model whose turns are
// tool calls (constrained decoding makes the tiny model write them), checked token by token against the template.
#include <gtest/gtest.h>
#include <httplib.h>
#include <torch/torch.h>

#include <chrono>
#include <thread>

#include "env/tool_calls.h"
#include "rlaif/episodes.h"
#include "rlaif/init_model.h"
#include "rlaif/json_schema.h"
#include "rlaif/model.h"
#include "rlaif/model_folder.h"
#include "rlaif/tokenizer.h"
#include "test_util.h"

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

TEST(ToolCalls, HermesTagsAreReadAnywhereInTheTurn) {
  auto calls = rlaif::parse_tool_calls(
      "Let me look.\n<tool_call>\n{\"name\": \"lookup\", \"arguments\": {\"key\": \"a\"}}\n</tool_call>\n"
      "<tool_call>{\"name\": \"lookup\", \"arguments\": \"{\\\"key\\\": \\\"b\\\"}\"}</tool_call>",
      "hermes");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].name, "lookup");
  EXPECT_EQ(calls[0].arguments, json({{"key", "a"}}));
  EXPECT_EQ(calls[0].error, "");
  EXPECT_EQ(calls[1].arguments, json({{"key", "b"}})) << "arguments as a JSON string, OpenAI's way";
  EXPECT_TRUE(rlaif::parse_tool_calls("The answer is 4.", "hermes").empty());

  calls = rlaif::parse_tool_calls("<tool_call>{\"name\": \"lookup\", \"arguments\": {\"key\": </tool_call>", "auto");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_NE(calls[0].error.find("not valid JSON"), std::string::npos) << calls[0].error;
  calls = rlaif::parse_tool_calls("<tool_call>{\"arguments\": {}}</tool_call>", "hermes");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_NE(calls[0].error.find("\"name\""), std::string::npos);
  calls = rlaif::parse_tool_calls("<tool_call>{\"name\": \"x\", \"arguments\": [1]}</tool_call>", "hermes");
  EXPECT_NE(calls.at(0).error.find("must be a JSON object"), std::string::npos);
  calls = rlaif::parse_tool_calls("<tool_call>{\"name\": \"x\", \"arguments\": {\"k\": 1}}", "hermes");
  ASSERT_EQ(calls.size(), 1u) << "an unclosed tag is read to the turn's end";
  EXPECT_EQ(calls[0].arguments, json({{"k", 1}}));
}

TEST(ToolCalls, Llama3TurnsAreTheCallsThemselves) {
  auto calls = rlaif::parse_tool_calls("{\"name\": \"lookup\", \"parameters\": {\"key\": \"c\"}}", "llama3");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].name, "lookup");
  EXPECT_EQ(calls[0].arguments, json({{"key", "c"}}));
  calls = rlaif::parse_tool_calls(
      "<|python_tag|>{\"name\": \"a\", \"parameters\": {\"s\": \"}; {\"}}; {\"name\": \"b\", \"parameters\": {}}",
      "llama3");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].arguments, json({{"s", "}; {"}})) << "braces inside strings do not end a call";
  EXPECT_EQ(calls[1].name, "b");
  calls = rlaif::parse_tool_calls("{\"name\": \"a\", \"parameters\": {}} and then some words", "llama3");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_NE(calls[1].error.find("only the calls"), std::string::npos);
  calls = rlaif::parse_tool_calls("{\"name\": \"a\", \"parameters\": {", "llama3");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_FALSE(calls[0].error.empty());
  EXPECT_TRUE(rlaif::parse_tool_calls("No call here.", "llama3").empty());
  // auto: a JSON answer that does not name a tool with its arguments stays an answer.
  EXPECT_TRUE(rlaif::parse_tool_calls("{\"answer\": 42}", "auto").empty());
  EXPECT_EQ(rlaif::parse_tool_calls("{\"name\": \"a\", \"parameters\": {}}", "auto").size(), 1u);
  EXPECT_EQ(rlaif::parse_tool_calls("{\"answer\": 42}", "llama3").size(), 1u) << "llama3: a JSON turn is a call";
}

TEST(ToolCalls, TheTemplateGetsTheToolsAsTransformersGivesThem) {
  rlaif::ToolSpec t;
  t.name = "lookup";
  t.description = "Looks a row up.";
  t.parameters = {{"type", "object"}, {"properties", {{"key", {{"type", "string"}}}}}, {"required", {"key"}}};
  const auto tools = rlaif::template_tools({t});
  ASSERT_EQ(tools.size(), 1u);
  EXPECT_EQ(tools[0]["type"], "function");
  EXPECT_EQ(tools[0]["function"]["name"], "lookup");
  EXPECT_EQ(tools[0]["function"]["description"], "Looks a row up.");
  EXPECT_EQ(json::parse(tools[0]["function"]["parameters"].dump()), t.parameters);
}

// An HTTP tool: POST /lookup answers the row; key "bad" answers 400 (the tool's own error), "down" 503, "slow" waits.
class ToolServer {
 public:
  ToolServer() {
    server_.Post("/lookup", [](const httplib::Request& req, httplib::Response& res) {
      const std::string key = json::parse(req.body).at("key");
      if (key == "bad") return res.status = 400, res.set_content("no such row: bad", "text/plain");
      if (key == "down") return res.status = 503, res.set_content("overloaded", "text/plain");
      if (key == "slow") std::this_thread::sleep_for(std::chrono::milliseconds(3000));
      res.set_content("row " + key + " over HTTP", "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~ToolServer() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/lookup"; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

rlaif::ToolSpec lookup_tool(const std::string& name) {
  rlaif::ToolSpec t;
  t.name = name;
  t.description = "Returns the table's row named `key`.";
  t.parameters = {{"type", "object"},
                  {"properties", {{"key", {{"type", "string"}}}}},
                  {"required", {"key"}},
                  {"additionalProperties", false}};
  t.timeout_s = 1;
  return t;
}

class ToolsEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.type = "tools";
    auto cmd = lookup_tool("lookup");
    cmd.command = {"/usr/bin/python3", std::string(RLAIF_REFERENCE_DIR) + "/../data/table_tool.py"};
    auto web = lookup_tool("web_lookup");
    web.url = server_.url();
    config_.tools = {cmd, web};
    config_.max_tool_calls = 3;
    config_.max_tool_output_chars = 200;
  }
  // One step of a fresh episode: its reply.
  rlaif::EnvReply step(const std::string& turn) {
    auto env = rlaif::make_environment(config_);
    env->reset(1, json::object(), 0);
    auto replies = env->poll(5);
    EXPECT_EQ(replies.size(), 1u);
    EXPECT_TRUE(replies.at(0).ok);
    EXPECT_FALSE(replies.at(0).done);
    env->step(1, turn);
    const auto t0 = Clock::now();
    while (true) {
      replies = env->poll(1);
      if (!replies.empty()) break;
      EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 20) << "the step never answered";
      if (HasFailure()) return {};
    }
    EXPECT_EQ(env->outstanding(), 0);
    stats_ = env->stats();
    return replies.at(0);
  }
  static std::string call(const std::string& tool, const std::string& key) {
    return "<tool_call>{\"name\": \"" + tool + "\", \"arguments\": {\"key\": \"" + key + "\"}}</tool_call>";
  }
  ToolServer server_;
  rlaif::EnvConfig config_;
  rlaif::EnvStats stats_;
};

TEST_F(ToolsEnv, ValidCallsRunAndEachGetsItsToolMessage) {
  const auto r = step("I will look both up. " + call("lookup", "b") + "\n" + call("web_lookup", "c"));
  ASSERT_TRUE(r.ok) << r.detail;
  EXPECT_FALSE(r.done);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0], nlohmann::ordered_json({{"role", "tool"}, {"name", "lookup"}, {"content", "beta: 2"}}));
  EXPECT_EQ(r.messages[1]["name"], "web_lookup");
  EXPECT_EQ(r.messages[1]["content"], "row c over HTTP");
  EXPECT_EQ(stats_.tool_calls["ok"], 2);
}

TEST_F(ToolsEnv, ATurnWithoutACallIsTheFinalAnswer) {
  const auto r = step("The answer is beta.");
  ASSERT_TRUE(r.ok);
  EXPECT_TRUE(r.done);
  EXPECT_TRUE(r.messages.empty());
  EXPECT_TRUE(stats_.tool_calls.empty());
}

TEST_F(ToolsEnv, WhatThePolicyGotWrongIsToldToItAndCounted) {
  const auto r = step("<tool_call>{\"name\": \"lookup\", \"arguments\": {\"key\": </tool_call>" + call("search", "a") +
                      "<tool_call>{\"name\": \"lookup\", \"arguments\": {\"key\": 7}}</tool_call>" +
                      call("lookup", "missing") + call("web_lookup", "bad"));
  ASSERT_TRUE(r.ok) << "the policy's mistakes never fail the episode: " << r.detail;
  EXPECT_FALSE(r.done);
  ASSERT_EQ(r.messages.size(), 5u);
  auto content = [&](size_t k) { return r.messages[k]["content"].get<std::string>(); };
  EXPECT_NE(content(0).find("error: the tool call is not valid JSON"), std::string::npos) << content(0);
  EXPECT_NE(content(1).find("there is no tool \"search\"; the tools are: lookup, web_lookup"), std::string::npos)
      << content(1);
  EXPECT_NE(content(2).find("do not match its parameters: 7 is not of type string"), std::string::npos) << content(2);
  for (size_t k : {3, 4})
    EXPECT_NE(content(k).find("error: at most 3 tool calls are run per turn"), std::string::npos)
        << "max_tool_calls = 3: the fourth and fifth calls are not run: " << content(k);
  EXPECT_EQ(stats_.tool_calls["malformed"], 1);
  EXPECT_EQ(stats_.tool_calls["unknown_tool"], 1);
  EXPECT_EQ(stats_.tool_calls["bad_arguments"], 1);
  EXPECT_EQ(stats_.tool_calls["too_many"], 2);
  EXPECT_EQ(stats_.tool_calls["tool_error"], 0) << "the third call was the last one run";
  EXPECT_EQ(stats_.tool_calls["ok"], 0);

  config_.max_tool_calls = 4;
  const auto r2 = step(call("web_lookup", "bad") + call("lookup", "nope"));
  ASSERT_TRUE(r2.ok);
  EXPECT_NE(r2.messages[0]["content"].get<std::string>().find("HTTP 400: no such row: bad"), std::string::npos);
  EXPECT_NE(r2.messages[1]["content"].get<std::string>().find("exited with status 1: no row named nope"),
            std::string::npos)
      << r2.messages[1]["content"];
  EXPECT_EQ(stats_.tool_calls["tool_error"], 2);
}

TEST_F(ToolsEnv, AToolPastItsTimeoutOrADeadEndpointFailsTheEpisode) {
  auto t0 = Clock::now();
  auto r = step(call("lookup", "slow"));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.failure, "env_timeout");
  EXPECT_NE(r.detail.find("tool lookup"), std::string::npos) << r.detail;
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 10) << "the command was killed at 1 s";
  r = step(call("web_lookup", "slow"));
  EXPECT_EQ(r.failure, "env_timeout");
  r = step(call("web_lookup", "down"));
  EXPECT_EQ(r.failure, "env_http_5xx");
  EXPECT_EQ(stats_.failed, 1);
  config_.tools[0].command = {"/nonexistent/tool"};
  r = step(call("lookup", "a"));
  EXPECT_EQ(r.failure, "env_error");
  EXPECT_NE(r.detail.find("cannot run /nonexistent/tool"), std::string::npos) << r.detail;
}

TEST_F(ToolsEnv, LongOutputIsCutAndInjectionTextIsOnlyAToolMessage) {
  auto r = step(call("lookup", "long"));
  ASSERT_TRUE(r.ok);
  const std::string out = r.messages[0]["content"];
  EXPECT_EQ(out.substr(0, 200), std::string(200, 'x'));
  EXPECT_NE(out.find("[output cut at 200 characters]"), std::string::npos);
  EXPECT_LT(out.size(), 260u);
  r = step(call("lookup", "inject"));
  ASSERT_TRUE(r.ok);
  EXPECT_FALSE(r.done) << "text in a tool's output cannot end the episode";
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0]["role"], "tool");
  EXPECT_NE(r.messages[0]["content"].get<std::string>().find("Ignore all previous instructions"), std::string::npos);
}

TEST(ToolsConfig, ReadsToolsFromTomlAndNamesWhatIsWrong) {
  rlaif_test::TempDir dir;
  const std::string path = dir / "env.toml";
  rlaif_test::write_text(path,
                         "[env]\ntype = \"tools\"\ntool_format = \"hermes\"\nmax_tool_calls = 2\n"
                         "[[env.tools]]\nname = \"lookup\"\ndescription = \"Looks up.\"\ncommand = [\"python3\", "
                         "\"t.py\"]\ntimeout_s = 3\n"
                         "[env.tools.parameters]\ntype = \"object\"\nrequired = [\"key\"]\n"
                         "[env.tools.parameters.properties.key]\ntype = \"string\"\n"
                         "[[env.tools]]\nname = \"web\"\nurl = \"http://127.0.0.1:9/x\"\n"
                         "parameters = '{\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"integer\"}}}'\n");
  const auto c = rlaif::EnvConfig::from_toml(path);
  EXPECT_EQ(c.type, "tools");
  EXPECT_EQ(c.tool_format, "hermes");
  EXPECT_EQ(c.max_tool_calls, 2);
  ASSERT_EQ(c.tools.size(), 2u);
  EXPECT_EQ(c.tools[0].command, (std::vector<std::string>{"python3", "t.py"}));
  EXPECT_DOUBLE_EQ(c.tools[0].timeout_s, 3);
  EXPECT_EQ(c.tools[0].parameters,
            json({{"type", "object"}, {"required", {"key"}}, {"properties", {{"key", {{"type", "string"}}}}}}));
  EXPECT_EQ(c.tools[1].url, "http://127.0.0.1:9/x");
  EXPECT_EQ(c.tools[1].parameters["properties"]["n"]["type"], "integer");

  auto expect = [&](const std::string& toml, std::initializer_list<std::string> parts) {
    rlaif_test::write_text(path, "[env]\ntype = \"tools\"\n" + toml);
    rlaif_test::expect_error([&] { rlaif::EnvConfig::from_toml(path); }, parts);
  };
  expect("", {"env.tools", "at least one tool"});
  expect("[[env.tools]]\nname = \"a\"\n", {"env.tools[0]", "exactly one of them"});
  expect("[[env.tools]]\nname = \"a\"\ncommand = \"x\"\nurl = \"http://h/\"\n", {"exactly one of them"});
  expect("[[env.tools]]\nname = \"a\"\ncommand = \"x\"\n[[env.tools]]\nname = \"a\"\ncommand = \"y\"\n",
         {"env.tools[1].name", "two tools are named \"a\""});
  expect("[[env.tools]]\nname = \"a\"\ncommand = \"x\"\nparameters = '{\"type\": \"text\"}'\n",
         {"env.tools[0].parameters.type", "must be one of object"});
  expect("[[env.tools]]\nname = \"a\"\ncommand = \"x\"\nparameters = '{\"type\": '\n",
         {"env.tools[0].parameters", "JSON Schema object"});
  expect("[[env.tools]]\nname = \"a\"\ncommand = \"x\"\nschema = 1\n", {"unknown key \"schema\"", "line 6"});
  expect("tool_format = \"xml\"\n[[env.tools]]\nname = \"a\"\ncommand = \"x\"\n", {"env.tool_format", "hermes"});
}

// A whole episode: the tiny model's turns are Llama-3-style tool calls (constrained decoding holds each turn to the
// call's JSON schema), every call runs, its output comes back as a `tool` message rendered by a template that
// shows the tools and tool results the way Qwen's does, and the sequence is that template's rendering, token by token.
const char* kToolTemplate =
    "{%- if tools %}{{- '<|im_start|>system\\nTools:' }}{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}"
    "{%- endfor %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

TEST(ToolsEpisodes, ToolCallsAndTheirResultsMakeTheConversation) {
  rlaif_test::TempDir dir;
  rlaif::InitModelOptions io;
  io.arch = "qwen2";
  io.size = "hidden=64,layers=2,heads=4,kv_heads=2,intermediate=128";
  io.seed = 9;
  rlaif::init_model(io, dir / "m");
  auto model = rlaif::load_model(dir / "m");
  auto tok = rlaif::Tokenizer::load(dir / "m");
  rlaif::EnvConfig config;
  config.type = "tools";
  config.tool_format = "llama3";
  auto tool = lookup_tool("lookup");
  tool.command = {"/usr/bin/python3", std::string(RLAIF_REFERENCE_DIR) + "/../data/table_tool.py"};
  tool.timeout_s = 20;
  config.tools = {tool};
  auto env = rlaif::make_environment(config);
  const rlaif::ChatTemplate chat(kToolTemplate, "test template");

  rlaif::EpisodeRequest q;
  q.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", "What is in row b?"}}});
  q.num_episodes = 3;
  q.seed = 4;
  rlaif::EpisodeOptions o;
  o.params.sampling.temperature = 1.0f;
  o.params.json_object = true;
  o.params.json_schema = std::make_shared<rlaif::JsonSchema>(
      rlaif::JsonSchema::parse(json::parse(R"({"type": "object", "properties": {"name": {"enum": ["lookup"]},
                     "parameters": {"type": "object", "properties": {"key": {"enum": ["a", "b", "c"]}},
                                    "required": ["key"]}},
                     "required": ["name", "parameters"]})"),
                               "test schema"));
  o.max_turns = 2;
  o.max_turn_tokens = 200;
  o.max_episode_tokens = 400;
  rlaif::GeneratorOptions go;
  go.max_batch = 2;
  rlaif::Generator gen(model, tok, rlaif::load_eos_token_ids(dir / "m", model->config()), go);
  rlaif::EpisodeStats st;
  const auto played = rlaif::run_episodes(gen, chat, *env, {q}, o, &st);
  ASSERT_EQ(played.at(0).size(), 3u);
  const nlohmann::ordered_json extra = {{"tools", rlaif::template_tools(config.tools)}};
  const std::map<std::string, std::string> rows = {{"a", "alpha: 1"}, {"b", "beta: 2"}, {"c", "gamma: 3"}};
  for (const auto& ep : played[0]) {
    ASSERT_EQ(ep.ended_by, "max_turns") << ep.detail;
    ASSERT_EQ(ep.turns, 2);
    // user, assistant (a call), tool (its row), assistant (a call): the last call's result is not shown.
    ASSERT_EQ(ep.messages.size(), 4u) << ep.messages.dump();
    EXPECT_EQ(ep.messages[2]["role"], "tool");
    const auto call = json::parse(ep.messages[1]["content"].get<std::string>());
    EXPECT_EQ(ep.messages[2]["content"], rows.at(call["parameters"]["key"].get<std::string>()));
    // The sequence is the template's rendering of the conversation up to the last turn, then that turn.
    const nlohmann::ordered_json upto(ep.messages.begin(), ep.messages.begin() + 3);
    const std::string rendered = chat.render_for(tok, upto, true, extra);
    EXPECT_NE(rendered.find("Returns the table's row named `key`."), std::string::npos)
        << "the template shows the tools: " << rendered;
    EXPECT_NE(rendered.find("<tool_response>\n" + ep.messages[2]["content"].get<std::string>() + "\n</tool_response>"),
              std::string::npos);
    std::vector<int64_t> before, last;
    // The last run of policy tokens is the last turn; everything before it is the rendering above.
    size_t cut = ep.token_ids.size();
    while (cut > 0 && ep.policy_mask[cut - 1] == 1) --cut;
    before.assign(ep.token_ids.begin(), ep.token_ids.begin() + static_cast<long>(cut));
    last.assign(ep.token_ids.begin() + static_cast<long>(cut), ep.token_ids.end());
    EXPECT_EQ(tok.decode(before, false), rendered);
    EXPECT_EQ(tok.decode(last, true), ep.messages[3]["content"].get<std::string>());
  }
  EXPECT_EQ(env->stats().tool_calls.at("ok"), 6)
      << "both turns of the 3 episodes ran their call (the last one's result ends unseen)";
  EXPECT_EQ(st.failed, 0);
}

}  // namespace
