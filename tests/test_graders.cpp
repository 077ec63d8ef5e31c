// Rule graders: each rule and its errors.
#include <cmath>
#include <set>

#include "rlaif/content_check.h"
#include "rlaif/graders.h"
#include "rlaif/jsonl.h"
#include "rlaif/judge.h"
#include "test_util.h"

namespace {

rlaif::Grader grader(const std::string& type, const std::string& value = "") {
  rlaif::Grader g;
  g.type = type;
  g.value = value;
  return g;
}

TEST(Graders, EachRuleAndItsErrors) {
  auto exact = grader("exact", "{reference}");
  exact.validate("g");
  EXPECT_EQ(exact.grade("  Paris \n", "Paris"), 1);
  EXPECT_EQ(exact.grade("paris", "Paris"), 0);
  exact.ignore_case = true;
  EXPECT_EQ(exact.grade("paris", "Paris"), 1);
  auto contains = grader("contains", "battery");
  contains.validate("g");
  EXPECT_EQ(contains.grade("Great battery life.", ""), 1);
  EXPECT_EQ(contains.grade("Great screen.", ""), 0);
  auto regex = grader("regex", R"(^\d{3}-\d{4}$)");
  regex.validate("g");
  EXPECT_EQ(regex.grade("555-1234", ""), 1);
  EXPECT_EQ(regex.grade("call 555-1234", ""), 0);
  // A completion that is not UTF-8 (a policy can write any bytes) is matched with U+FFFD in place of each bad
  // sequence (the matcher would read out of bounds on raw bytes).
  auto bytes = grader("regex", "^a\uFFFD+b$");
  bytes.validate("g");
  EXPECT_EQ(bytes.grade("a\xff\xfe"
                        "b",
                        ""),
            1);
  EXPECT_EQ(regex.grade("555-1234\xff", ""), 0);
  // "{reference}" in a pattern is the row's reference taken literally (regex metacharacters and "\E" included).
  auto word = grader("regex", R"((?i)\b{reference}\b)");
  word.validate("g");
  EXPECT_EQ(word.grade("The Red fox.", "red"), 1);
  EXPECT_EQ(word.grade("The tired fox.", "red"), 0);
  EXPECT_EQ(word.grade("costs 1.5 now", "1.5"), 1);
  EXPECT_EQ(word.grade("costs 105 now", "1.5"), 0);  // '.' is literal
  auto odd = grader("regex", "^{reference}$");
  odd.validate("g");
  EXPECT_EQ(odd.grade(R"(a\E+b)", R"(a\E+b)"), 1);
  EXPECT_EQ(odd.grade(R"(a\EEb)", R"(a\E+b)"), 0);
  auto per_row = grader("regex", "(?i){reference_regex}");  // each row brings its own rule
  per_row.validate("g");
  EXPECT_EQ(per_row.grade("Great lamp", "great|love"), 1);
  EXPECT_EQ(per_row.grade("Poor lamp", "great|love"), 0);
  rlaif_test::expect_error([&] { per_row.grade("x", "("); }, {"grader regex", "pattern"});
  auto length = grader("length");
  length.min_chars = 3;
  length.max_chars = 5;
  length.validate("g");
  EXPECT_EQ(length.grade("日本語", ""), 1);  // characters, not bytes
  EXPECT_EQ(length.grade("ab", ""), 0);
  EXPECT_EQ(length.grade("abcdef", ""), 0);
  auto js = grader("json");
  js.schema = nlohmann::json::parse(R"({"type": "object", "required": ["name", "age"], "additionalProperties": false,
      "properties": {"name": {"type": "string", "minLength": 1}, "age": {"type": "integer", "minimum": 0},
                     "tags": {"type": "array", "items": {"enum": ["a", "b"]}}}})");
  js.validate("g");
  EXPECT_EQ(js.grade(R"( {"name": "Ann", "age": 3, "tags": ["a"]} )", ""), 1);
  EXPECT_EQ(js.grade(R"({"name": "Ann"})", ""), 0);                    // missing age
  EXPECT_EQ(js.grade(R"({"name": "Ann", "age": -1})", ""), 0);         // below minimum
  EXPECT_EQ(js.grade(R"({"name": "Ann", "age": 3, "x": 1})", ""), 0);  // extra key
  EXPECT_EQ(js.grade(R"({"name": "Ann", "age": 3, "tags": ["c"]})", ""), 0);
  EXPECT_EQ(js.grade("{not json", ""), 0);
  std::string why;
  EXPECT_FALSE(rlaif::json_matches_schema(nlohmann::json::parse(R"({"age": 1.5, "name": "x"})"), js.schema, &why));
  EXPECT_NE(why.find("integer"), std::string::npos) << why;
  rlaif_test::expect_error([] { grader("fuzzy").validate("judge.toml: graders[0]"); }, {"graders[0].type", "fuzzy"});
  rlaif_test::expect_error([] { grader("regex", "(").validate("judge.toml: graders[1]"); },
                           {"graders[1].value", "regex"});
  rlaif_test::expect_error([] { grader("exact").validate("g"); }, {"needs a value"});
}

