// Reading the tool calls a policy wrote in its turn (internal; the "tools" environment). Two formats, as chat
// templates render them:
//  - "hermes" (Qwen2.5/3, Hermes, many others): each call is <tool_call>{"name": ..., "arguments": {...}}</tool_call>
//    anywhere in the turn;
//  - "llama3" (Llama 3.1-3.3 with custom tools): the whole turn is the call, {"name": ..., "parameters": {...}}, after
//    an optional <|python_tag|>; several calls are separated by ';'.
// "auto" reads <tool_call> tags when there are any, else a turn that is a JSON object with "name" and "parameters" or
// "arguments". Arguments written as a JSON string (OpenAI's style) are read from it. A call that cannot be read is
// kept with its error, so that the policy is told; a turn with no call is the final answer.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rlaif/environment.h"

namespace rlaif {

struct ToolCall {
  std::string name;
  nlohmann::json arguments = nlohmann::json::object();
  std::string error;  // "" when the call is well-formed; else what is wrong with it (the call is "malformed")
};

std::vector<ToolCall> parse_tool_calls(const std::string& turn, const std::string& format);

// The tools as transformers gives them to a chat template: [{"type": "function", "function": {name, description,
// parameters}}, ...].
nlohmann::ordered_json template_tools(const std::vector<ToolSpec>& tools);

}  // namespace rlaif
