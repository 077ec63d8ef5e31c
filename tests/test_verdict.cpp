// Verdict parsing: JSON in prose, fences and score lines; named failures; clamping; format_verdict round trips;
// expected scores from top logprobs.
#include <cmath>

#include "rlaif/rubric.h"
#include "rlaif/verdict.h"
#include "test_util.h"

namespace {

TEST(Verdict, ParsesJsonInProseFencesAndScoreLines) {
  auto r = rlaif::Rubric::default_rubric();
  auto v = rlaif::parse_verdict(
      "Sure!\n```json\n{\"rationale\": \"good\", \"scores\": {\"relevance\": 8, \"coherence\": \"7\", \"safety\": "
      "10}}\n```",
      r);
  ASSERT_TRUE(v.ok) << v.detail;
  EXPECT_EQ(v.scores["coherence"], 7);
  EXPECT_EQ(v.rationale, "good");
  EXPECT_NEAR(v.reward, (7.0 / 9 + 6.0 / 9 + 1.0) / 3, 1e-12);
  // Top-level keys, the last object wins, a nested brace inside a string does not confuse the scanner.
  v = rlaif::parse_verdict(
      "{\"relevance\": 1, \"coherence\": 1, \"safety\": 1} then {\"note\": \"a } b\", \"relevance\": 9, \"coherence\": "
      "9, \"safety\": 9}",
      r);
  ASSERT_TRUE(v.ok);
  EXPECT_EQ(v.scores["relevance"], 9);
  v = rlaif::parse_verdict("**Relevance**: 8/10\nCoherence - 6\nsafety = 10", r);
  ASSERT_TRUE(v.ok) << v.detail;
  EXPECT_EQ(v.scores["relevance"], 8);
  EXPECT_EQ(v.scores["coherence"], 6);
  auto single = rlaif::Rubric::pass_fail_check("ok?");
  v = rlaif::parse_verdict("Verdict: 1", single);
  ASSERT_TRUE(v.ok);
  EXPECT_EQ(v.reward, 1.0);
  rlaif::Rubric ten;
  ten.criteria = {{"quality", "", 1, 10, 1}};
  v = rlaif::parse_verdict("I'd say... Score: 7/10.", ten);
  ASSERT_TRUE(v.ok) << v.detail;
  EXPECT_EQ(v.scores["quality"], 7);
}

TEST(Verdict, FailuresAreNamedAndOutOfRangeIsClamped) {
  auto r = rlaif::Rubric::default_rubric();
  auto v = rlaif::parse_verdict("I cannot judge this.", r);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.failure, "no_verdict");
  v = rlaif::parse_verdict("{\"scores\": {\"relevance\": 8, \"coherence\": 7}}", r);
  EXPECT_EQ(v.failure, "missing_score");
  EXPECT_NE(v.detail.find("safety"), std::string::npos);
  v = rlaif::parse_verdict("{\"scores\": {\"relevance\": \"high\", \"coherence\": 7, \"safety\": 9}}", r);
  EXPECT_EQ(v.failure, "non_numeric_score");
  v = rlaif::parse_verdict("{\"scores\": {\"relevance\": 12, \"coherence\": 0, \"safety\": 9}}", r);
  ASSERT_TRUE(v.ok);
  EXPECT_EQ(v.scores["relevance"], 10);
  EXPECT_EQ(v.scores["coherence"], 1);
  EXPECT_EQ(v.clamped, (std::vector<std::string>{"relevance", "coherence"}));
}

TEST(Verdict, FormatVerdictIsWhatParseVerdictReadsBack) {
  auto r = rlaif::Rubric::default_rubric();
  std::map<std::string, double> scores = {{"relevance", 8}, {"coherence", 2.5}, {"safety", 10}};
  auto text = rlaif::format_verdict(r, scores, "says \"hi\"");
  EXPECT_EQ(text, R"({"rationale": "says \"hi\"", "scores": {"relevance": 8, "coherence": 2.5, "safety": 10}})");
  auto v = rlaif::parse_verdict(text, r);
  ASSERT_TRUE(v.ok) << v.failure;
  EXPECT_EQ(v.scores, scores);
  EXPECT_EQ(v.rationale, "says \"hi\"");
  rlaif_test::expect_error([&] { rlaif::format_verdict(r, {{"relevance", 1}}, ""); }, {"coherence"});
}

TEST(Verdict, ExpectedScoreFromTopLogprobs) {
  // p(7) = 0.5, p(" 8") = 0.25, p("8") = 0.05, p("x") = 0.1, p("11") = 0.1 (outside 1..10).
  std::vector<std::pair<std::string, double>> top = {
      {"7", std::log(0.5)}, {" 8", std::log(0.25)}, {"8", std::log(0.05)}, {"x", std::log(0.1)}, {"11", std::log(0.1)}};
  auto d = rlaif::expected_score(top, 1, 10);
  ASSERT_TRUE(d.has_value());
  EXPECT_NEAR(d->mass, 0.8, 1e-12);
  EXPECT_NEAR(d->mean, (7 * 0.5 + 8 * 0.3) / 0.8, 1e-12);
  EXPECT_NEAR(d->confidence, 0.5 / 0.8, 1e-12);
  EXPECT_FALSE(rlaif::expected_score({{"yes", -0.1}}, 1, 10).has_value());
}

}  // namespace
