// judge.toml: every key is read with its type checked; an unknown key is an error naming it (a typo must not be
// silently ignored).
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/toml_reader.h"
#include "rlaif/error.h"
#include "rlaif/judge.h"
#include "rlaif/judge_backend.h"

namespace rlaif {

const Choices<ResponseFormat> kResponseFormats = {{"json_schema", ResponseFormat::kJsonSchema},
                                                  {"json_object", ResponseFormat::kJsonObject},
                                                  {"none", ResponseFormat::kNone}};

toml::table parse_toml_file(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw Error("file not found", path, "check the path");
  try {
    return toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw Error(std::string("invalid TOML: ") + std::string(e.description()),
                path + ":" + std::to_string(e.source().begin.line), "fix the syntax");
  }
}

JudgeConfig JudgeConfig::from_toml(const std::string& path) {
  auto root = parse_toml_file(path);
  TomlReader top(root, path);
  auto c = read_tables(top, path);
  top.check_unknown(kTables);
  c.validate(path);
  return c;
}

JudgeConfig JudgeConfig::read_tables(TomlReader& top, const std::string& path) {
  JudgeConfig c;
  if (const toml::table* j = top.table("judge")) {
    TomlReader r(*j, path + ": judge");
    r.get("name", c.name);
    r.get("backend", c.backend);
    r.get("model_path", c.model_path);
    r.get("adapter", c.adapter);
    r.get("local_batch", c.local_batch);
    r.get("local_rationale_tokens", c.local_rationale_tokens);
    r.get("command_timeout_s", c.command_timeout_s);
    r.get("command_batch", c.command_batch);
    if (const toml::array* cmd = r.array("command"))
      for (const auto& part : *cmd) {
        if (!part.is_string()) throw Error("command must be a list of strings", path + ": judge.command");
        c.command.push_back(std::string(**part.as_string()));
      }
    r.get_strings("base_url", c.base_urls);
    r.get("model", c.model);
    r.get("api_key_env", c.api_key_env);
    r.get("temperature", c.temperature);
    r.get("max_tokens", c.max_tokens);
    r.get_choice("response_format", c.response_format, kResponseFormats);
    r.get("top_logprobs", c.top_logprobs);
    r.get("concurrency", c.http.max_in_flight);
    r.get("timeout_s", c.http.timeout_s);
    r.get("deadline_s", c.http.deadline_s);
    r.get("max_retries", c.http.max_retries);
    r.get("reply_retries", c.http.max_reply_retries);
    r.get("shuffle_group", c.shuffle_group);
    r.get("backoff_base_s", c.http.backoff_base_s);
    r.get("backoff_max_s", c.http.backoff_max_s);
    r.get("requests_per_minute", c.http.requests_per_minute);
    r.get("tokens_per_minute", c.http.tokens_per_minute);
    r.get("circuit_failures", c.http.circuit_failures);
    r.get("circuit_cooldown_s", c.http.circuit_cooldown_s);
    r.get("cache", c.cache_path);
    r.get("journal", c.journal_path);
    r.get("price_input_per_million", c.price_input_per_million);
    r.get("price_output_per_million", c.price_output_per_million);
    r.get("budget_tokens", c.budget_tokens);
    r.get("budget_cost", c.budget_cost);
    r.get("judge_weight", c.judge_weight);
    if (const toml::table* h = r.table("headers")) {
      for (const auto& [k, v] : *h) {
        if (!v.is_string())
          throw Error("header values must be strings", path + ": judge.headers." + std::string(k.str()));
        c.headers.push_back(std::string(k.str()) + ": " + std::string(**v.as_string()));
      }
    }
    r.check_unknown(
        "backend, base_url, model, api_key_env, temperature, max_tokens, response_format, top_logprobs, concurrency, "
        "timeout_s, deadline_s, max_retries, reply_retries, shuffle_group, backoff_base_s, backoff_max_s, "
        "requests_per_minute, "
        "tokens_per_minute, "
        "circuit_failures, circuit_cooldown_s, cache, journal, price_input_per_million, price_output_per_million, "
        "budget_tokens, budget_cost, judge_weight, headers, command, command_timeout_s, command_batch, model_path, "
        "adapter, local_batch, local_rationale_tokens, name");
  }
  if (const toml::table* rb = top.table("rubric")) {
    TomlReader r(*rb, path + ": rubric");
    std::string pass_fail;
    r.get("reference", c.rubric.reference);
    r.get("pass_fail", pass_fail);
    if (const toml::array* list = r.array("criteria")) {
      c.rubric.criteria.clear();
      for (size_t i = 0; i < list->size(); ++i) {
        const toml::node& n = *list->get(i);
        std::string at = path + ": rubric.criteria[" + std::to_string(i) + "]";
        if (!n.is_table()) throw Error("each criterion is a table ([[rubric.criteria]])", at);
        TomlReader cr(*n.as_table(), at);
        Criterion crit;
        cr.get("name", crit.name);
        cr.get("description", crit.description);
        cr.get("min", crit.min);
        cr.get("max", crit.max);
        cr.get("weight", crit.weight);
        cr.check_unknown("name, description, min, max, weight");
        c.rubric.criteria.push_back(crit);
      }
    }
    if (!pass_fail.empty()) {
      std::string reference = c.rubric.reference;
      c.rubric = Rubric::pass_fail_check(pass_fail);
      c.rubric.reference = reference;
    }
    r.check_unknown("reference, pass_fail, criteria");
  }
  if (const toml::table* t = top.table("template")) {
    TomlReader r(*t, path + ": template");
    r.get("system", c.tmpl.system);
    r.get("user", c.tmpl.user);
    r.check_unknown("system, user");
  }
  if (const toml::array* list = top.array("graders")) {
    for (size_t i = 0; i < list->size(); ++i) {
      const toml::node& n = *list->get(i);
      std::string at = path + ": graders[" + std::to_string(i) + "]";
      if (!n.is_table()) throw Error("each grader is a table ([[graders]])", at);
      TomlReader gr(*n.as_table(), at);
      Grader g;
      std::string schema;
      gr.get("name", g.name);
      gr.get("type", g.type);
      gr.get("value", g.value);
      gr.get("ignore_case", g.ignore_case);
      gr.get("schema", schema);
      gr.get("min_chars", g.min_chars);
      gr.get("max_chars", g.max_chars);
      gr.get("min_words", g.min_words);
      gr.get("weight", g.weight);
      gr.get("required", g.required);
      gr.check_unknown("name, type, value, ignore_case, schema, min_chars, max_chars, min_words, weight, required");
      if (!schema.empty()) {
        g.schema = nlohmann::json::parse(schema, nullptr, false);
        if (g.schema.is_discarded() || !g.schema.is_object())
          throw Error("schema must be a JSON object written as a string", at + ".schema",
                      "e.g. schema = '{\"type\": \"object\"}'");
      }
      g.validate(at);
      c.graders.push_back(std::move(g));
    }
  }
  if (const toml::array* list = top.array("panel")) {
    // A panel judge's own file is read while this flag is set: a [[panel]] in it (a file naming itself, say) would
    // recurse without end.
    thread_local bool reading_member = false;
    if (reading_member)
      throw Error("a panel judge's file may not have [[graders]] or [[panel]] of its own", path,
                  "list every judge in the first file's [[panel]]");
    struct Reading {
      Reading() { reading_member = true; }
      ~Reading() { reading_member = false; }
    };
    for (size_t i = 0; i < list->size(); ++i) {
      const toml::node& n = *list->get(i);
      std::string at = path + ": panel[" + std::to_string(i) + "]";
      if (!n.is_table()) throw Error("each judge of the panel is a table ([[panel]])", at);
      TomlReader pr(*n.as_table(), at);
      std::string name, config;
      double weight = 1;
      pr.get("name", name);
      pr.get("config", config);
      pr.get("weight", weight);
      pr.check_unknown("name, config, weight");
      if (config.empty())
        throw Error("a panel judge needs its judge.toml", at + ".config", "config = \"judges/second.toml\"");
      JudgeConfig member;
      {
        Reading reading;
        member = JudgeConfig::from_toml(config);
      }
      if (!member.graders.empty() || !member.panel.empty())
        throw Error("a panel judge's file may not have [[graders]] or [[panel]] of its own", config,
                    "put the graders in " + path + ", beside the panel");
      if (!name.empty()) member.name = name;
      member.judge_weight = weight;
      c.panel.push_back(std::move(member));
    }
  }
  return c;
}

JudgeConfig JudgeConfig::rank_share(int rank, int world) const {
  JudgeConfig c = *this;
  c.http.requests_per_minute /= world;
  c.http.tokens_per_minute /= world;
  c.budget_tokens /= world;
  c.budget_cost /= world;
  if (rank > 0 && !c.journal_path.empty()) c.journal_path += ".rank" + std::to_string(rank);
  for (auto& member : c.panel) member = member.rank_share(rank, world);
  return c;
}

void JudgeConfig::validate(const std::string& where) const {
  if (!judge_backend_registered(backend))
    throw Error("unknown backend \"" + backend + "\"", where + ": judge.backend", "use openai, command, local or none");
  if (backend == "local") {
    if (model_path.empty())
      throw Error("the local backend needs the judge model's folder", where + ": judge.model_path",
                  "model_path = \"models/judge\"");
    if (local_batch < 1) throw Error("must be >= 1", where + ": judge.local_batch");
    if (local_rationale_tokens < 0 || local_rationale_tokens > 1024)
      throw Error("must be in [0, 1024]", where + ": judge.local_rationale_tokens", "0 = no rationale");
  } else if (backend == "none") {
    if (graders.empty() && panel.empty())
      throw Error("the none backend (rule graders only) needs at least one grader with a positive weight",
                  where + ": judge.backend", "add [[graders]] or a [[panel]], or choose the openai or command backend");
  } else if (backend == "command") {
    if (command.empty())
      throw Error("the command backend needs a command", where + ": judge.command",
                  "e.g. command = [\"python3\", \"reward.py\"]");
    if (!(command_timeout_s > 0) || command_batch < 1)
      throw Error("command_timeout_s > 0 and command_batch >= 1", where + ": judge");
  } else if (backend == "openai") {
    if (base_urls.empty())
      throw Error("base_url is an empty list", where + ": judge.base_url",
                  "give one URL, or a list of servers of the same model");
    for (const auto& url : base_urls)
      if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0)
        throw Error("base_url \"" + url + "\" must start with http:// or https://", where + ": judge.base_url",
                    "e.g. http://127.0.0.1:8000/v1");
    if (model.empty())
      throw Error("the judge model is not set", where + ": judge.model", "the model name the server expects");
  }
  if (http.max_in_flight < 1) throw Error("must be >= 1", where + ": judge.concurrency");
  if (!(http.timeout_s > 0)) throw Error("must be > 0", where + ": judge.timeout_s");
  if (http.max_retries < 0) throw Error("must be >= 0", where + ": judge.max_retries");
  if (http.max_reply_retries < 0) throw Error("must be >= 0", where + ": judge.reply_retries");
  if (judge_weight < 0 || (judge_weight == 0 && graders.empty() && panel.empty()))
    throw Error("judge_weight must be >= 0, and > 0 when there are no graders", where + ": judge.judge_weight");
  if (name.empty() || name.find('/') != std::string::npos)
    throw Error("a judge's name must be non-empty and without '/'", where + ": judge.name", "e.g. name = \"gpt\"");
  std::set<std::string> names = {name};
  for (const auto& c : rubric.criteria) names.insert(c.name);
  for (const auto& g : graders) names.insert(g.name);
  for (size_t i = 0; i < panel.size(); ++i) {
    const std::string at = where + ": panel[" + std::to_string(i) + "]";
    if (panel[i].backend == "none")
      throw Error("a panel judge cannot use the none backend", at, "graders go beside the panel");
    if (!(panel[i].judge_weight > 0)) throw Error("weight must be > 0", at + ".weight");
    if (panel[i].name.empty() || panel[i].name.find('/') != std::string::npos)
      throw Error("a judge's name must be non-empty and without '/'", at + ".name");
    if (!names.insert(panel[i].name).second)
      throw Error("the name \"" + panel[i].name + "\" is taken (by another judge, a criterion or a grader)",
                  at + ".name", "metrics are named after it: choose another");
    panel[i].validate(at);
  }
  if (max_tokens < 1) throw Error("must be >= 1", where + ": judge.max_tokens");
  rubric.validate(where + ": rubric");
  tmpl.validate(where + ": template");
}

}  // namespace rlaif
