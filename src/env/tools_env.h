// The "tools" environment (internal; see rlaif/environment.h): the policy's turn is read for tool calls
// (env/tool_calls.h); each call is checked (a known tool, arguments valid under its schema) and run, a command or an
// HTTP POST, on a thread of its own so that poll() never waits on a tool. The reply is one `tool` message per call.
// What the policy got wrong (a malformed call, an unknown tool, bad arguments, more calls than max_tool_calls, a tool
// that reports an error: a command's non-zero exit, an HTTP 4xx) is told to it in that message and counted; what
// the policy cannot help (a tool past its timeout, a command that cannot be run, an HTTP 5xx or connection error)
// fails the episode, which then leaves its group. A turn without a tool call is the final answer: done.
#pragma once

#include <future>
#include <list>

#include "env/env_replies.h"

namespace rlaif {

struct ToolCall;  // env/tool_calls.h

class ToolsEnvironment : public Environment {
 public:
  explicit ToolsEnvironment(EnvConfig config);
  ~ToolsEnvironment() override;
  void reset(int64_t episode, const nlohmann::json& row, uint64_t seed) override;
  void step(int64_t episode, const std::string& action) override;
  void close(int64_t episode) override;
  std::vector<EnvReply> poll(double wait_s) override;
  int64_t outstanding() const override;
  int capacity() const override { return config_.max_concurrent; }
  EnvStats stats() const override { return replies_.stats(); }
  nlohmann::ordered_json template_extra() const override;

 private:
  EnvReply run_calls(int64_t episode, const std::string& action);  // on a worker thread
  // One call's `tool` message content; sets `failure` (and `detail`) when the episode must fail.
  std::string run_call(const ToolCall& call, std::string& failure, std::string& detail);
  std::string run_tool(const ToolSpec& tool, const nlohmann::json& arguments, std::string& failure,
                       std::string& detail);

  EnvConfig config_;
  EnvReplies replies_;
  mutable std::mutex mu_;
  int64_t in_flight_ = 0;              // steps whose calls are running
  std::list<std::future<void>> work_;  // the steps' threads (finished ones are dropped by poll())
};

}  // namespace rlaif
