// Reading a judge's reply: the JSON verdict (also inside prose or code fences), or "name: 7/10" lines as a fallback.
// A reply without a valid score for every criterion is a failure with a cause — never a made-up number. Scores outside
// a criterion's scale are clamped and reported.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rlaif/rubric.h"

namespace rlaif {

struct Verdict {
  bool ok = false;
  std::string failure;                   // cause when !ok: no_verdict, missing_score, non_numeric_score
  std::string detail;                    // what exactly (e.g. which criterion)
  std::map<std::string, double> scores;  // per criterion, on its scale
  std::vector<std::string> clamped;      // criteria whose score was outside the scale (and was clamped)
  std::string rationale;
  double reward = 0;  // the rubric's weighted aggregate in [0, 1]
};

Verdict parse_verdict(const std::string& reply, const Rubric& rubric);

// The verdict as the judge is asked to write it, the text parse_verdict reads back:
//   {"rationale": "...", "scores": {"c1": v1, "c2": v2}}
// with the rubric's criteria in order (integral scores without a decimal point). The local backend conditions its
// judge model on exactly this text up to each score, so it is also the target when training a judge model
// (`rlaif judge render`). Throws rlaif::Error when `scores` lacks a criterion.
std::string format_verdict(const Rubric& rubric, const std::map<std::string, double>& scores,
                           const std::string& rationale);

// A pairwise reply: "A", "B" or "tie" (from {"winner": ...} JSON, else a "winner: A" line), or "" with `failure`
// set (no_verdict when neither is there).
std::string parse_pairwise(const std::string& reply, std::string* failure, std::string* rationale = nullptr);

// The score distribution read from the top log-probabilities at the score token: tokens that are integers within
// [min, max] (after trimming spaces) count; mean = expected score over them (renormalised), confidence = probability
// of the most likely score after renormalisation, mass = total probability the valid tokens had. nullopt when no
// listed token is a valid score.
struct ScoreDistribution {
  double mean = 0, confidence = 0, mass = 0;
};
std::optional<ScoreDistribution> expected_score(const std::vector<std::pair<std::string, double>>& top_logprobs,
                                                double min, double max);

// One generated token of a reply as an OpenAI server reports it with logprobs: its text and the top alternatives
// (text, log-probability) at its position.
struct ReplyToken {
  std::string text;
  std::vector<std::pair<std::string, double>> top;
};

// The score distribution of each of the rubric's criteria at its score token in `reply` (which `tokens` must spell
// out exactly, else nothing is returned): the number after the criterion's key (`"name": 7` in the verdict JSON, or a
// `name: 7` line), read with expected_score from the alternatives of the token where it starts. A criterion is left
// out when its number is not found, does not start its token (after spaces), or spans several tokens ("10" as "1",
// "0"), or when no alternative is a score.
std::map<std::string, ScoreDistribution> score_distributions(const std::string& reply,
                                                             const std::vector<ReplyToken>& tokens,
                                                             const Rubric& rubric);

}  // namespace rlaif
