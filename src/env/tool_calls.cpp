#include "env/tool_calls.h"

namespace rlaif {
namespace {

// Where the JSON value starting at text[start] ('{') ends (one past its closing brace), or npos when it never closes.
size_t object_end(const std::string& text, size_t start) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = start; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
    }
  }
  return std::string::npos;
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\r\n") - a + 1);
}

// One call's JSON text -> the call (with its error when it cannot be read).
ToolCall read_call(const std::string& text) {
  ToolCall call;
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    call.error = "the tool call is not valid JSON: " + text.substr(0, 200);
    return call;
  }
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || j["name"].get<std::string>().empty()) {
    call.error = "a tool call is a JSON object with a \"name\" (a string) and \"arguments\" (an object)";
    return call;
  }
  call.name = j["name"].get<std::string>();
  const char* key = j.contains("arguments") ? "arguments" : j.contains("parameters") ? "parameters" : nullptr;
  if (!key) return call;  // no arguments: {}
  nlohmann::json args = j[key];
  if (args.is_string()) args = nlohmann::json::parse(args.get<std::string>(), nullptr, false);
  if (args.is_discarded() || !args.is_object()) {
    call.error = std::string("the tool call's \"") + key + "\" must be a JSON object";
    return call;
  }
  call.arguments = args;
  return call;
}

std::vector<ToolCall> hermes_calls(const std::string& turn) {
  static const std::string open = "<tool_call>", close = "</tool_call>";
  std::vector<ToolCall> calls;
  for (size_t at = turn.find(open); at != std::string::npos; at = turn.find(open, at)) {
    const size_t body = at + open.size();
    const size_t end = turn.find(close, body);
    calls.push_back(read_call(trim(turn.substr(body, end == std::string::npos ? std::string::npos : end - body))));
    if (end == std::string::npos) break;  // an unclosed tag: its JSON is read up to the turn's end
    at = end + close.size();
  }
  return calls;
}

// strict: the turn is meant as calls (format "llama3"); else ("auto") only an object naming a tool with its
// arguments counts as a call, so that a final answer written in JSON stays an answer.
std::vector<ToolCall> llama3_calls(const std::string& turn, bool strict) {
  static const std::string tag = "<|python_tag|>";
  std::string text = trim(turn);
  const bool tagged = text.rfind(tag, 0) == 0;
  if (tagged) text = trim(text.substr(tag.size()));
  if (text.empty() || text[0] != '{') return {};
  std::vector<ToolCall> calls;
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = object_end(text, at);
    if (end == std::string::npos) {
      calls.push_back(read_call(text.substr(at)));
      break;
    }
    calls.push_back(read_call(text.substr(at, end - at)));
    at = text.find_first_not_of(" \t\r\n;", end);
    if (at == std::string::npos) break;
    if (text[at] != '{') {
      ToolCall bad;
      bad.error = "a turn of tool calls holds only the calls' JSON objects, separated by ';'";
      calls.push_back(bad);
      break;
    }
  }
  if (!strict && !tagged) {
    const auto j = nlohmann::json::parse(text.substr(0, object_end(text, 0)), nullptr, false);
    const bool looks_like_call =
        j.is_object() && j.contains("name") && (j.contains("parameters") || j.contains("arguments"));
    if (!looks_like_call) return {};
  }
  return calls;
}

}  // namespace

std::vector<ToolCall> parse_tool_calls(const std::string& turn, const std::string& format) {
  if (format == "hermes") return hermes_calls(turn);
  if (format == "llama3") return llama3_calls(turn, true);
  auto calls = hermes_calls(turn);
  return calls.empty() ? llama3_calls(turn, false) : calls;
}

nlohmann::ordered_json template_tools(const std::vector<ToolSpec>& tools) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& t : tools) {
    nlohmann::ordered_json f;
    f["name"] = t.name;
    f["description"] = t.description;
    f["parameters"] = nlohmann::ordered_json::parse(t.parameters.dump());
    out.push_back({{"type", "function"}, {"function", f}});
  }
  return out;
}

}  // namespace rlaif
