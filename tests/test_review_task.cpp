// The quickstart's review task: its ground-truth regex equals the program, and its labels are true.
#include <cmath>

#include "demo/review_task.h"
#include "rlaif/atomic_file.h"
#include "rlaif/graders.h"
#include "rlaif/jsonl.h"
#include "test_util.h"

namespace {

TEST(ReviewTask, GroundTruthRegexEqualsTheProgramAndLabelsAreTrue) {
  rlaif_test::TempDir dir;
  rlaif::ReviewTaskOptions o;
  o.policy_rows = 2000;
  o.judge_rows = 300;
  o.heldout_rows = 100;
  rlaif::write_review_task(dir.path(), o);
  rlaif::Grader verifier;  // the trainer's verifier: the row's regex
  verifier.type = "regex";
  verifier.value = "{reference_regex}";
  verifier.validate("g");
  // Labelled rows: the label is the program's verdict and the per-row regex (the trainer's verifier) agrees.
  int64_t rows = 0, follows = 0;
  for (const char* name : {"judge_train.jsonl", "judge_heldout.jsonl"})
    for (const auto& r : rlaif::read_jsonl(dir / name)) {
      const auto& v = r.value;
      const std::string sentiment =
          v["prompt"].get<std::string>().find("positive") != std::string::npos ? "positive" : "negative";
      const bool truth = rlaif::review_follows(sentiment, v["completion"]);
      EXPECT_EQ(v["label"].get<int>(), truth ? 1 : 0) << v.dump();
      EXPECT_EQ(verifier.grade(v["completion"], v["reference"]), truth ? 1 : 0) << v.dump();
      EXPECT_EQ(v["rationale"], rlaif::review_rationale(sentiment, v["completion"]));
      ++rows, follows += truth;
    }
  EXPECT_EQ(rows, 400);
  // Half follow before damage; o.garbled_rate of the rows are damaged (looping, cut off, rambling, spliced, headless,
  // misspelled). Many damaged rows then fail as garbled, mixed or neutral (no sentiment word left); some stay valid
  // (a misspelled filler word, a headless sentence that kept its sentiment word), so fewer than half follow, and about
  // half of the damaged ones fail (never more rows than were damaged).
  EXPECT_GT(static_cast<double>(follows) / rows, 0.5 * (1 - o.garbled_rate) - 0.1);
  EXPECT_LT(static_cast<double>(follows) / rows, 0.5);
  int64_t damaged = 0;
  for (const auto& r : rlaif::read_jsonl(dir / "judge_train.jsonl")) {
    const std::string why = r.value["rationale"];  // undamaged reviews always carry one sentiment
    damaged += why.find("garbled") != std::string::npos || why.find("mixed") != std::string::npos ||
               why.find("neutral") != std::string::npos;
  }
  EXPECT_GT(static_cast<double>(damaged) / 300, o.garbled_rate / 3) << damaged;
  EXPECT_LT(static_cast<double>(damaged) / 300, o.garbled_rate + 0.05) << damaged;
  // Texts the generator never writes: both agree too (mixed, none, case, word boundaries).
  for (const std::string& text : std::vector<std::string>{
           "I love it but it broke.", "It is a lamp.", "GREAT!", "greatness awaits", "Avoid.", "not terrible at all",
           "lovely and great", "great great great lamp.", "Great lamp, Lamp, LAMP.", "great lamp lamp.",
           "A great lamp. ", "A great " + std::string(120, 'x') + ".", "Great lamp, it broke.",
           "Great lamp, it stopped."})
    for (const std::string s : {"positive", "negative"})
      EXPECT_EQ(verifier.grade(text, rlaif::review_reference_regex(s)), rlaif::review_follows(s, text) ? 1 : 0)
          << s << ": " << text;
  // The policy data follows its instruction at the configured rate; same seed, same files.
  int64_t n = 0, ok = 0;
  for (const auto& r : rlaif::read_jsonl(dir / "policy_sft.jsonl")) {
    const std::string p = r.value["prompt"];
    ok +=
        rlaif::review_follows(p.find("positive") != std::string::npos ? "positive" : "negative", r.value["completion"]);
    ++n;
  }
  EXPECT_NEAR(static_cast<double>(ok) / n, o.follow_rate, 0.04);
  rlaif_test::TempDir again;
  rlaif::write_review_task(again.path(), o);
  EXPECT_EQ(rlaif::read_file(again / "prompts.jsonl"), rlaif::read_file(dir / "prompts.jsonl"));
  EXPECT_EQ(rlaif::read_file(again / "judge_train.jsonl"), rlaif::read_file(dir / "judge_train.jsonl"));
}

}  // namespace