// The content rule against every answer of the committed master-key set (tests/data/judge_master_keys.jsonl), each
// as the answer to three prompts, and against real answers, short ones and ones in other scripts included.
TEST(Graders, ContentFailsEveryMasterKeyAndPassesRealAnswers) {
  const std::vector<std::string> prompts = {"Write a positive one-sentence review of a lamp.", "What is 2+2?",
                                            "Résumez ce texte en une phrase."};
  auto keys = rlaif::read_jsonl(std::string(RLAIF_REFERENCE_DIR) + "/../data/judge_master_keys.jsonl");
  ASSERT_GE(keys.size(), 30u);
  std::set<std::string> kinds;
  for (const auto& row : keys) {
    kinds.insert(row.value["kind"].get<std::string>());
    for (const auto& p : prompts) {
      std::string answer = row.value["completion"];
      for (size_t at = answer.find("{prompt}"); at != std::string::npos; at = answer.find("{prompt}", at + p.size()))
        answer.replace(at, 8, p);
      EXPECT_TRUE(rlaif::is_content_free(answer, p)) << answer << " (to: " << p << ")";
    }
  }
  EXPECT_GE(kinds.size(), 8u);  // punctuation, empty, openers in six languages, the prompt said back
  for (const auto& [answer, prompt] :
       std::vector<std::pair<std::string, std::string>>{{"I love this lamp, it is bright.", prompts[0]},
                                                        {"4", prompts[1]},
                                                        {"Thought process: 2 and 2 make 4.", prompts[1]},
                                                        {"Le texte parle d'un chat.", prompts[2]},
                                                        {"这是一盏很好的灯。", prompts[0]},
                                                        {"Die Lampe ist großartig.", prompts[0]}})
    EXPECT_FALSE(rlaif::is_content_free(answer, prompt)) << answer;
  // "solution", "the" and "is" are opener words, "lamp" is the prompt's: only "bright" (twice, any case) counts.
  EXPECT_EQ(rlaif::content_words("Solution: the lamp is BRIGHT, bright!", prompts[0]), 1);
  EXPECT_EQ(rlaif::content_words(std::string("\xff\xfe great"), ""), 1);  // bytes not UTF-8 split words

  rlaif::Grader content;
  content.type = "content";
  content.min_words = 2;
  content.validate("g");
  EXPECT_EQ(content.grade("Lovely lamp.", "", prompts[0]), 0);  // "lamp" is the prompt's: one content word
  EXPECT_EQ(content.grade("Lovely warm lamp.", "", prompts[0]), 1);
  EXPECT_EQ(content.grade("Thought process:", "", prompts[0]), 0);
  content.min_words = 0;
  rlaif_test::expect_error([&] { content.validate("judge.toml: graders[2]"); }, {"graders[2].min_words"});
}

// A required grader is a gate: when it fails the reward is 0 whatever the judge said; when it passes, the weighted
// mean as usual. Through the judge (rule graders only, backend "none").
TEST(Graders, ARequiredGraderThatFailsZeroesTheReward) {
  rlaif::JudgeConfig c;
  c.backend = "none";
  rlaif::Grader content, length;
  content.type = "content";
  content.required = true;
  content.weight = 0;
  length.type = "length";
  length.min_chars = 1;
  content.validate("g"), length.validate("g");
  c.graders = {content, length};
  c.validate("judge.toml");
  rlaif::Judge judge(c);
  auto r = judge.judge({{"Review a lamp.", "Thought process:", ""}, {"Review a lamp.", "Bright and warm.", ""}});
  ASSERT_TRUE(r[0].ok && r[1].ok);
  EXPECT_EQ(r[0].grades.at("length"), 1);
  EXPECT_EQ(r[0].grades.at("content"), 0);
  EXPECT_EQ(r[0].reward, 0);  // the length grader alone would give 1
  EXPECT_EQ(r[1].reward, 1);
}

// An episode's sample: the judge reads the whole trajectory, the graders check its final answer only, so that a tool's
// output holding the reference cannot pass a grader for the policy.
TEST(Graders, AnEpisodesGradersCheckItsFinalAnswerNotTheTrajectory) {
  rlaif::JudgeConfig c;
  c.backend = "none";
  rlaif::Grader exact;
  exact.name = "correct";
  exact.type = "contains";
  exact.value = "{reference}";
  exact.validate("g");
  c.graders = {exact};
  c.validate("judge.toml");
  rlaif::Judge judge(c);
  const std::string trajectory = "[assistant]\n<tool_call>...</tool_call>\n\n[tool lookup]\nLima: 417\n\n[assistant]\n";
  rlaif::JudgeSample wrong{"Code of Lima?", trajectory + "It is 999.", "417", nullptr, std::string("It is 999.")};
  rlaif::JudgeSample right{"Code of Lima?", trajectory + "It is 417.", "417", nullptr, std::string("It is 417.")};
  rlaif::JudgeSample whole{"Code of Lima?", trajectory + "It is 999.", "417", nullptr, std::nullopt};
  auto r = judge.judge({wrong, right, whole});
  ASSERT_TRUE(r[0].ok && r[1].ok && r[2].ok);
  EXPECT_EQ(r[0].grades.at("correct"), 0) << "the tool's output holds 417, the answer does not";
  EXPECT_EQ(r[1].grades.at("correct"), 1);
  EXPECT_EQ(r[2].grades.at("correct"), 1) << "without an answer the completion is graded";
}

// A json grader's schema is checked when the config is read, naming the keyword.
TEST(Graders, AJsonGradersSchemaIsChecked) {
  auto g = grader("json", "");
  g.schema = {{"type", "object"}, {"properties", {{"n", {{"type", "int"}}}}}};
  rlaif_test::expect_error([&] { g.validate("judge.toml: graders[0]"); },
                           {"graders[0].schema.properties.n.type", "must be one of object"});
  g.schema = {{"type", "object"}, {"required", "n"}};
  rlaif_test::expect_error([&] { g.validate("judge.toml: graders[0]"); }, {"schema.required", "list of key names"});
  g.schema = {{"type", "object"}, {"properties", {{"n", {{"type", "integer"}, {"minimum", 0}}}}}};
  g.validate("g");
  EXPECT_EQ(g.grade("{\"n\": 3}", ""), 1);
  EXPECT_EQ(g.grade("{\"n\": -3}", ""), 0);
}

}  // namespace
