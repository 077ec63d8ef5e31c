// Rule graders: each rule and its errors.
#include <cmath>

#include "rlaif/graders.h"
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

}  // namespace
