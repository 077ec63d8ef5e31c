#include <cmath>
#include <set>
#include <sstream>

#include "core/toml_reader.h"
#include "rlaif/environment.h"
#include "rlaif/graders.h"

namespace rlaif {
namespace {

// One [[env.tools]] table. Its parameters are a JSON Schema, written as a JSON string or as a TOML table.
ToolSpec read_tool(const toml::node& n, const std::string& path, size_t i) {
  const std::string at = path + ": env.tools[" + std::to_string(i) + "]";
  if (!n.is_table()) throw Error("each tool is a table ([[env.tools]])", at);
  TomlReader r(*n.as_table(), at);
  ToolSpec t;
  r.get("name", t.name);
  r.get("description", t.description);
  r.get_strings("command", t.command);
  r.get("url", t.url);
  r.get("timeout_s", t.timeout_s);
  if (const toml::node* p = n.as_table()->get("parameters")) {
    std::string text;
    if (p->is_string()) {
      r.get("parameters", text);
    } else if (p->is_table()) {
      r.table("parameters");
      std::ostringstream out;
      out << toml::json_formatter{*p->as_table()};
      text = out.str();
    } else {
      text = "not a schema";
    }
    t.parameters = nlohmann::json::parse(text, nullptr, false);
    if (t.parameters.is_discarded() || !t.parameters.is_object())
      throw Error("must be a JSON Schema object, as a JSON string or a TOML table", at + ".parameters",
                  "parameters = '{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}'");
  }
  r.check_unknown("name, description, parameters, command, url, timeout_s");
  return t;
}

}  // namespace

EnvConfig EnvConfig::read_table(TomlReader& top, const std::string& path) {
  EnvConfig c;
  const toml::table* t = top.table("env");
  if (!t) return c;
  TomlReader r(*t, path + ": env");
  r.get("type", c.type);
  r.get_strings("base_urls", c.base_urls);
  r.get_strings("command", c.command);
  r.get("action_field", c.action_field);
  r.get("observation_field", c.observation_field);
  r.get("timeout_s", c.timeout_s);
  r.get("max_retries", c.max_retries);
  r.get("backoff_base_s", c.backoff_base_s);
  r.get("max_concurrent", c.max_concurrent);
  r.get("max_turns", c.max_turns);
  r.get("max_turn_tokens", c.max_turn_tokens);
  r.get("max_episode_tokens", c.max_episode_tokens);
  r.get("reward_weight", c.reward_weight);
  r.get("judge_weight", c.judge_weight);
  r.get("tool_format", c.tool_format);
  r.get("max_tool_calls", c.max_tool_calls);
  r.get("max_tool_output_chars", c.max_tool_output_chars);
  if (const toml::array* list = r.array("tools"))
    for (size_t i = 0; i < list->size(); ++i) c.tools.push_back(read_tool(*list->get(i), path, i));
  r.check_unknown();
  return c;
}

EnvConfig EnvConfig::from_toml(const std::string& path) {
  auto root = parse_toml_file(path);
  TomlReader top(root, path);
  auto c = read_table(top, path);
  top.check_unknown("env");
  if (c.type.empty())
    throw Error("no [env] table", path, "add [env] with type = \"openenv\", \"command\" or \"tools\"");
  c.validate(path);
  return c;
}

void EnvConfig::validate(const std::string& where) const {
  auto key = [&](const char* k) { return where + ": env." + k; };
  if (type == "openenv") {
    if (base_urls.empty())
      throw Error("an openenv environment needs at least one server", key("base_urls"),
                  "base_urls = [\"http://127.0.0.1:8000\"] (one environment per server process)");
    for (const auto& u : base_urls)
      if (u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0)
        throw Error("\"" + u + "\" is not an http:// or https:// URL", key("base_urls"));
    if (action_field.empty())
      throw Error("must not be empty", key("action_field"), "the field of the action that holds the policy's turn");
  } else if (type == "command") {
    if (command.empty())
      throw Error("a command environment needs the program to run", key("command"),
                  "command = [\"python3\", \"my_env.py\"]");
  } else if (type == "tools") {
    if (tools.empty())
      throw Error("a tools environment needs at least one tool", key("tools"),
                  "add [[env.tools]] with name, description, parameters and command or url (docs/episodes.md)");
    if (tool_format != "auto" && tool_format != "hermes" && tool_format != "llama3")
      throw Error("unknown tool-call format \"" + tool_format + "\"", key("tool_format"),
                  "use hermes (<tool_call> JSON: Qwen, Hermes), llama3 (the turn is the JSON call) or auto");
    if (max_tool_calls < 1) throw Error("must be >= 1", key("max_tool_calls"));
    if (max_tool_output_chars < 1) throw Error("must be >= 1", key("max_tool_output_chars"));
    std::set<std::string> names;
    for (size_t i = 0; i < tools.size(); ++i) {
      const ToolSpec& t = tools[i];
      const std::string at = where + ": env.tools[" + std::to_string(i) + "]";
      if (t.name.empty()) throw Error("every tool needs a name", at + ".name");
      if (!names.insert(t.name).second) throw Error("two tools are named \"" + t.name + "\"", at + ".name");
      if (t.command.empty() == t.url.empty())
        throw Error("a tool is either a command or a url (exactly one of them)", at,
                    "command = [\"python3\", \"lookup.py\"] (the arguments' JSON on stdin) or url = \"http://...\"");
      if (!t.url.empty() && t.url.rfind("http://", 0) != 0 && t.url.rfind("https://", 0) != 0)
        throw Error("\"" + t.url + "\" is not an http:// or https:// URL", at + ".url");
      if (!(t.timeout_s > 0)) throw Error("must be > 0 seconds", at + ".timeout_s");
      const std::string bad = schema_error(t.parameters, at + ".parameters");
      if (!bad.empty())
        throw Error("the parameters are not a JSON Schema rlaif can check", bad, "see docs/episodes.md");
    }
  } else {
    throw Error("unknown environment type \"" + type + "\"", key("type"), "use openenv, command or tools");
  }
  if (!(timeout_s > 0)) throw Error("must be > 0 seconds", key("timeout_s"));
  if (max_retries < 0) throw Error("must be >= 0", key("max_retries"));
  if (backoff_base_s < 0) throw Error("must be >= 0 seconds", key("backoff_base_s"));
  if (max_concurrent < 1) throw Error("must be >= 1", key("max_concurrent"));
  if (max_turns < 1) throw Error("must be >= 1", key("max_turns"));
  if (max_turn_tokens < 1) throw Error("must be >= 1", key("max_turn_tokens"));
  if (max_episode_tokens < max_turn_tokens)
    throw Error("must be >= max_turn_tokens (" + std::to_string(max_turn_tokens) + ")", key("max_episode_tokens"));
  if (!std::isfinite(reward_weight) || !std::isfinite(judge_weight) || reward_weight < 0 || judge_weight < 0)
    throw Error("reward_weight and judge_weight must be finite and >= 0", key("reward_weight"),
                "1 and 1 add the environment's reward and the judge's");
}

}  // namespace rlaif
