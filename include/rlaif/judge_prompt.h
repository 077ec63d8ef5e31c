// The judge's prompt: a template with documented variables, filled with a rubric and one sample. The texts under
// judgment (prompt, completion, reference) sit between delimiters carrying a nonce derived from their content, and
// anything in them that imitates a delimiter or the verdict format is neutralised first, so a completion can neither
// close its block nor hand the judge a ready-made verdict.
//
// Template variables: {prompt} {completion} {reference} (each with its delimiters), {criteria} (one line per
// criterion with its scale), {output_format} (the JSON the judge must answer with), {reference_block} (the reference
// section, or "" when there is none).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "rlaif/rubric.h"

namespace rlaif {

struct JudgeSample {
  std::string prompt, completion, reference;       // reference "" = none (the rubric's reference is used if it has one)
  std::shared_ptr<const Rubric> rubric = nullptr;  // the data row's own rubric or checklist; null = the judge's
  // What the rule graders check when it is not the completion: an episode's final answer (its last turn), while the
  // judge reads the whole trajectory, so that a tool's output or an observation can never pass a grader.
  std::optional<std::string> answer = std::nullopt;
};

// The rubric a sample is graded on: its own when it has one, else the judge's.
inline const Rubric& judged_on(const JudgeSample& sample, const Rubric& judge_rubric) {
  return sample.rubric ? *sample.rubric : judge_rubric;
}

struct JudgeTemplate {
  std::string system, user;
  static JudgeTemplate pointwise_default();
  // Pairwise: {completion_a} and {completion_b} instead of {completion}; the judge answers {"winner": "A|B|tie"}.
  static JudgeTemplate pairwise_default();
  // Throws rlaif::Error naming `where` for an unknown {variable} or a template without {completion}.
  void validate(const std::string& where) const;
};

struct JudgeMessages {
  std::string system, user;
  nlohmann::json to_openai() const;  // [{"role": "system", ...}, {"role": "user", ...}]
};

// `rubric` is the judge's: the sample's own rubric, when it has one, replaces its criteria (the judge's reference
// answer still applies).
JudgeMessages render_judge_prompt(const JudgeTemplate& tmpl, const Rubric& rubric, const JudgeSample& sample);
// Two responses to one prompt, as "A" and "B" in that order.
JudgeMessages render_pairwise_prompt(const JudgeTemplate& tmpl, const Rubric& rubric, const std::string& prompt,
                                     const std::string& a, const std::string& b, const std::string& reference);

// What render_judge_prompt does to a text under judgment: '<' opening a tag named like a delimiter
// (completion, prompt, reference, response, instructions, system) becomes '‹'; a quoted verdict key ("scores",
// "score", "rationale", "verdict" or a criterion name) followed by ':' gets typographic quotes; a line starting with
// such a key and ':', '=' or '-' (e.g. "Score: 10/10") is prefixed with "(quoted) " and its separator becomes '∶'.
std::string neutralize(const std::string& text, const Rubric& rubric);

// The nonce of a sample's blocks: a hash of its texts, so the same sample renders the same prompt (cacheable) while a
// completion cannot know the nonce of the block it sits in.
std::string judge_nonce(const JudgeSample& sample);
// "<name-NONCE>\n" + neutralize(text) + "\n</name-NONCE>".
std::string quoted_block(const std::string& name, const std::string& text, const std::string& nonce,
                         const Rubric& rubric);

// The JSON schema of the verdict, for backends that accept response_format {"type": "json_schema"}.
nlohmann::json verdict_schema(const Rubric& rubric);

}  // namespace rlaif
