// Environments for multi-turn episodes: the policy's turn is an action, the environment answers with an observation,
// a reward and whether the episode is done. Three kinds behind one interface (docs/episodes.md):
//  - "openenv": servers speaking OpenEnv's HTTP protocol (POST /reset, POST /step with {"action": {...}}, each
//    answering {"observation": {...}, "reward": number | null, "done": bool}). A server process holds one environment,
//    so `base_urls` is a pool: an episode holds one server from its reset until close(), and episodes beyond the pool
//    wait for a free server. A reset is retried with backoff on connection errors, timeouts, 429 and 5xx; a step only
//    when the connection failed before the request was sent (a step that may have reached the server is never sent
//    twice: the episode fails instead).
//  - "command": one long-running program speaking JSON lines on stdin/stdout, many episodes interleaved by id:
//      in:  {"id": "7", "op": "reset", "row": {...the data row...}, "seed": 1234}
//           {"id": "7", "op": "step", "action": "the policy's turn"}
//           {"id": "7", "op": "close"}                       (no reply expected)
//      out: {"id": "7", "observation": "text", "reward": 0.5 | null, "done": false}   (replies in any order)
//           {"id": "7", "error": "why"}                     (the episode fails)
//    A program that exits fails the episodes it held (with its exit status and the end of its stderr); the next
//    reset starts it again.
//  - "tools": no environment program; the policy calls tools through its chat template's tool-call format (the tools
//    are given to the template as transformers gives them). A turn with tool calls gets one `tool` message per call
//    (the tool's output, or an error the policy can read: a malformed call, an unknown tool, arguments that do not
//    match the tool's JSON schema); a turn without one is the final answer and ends the episode.
// Calls never block on the environment: reset() and step() start a request, poll() returns the replies as they
// arrive, so a caller keeps decoding other episodes meanwhile. A request that fails ends its episode with a failure
// cause; it never hangs (each request has timeout_s) and is never retried where that could apply an action twice.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace rlaif {

class TomlReader;

// A tool of a "tools" environment: run as a command (the arguments' JSON on its stdin, its stdout the result) or
// POSTed to an HTTP endpoint (the arguments' JSON as the body, the reply's body the result).
struct ToolSpec {
  std::string name, description;
  nlohmann::json parameters = nlohmann::json::object();  // a JSON Schema of the arguments (the graders' subset)
  std::vector<std::string> command;
  std::string url;
  double timeout_s = 10;
};

struct EnvConfig {
  std::string type;                      // "openenv" | "command" | "tools"
  std::vector<std::string> base_urls;    // openenv: the pool, one environment per server ("http://host:port[/prefix]")
  std::vector<std::string> command;      // command: the program and its arguments
  std::string action_field = "message";  // openenv: the action sent is {"<action_field>": "the policy's turn"}
  std::string observation_field;         // openenv: the observation's field shown to the policy; "" = its only
                                         // string field, else the observation's JSON
  double timeout_s = 30;                 // per request (reset or step)
  int max_retries = 2;                   // retries of a reset (and of a step that never reached the server)
  double backoff_base_s = 0.25;          // retry k waits base * 2^(k-1)
  int max_concurrent = 64;               // command, tools: episodes in flight at once (openenv: the pool's size)
  std::vector<ToolSpec> tools;           // tools: the tools ([[env.tools]])
  std::string tool_format = "auto";      // tools: "hermes" (<tool_call> JSON, Qwen), "llama3" (a JSON turn), "auto"
  int max_tool_calls = 4;                // tools: calls run per turn (more are answered with an error)
  int max_tool_output_chars = 4000;      // tools: a longer output is cut, with a note saying so
  // Limits of one episode (used by the episode runner).
  int max_turns = 4;
  int max_turn_tokens = 256;
  int max_episode_tokens = 1024;
  // rlaif train: an episode's reward = reward_weight x the environment's rewards summed + judge_weight x the judge's
  // reward on the whole trajectory (the judge only when the run has a [judge] or [[graders]]).
  double reward_weight = 1.0;
  double judge_weight = 1.0;

  // Reads the [env] table of `top` (none: type stays ""). Unknown keys are errors naming file, key and line.
  static EnvConfig read_table(TomlReader& top, const std::string& path);
  // Reads [env] from a TOML file and validates it.
  static EnvConfig from_toml(const std::string& path);
  // Throws rlaif::Error naming the key when the settings cannot work (no base_urls for openenv, ...).
  void validate(const std::string& where) const;
};

// One answer of the environment to a reset or a step, or the failure that ends the episode.
struct EnvReply {
  int64_t episode = 0;
  bool ok = false;
  std::string observation;          // the text shown to the policy
  nlohmann::json raw;               // the observation as the environment sent it
  std::optional<double> reward;     // the environment's reward for the last action (none at a reset, usually)
  bool done = false;                // the environment ended the episode
  nlohmann::ordered_json messages;  // tools: the messages the observation is (role "tool"); empty: a user message
  std::string failure;              // "" when ok; else env_timeout, env_connection, env_http_4xx, env_http_5xx,
                                    // env_bad_reply, env_error, env_died
  std::string detail;               // human-readable detail of the failure
  int attempts = 0;
  double latency_s = 0;  // from the request's start to its reply (waiting for a free server excluded)
};

struct EnvStats {
  int64_t resets = 0, steps = 0, failed = 0, retries = 0;
  int64_t restarts = 0;                       // command: times the program was started again after it exited
  int64_t bad_lines = 0;                      // command: stdout lines that were not a reply with a known id
  std::map<std::string, int64_t> failures;    // failed requests by cause
  std::map<std::string, int64_t> tool_calls;  // tools: calls by outcome (ok, malformed, unknown_tool, bad_arguments,
                                              // tool_error, too_many, failed)
  double latency_s = 0;                       // summed over replies (latency_s / (resets + steps) is the mean)
};

class Environment {
 public:
  virtual ~Environment() = default;
  // Starts episode `episode` (an id not in use) for data `row`; `seed` lets a deterministic environment repeat itself.
  virtual void reset(int64_t episode, const nlohmann::json& row, uint64_t seed) = 0;
  // Sends the policy's turn to a started episode whose last reply has arrived.
  virtual void step(int64_t episode, const std::string& action) = 0;
  // Ends an episode (done, failed, or stopped by a limit) and frees what it held; a reply still on its way is dropped.
  virtual void close(int64_t episode) = 0;
  // The replies that have arrived; waits up to wait_s for the first one while requests are outstanding.
  virtual std::vector<EnvReply> poll(double wait_s) = 0;
  // Requests sent (or waiting for a server) whose reply poll() has not returned yet.
  virtual int64_t outstanding() const = 0;
  // Episodes that can run at once without waiting (openenv: the pool's size).
  virtual int capacity() const = 0;
  virtual EnvStats stats() const = 0;
  // More variables for the chat template (tools: {"tools": [...]}, as transformers passes them).
  virtual nlohmann::ordered_json template_extra() const { return nlohmann::ordered_json::object(); }
};

std::unique_ptr<Environment> make_environment(const EnvConfig& config);

}  // namespace rlaif
