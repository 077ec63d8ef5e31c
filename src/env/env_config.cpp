#include <cmath>

#include "core/toml_reader.h"
#include "rlaif/environment.h"

namespace rlaif {

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
  r.check_unknown();
  return c;
}

EnvConfig EnvConfig::from_toml(const std::string& path) {
  auto root = parse_toml_file(path);
  TomlReader top(root, path);
  auto c = read_table(top, path);
  top.check_unknown("env");
  if (c.type.empty()) throw Error("no [env] table", path, "add [env] with type = \"openenv\" or \"command\"");
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
  } else {
    throw Error("unknown environment type \"" + type + "\"", key("type"), "use openenv or command");
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
