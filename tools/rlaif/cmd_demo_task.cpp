// rlaif demo-task: write the quickstart's built-in task (review sentiment with a hidden ground truth).
#include <cstdio>

#include "commands.h"
#include "rlaif/demo_task.h"

namespace rlaif_cli {

Run add_demo_task(CLI::App& app) {
  auto o = std::make_shared<rlaif::ReviewTaskOptions>();
  auto out = std::make_shared<std::string>();
  app.footer(
      "The task: \"Write a <positive|negative> one-sentence review of a <product>.\" The ground truth is a program the "
      "judge never sees (a lexicon check); every row's \"reference\" is that check as a regular expression, for the "
      "grader {type = \"regex\", value = \"{reference_regex}\"}.");
  app.add_option("--out", *out, "folder to write the JSONL files into")->required();
  app.add_option("--seed", o->seed, "same seed, same files")->capture_default_str();
  app.add_option("--policy-rows", o->policy_rows, "policy SFT rows")->capture_default_str();
  app.add_option("--follow-rate", o->follow_rate, "share of policy SFT reviews that follow the instruction")
      ->capture_default_str();
  app.add_option("--judge-rows", o->judge_rows, "labelled rows for training a judge")->capture_default_str();
  app.add_option("--heldout-rows", o->heldout_rows, "labelled rows for the judge check")->capture_default_str();
  app.add_option("--prompts", o->prompts, "RL prompts")->capture_default_str();
  app.add_option("--eval-prompts", o->eval_prompts, "held-out RL prompts")->capture_default_str();
  return [o, out]() {
    rlaif::write_review_task(*out, *o);
    std::printf(
        "wrote the review task to %s: policy_sft.jsonl, judge_train.jsonl, judge_heldout.jsonl, prompts.jsonl, "
        "eval_prompts.jsonl\n",
        out->c_str());
    return 0;
  };
}

}  // namespace rlaif_cli
