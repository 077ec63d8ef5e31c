// `rlaif demo-task`: the quickstart's built-in task, with a hidden ground truth: "Write a <positive|negative>
// one-sentence review of a <product>." Success is checked by a program the judge never sees: the review is one
// well-formed sentence and uses a word of the requested sentiment's lexicon and none of the other's. The same check is
// written as a per-row regular expression (the row's "reference"), so the trainer's rule grader `regex` with value
// "{reference_regex}" is the verifier.
#pragma once

#include <cstdint>
#include <string>

namespace rlaif {

struct ReviewTaskOptions {
  uint64_t seed = 0;
  int64_t policy_rows = 4000;  // SFT rows for the policy: reviews that follow the instruction `follow_rate` of the time
  double follow_rate = 0.45;
  int64_t judge_rows = 4000;    // labelled (prompt, review) pairs, half following, for training the judge model
  int64_t heldout_rows = 200;   // labelled pairs for the pre-flight judge check (new draws, same distribution)
  double garbled_rate = 0.3;    // share of labelled reviews damaged as a drifting policy would (looping, cut off,
                                // rambling, spliced from two reviews): the judge learns to fail them
  double off_topic_rate = 0.2;  // share of labelled reviews (after damage) about another product than the one asked
  int64_t prompts = 400;        // RL prompts
  int64_t eval_prompts = 48;    // held-out RL prompts (new draws, same distribution)
};

// Writes into `dir`: policy_sft.jsonl {prompt, completion}; judge_train.jsonl and judge_heldout.jsonl {prompt,
// completion, reference, label, rationale} (`rlaif judge render` turns them into judge SFT data); prompts.jsonl and
// eval_prompts.jsonl {prompt, reference}. Same seed, same files.
void write_review_task(const std::string& dir, const ReviewTaskOptions& options);

}  // namespace rlaif
