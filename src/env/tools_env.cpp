#include "env/tools_env.h"

#include "core/subprocess.h"
#include "env/tool_calls.h"
#include "rlaif/graders.h"
#include "rlaif/http_client.h"

namespace rlaif {
namespace {

// At most `n` bytes of `text`, cut on a UTF-8 character boundary, with a note when cut.
std::string cut(const std::string& text, size_t n) {
  if (text.size() <= n) return text;
  size_t end = n;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end) + "\n[output cut at " + std::to_string(n) + " characters]";
}

}  // namespace

ToolsEnvironment::ToolsEnvironment(EnvConfig config) : config_(std::move(config)) {}

ToolsEnvironment::~ToolsEnvironment() { work_.clear(); }  // waits for the calls still running

nlohmann::ordered_json ToolsEnvironment::template_extra() const { return {{"tools", template_tools(config_.tools)}}; }

void ToolsEnvironment::reset(int64_t episode, const nlohmann::json&, uint64_t) {
  replies_.opened(episode);
  EnvReply r;
  r.episode = episode;
  r.ok = true;  // no observation: the prompt is the first turn's
  std::lock_guard<std::mutex> lock(mu_);
  replies_.push(std::move(r), true);
}

void ToolsEnvironment::step(int64_t episode, const std::string& action) {
  std::lock_guard<std::mutex> lock(mu_);
  ++in_flight_;
  work_.push_back(std::async(std::launch::async, [this, episode, action] {
    EnvReply r = run_calls(episode, action);
    std::lock_guard<std::mutex> lock(mu_);
    --in_flight_;
    replies_.push(std::move(r), false);
  }));
}

void ToolsEnvironment::close(int64_t episode) { replies_.closed(episode); }

std::vector<EnvReply> ToolsEnvironment::poll(double wait_s) {
  auto out = replies_.poll(wait_s);
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = work_.begin(); it != work_.end();)
    it = it->wait_for(std::chrono::seconds(0)) == std::future_status::ready ? work_.erase(it) : std::next(it);
  return out;
}

int64_t ToolsEnvironment::outstanding() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_flight_ + replies_.queued();
}

EnvReply ToolsEnvironment::run_calls(int64_t episode, const std::string& action) {
  const auto t0 = std::chrono::steady_clock::now();
  EnvReply r;
  r.episode = episode;
  r.attempts = 1;
  r.messages = nlohmann::ordered_json::array();
  const auto calls = parse_tool_calls(action, config_.tool_format);
  for (size_t k = 0; k < calls.size() && r.failure.empty(); ++k) {
    std::string content;
    if (static_cast<int>(k) >= config_.max_tool_calls) {
      replies_.count_tool_call("too_many");
      content = "error: at most " + std::to_string(config_.max_tool_calls) + " tool calls are run per turn";
    } else {
      content = run_call(calls[k], r.failure, r.detail);
    }
    r.messages.push_back(
        {{"role", "tool"}, {"name", calls[k].name}, {"content", cut(content, config_.max_tool_output_chars)}});
    r.observation += (r.observation.empty() ? "" : "\n") + r.messages.back()["content"].get<std::string>();
  }
  r.ok = r.failure.empty();
  r.done = r.ok && calls.empty();  // no call: the turn is the final answer
  r.raw = r.messages;
  r.latency_s = seconds_since(t0);
  return r;
}

std::string ToolsEnvironment::run_call(const ToolCall& call, std::string& failure, std::string& detail) {
  if (!call.error.empty()) {
    replies_.count_tool_call("malformed");
    return "error: " + call.error;
  }
  const ToolSpec* tool = nullptr;
  std::string names;
  for (const auto& t : config_.tools) {
    if (t.name == call.name) tool = &t;
    names += (names.empty() ? "" : ", ") + t.name;
  }
  if (!tool) {
    replies_.count_tool_call("unknown_tool");
    return "error: there is no tool \"" + call.name + "\"; the tools are: " + names;
  }
  std::string why;
  if (!json_matches_schema(call.arguments, tool->parameters, &why)) {
    replies_.count_tool_call("bad_arguments");
    return "error: the arguments of " + tool->name + " do not match its parameters: " + why;
  }
  return run_tool(*tool, call.arguments, failure, detail);
}

std::string ToolsEnvironment::run_tool(const ToolSpec& tool, const nlohmann::json& arguments, std::string& failure,
                                       std::string& detail) {
  const std::string input = arguments.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  auto tool_error = [&](const std::string& what) {
    replies_.count_tool_call("tool_error");
    return "error: " + what;
  };
  auto fail = [&](const std::string& cause, const std::string& what) {
    replies_.count_tool_call("failed");
    failure = cause;
    detail = "tool " + tool.name + ": " + what;
    return std::string("error: ") + what;
  };
  if (!tool.command.empty()) {
    const ProcessResult run = run_process(tool.command, input, tool.timeout_s);
    if (!run.failure.empty()) return fail("env_error", run.failure);
    if (run.timed_out) return fail("env_timeout", "ran past its timeout of " + std::to_string(tool.timeout_s) + " s");
    if (run.exit_status == 127 && run.err.rfind("cannot run ", 0) == 0) return fail("env_error", tail_of(run.err));
    if (run.exit_status != 0)
      return tool_error("the tool exited with status " + std::to_string(run.exit_status) + ": " + tail_of(run.err));
    replies_.count_tool_call("ok");
    std::string out = run.out;  // less the line end a program's last line has
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
  }
  HttpClientOptions o;
  o.max_in_flight = 1;
  o.timeout_s = tool.timeout_s;
  o.max_retries = 0;  // a call may act on the world: it is sent once
  o.circuit_failures = 0;
  HttpClient client(o);
  HttpResponse got;
  client.run({HttpRequest{tool.url, input, {}, 0}}, [&](size_t, HttpResponse&& r) { got = std::move(r); });
  if (got.failure.empty()) {
    replies_.count_tool_call("ok");
    return got.body;
  }
  if (got.failure == "http_4xx") return tool_error("HTTP " + std::to_string(got.status) + ": " + tail_of(got.body));
  if (got.failure == "timeout") return fail("env_timeout", "no answer within " + std::to_string(tool.timeout_s) + " s");
  if (got.failure == "http_5xx" || got.failure == "http_429")
    return fail("env_http_5xx", "HTTP " + std::to_string(got.status) + ": " + tail_of(got.body));
  return fail("env_connection", got.failure + ": " + got.detail);
}

}  // namespace rlaif
