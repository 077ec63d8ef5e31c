// Trainer paths end to end, each checked against its formula from what the run wrote (samples.jsonl carries each
// completion's tokens, grades, reward and advantage; metrics.jsonl the loss statistics): RLOO and REINFORCE++ through
// `rlaif train`, KL in the reward, DAPO's overlong penalty and the missing-EOS penalty, mask_truncated_completions,
// the truncated importance-sampling correction, and clipping engaging once num_iterations > 1.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "rlaif/trainer.h"
#include "scripted_judge.h"
#include "train_test_util.h"

using namespace rlaif_test;

namespace {

// samples.jsonl as (step, prompt) -> that group's lines, in order.
std::map<std::pair<int, std::string>, std::vector<nlohmann::json>> groups_of(const std::string& path) {
  std::map<std::pair<int, std::string>, std::vector<nlohmann::json>> out;
  for (const auto& r : rlaif::read_jsonl(path))
    out[{r.value["step"].get<int>(), r.value["prompt"].get<std::string>()}].push_back(r.value);
  return out;
}

std::vector<nlohmann::json> lines_of(const std::string& path) {
  std::vector<nlohmann::json> out;
  for (const auto& r : rlaif::read_jsonl(path)) out.push_back(r.value);
  return out;
}

rlaif::TrainConfig config(const TempDir& dir, const std::string& extra) {
  return rlaif::TrainConfig::from_toml(write_config(dir, "save_steps = 0\n" + extra));
}

TEST(TrainPaths, RlooAdvantagesThroughTheCli) {
  TempDir dir;
  ASSERT_EQ(run_train(write_config(dir, "algorithm = \"rloo\"\nmax_steps = 2\nsave_steps = 0"), "", false), 0);
  int nonzero = 0, checked = 0;
  for (const auto& [key, group] : groups_of(dir / "out/samples.jsonl")) {
    ASSERT_EQ(group.size(), 4u);
    double sum = 0;
    for (const auto& s : group) sum += s["reward"].get<double>();
    for (const auto& s : group) {  // A_i = r_i - mean of the other G - 1 rewards
      const double r = s["reward"].get<double>(), expected = r - (sum - r) / 3;
      EXPECT_NEAR(s["advantage"].get<double>(), expected, 1e-12) << s.dump();
      nonzero += std::fabs(expected) > 0, ++checked;
    }
  }
  EXPECT_EQ(checked, 2 * 16);
  EXPECT_GT(nonzero, 0);
}

TEST(TrainPaths, ReinforcePlusPlusAdvantagesThroughTheCli) {
  TempDir dir;
  ASSERT_EQ(run_train(write_config(dir, "algorithm = \"reinforce_pp\"\nmax_steps = 2\nsave_steps = 0"), "", false), 0);
  std::map<int, std::vector<nlohmann::json>> steps;
  for (const auto& s : lines_of(dir / "out/samples.jsonl")) steps[s["step"].get<int>()].push_back(s);
  ASSERT_EQ(steps.size(), 2u);
  for (const auto& [step, lines] : steps) {  // A_i = (r_i - mean_batch r) / (std_batch r + 1e-8), unbiased std
    double n = 0, mean = 0, var = 0;
    for (const auto& s : lines) n += 1, mean += s["reward"].get<double>();
    mean /= n;
    for (const auto& s : lines) var += std::pow(s["reward"].get<double>() - mean, 2) / (n - 1);
    for (const auto& s : lines)
      EXPECT_NEAR(s["advantage"].get<double>(), (s["reward"].get<double>() - mean) / (std::sqrt(var) + 1e-8), 1e-9)
          << "step " << step;
  }
}

// KL in the reward: the first step samples from the reference itself (KL 0: reward = grade); once the policy has
// moved, beta x its summed KL comes off the reward (k3 >= 0: never above the grade). Without kl_in_reward the
// reward stays the grade and the KL goes into the loss.
TEST(TrainPaths, KlInRewardComesOffTheReward) {
  for (bool in_reward : {true, false}) {
    TempDir dir;
    auto c = config(dir, "beta = 0.5\nmax_steps = 4\nlearning_rate = 1e-2\nkl_in_reward = " +
                             std::string(in_reward ? "true" : "false"));
    rlaif::run_rl(c, {false, true});
    double largest_cut = 0;
    for (const auto& s : lines_of(dir / "out/samples.jsonl")) {
      const double cut = s["grades"]["regex"].get<double>() - s["reward"].get<double>();
      if (s["step"].get<int>() == 1 || !in_reward) {
        EXPECT_NEAR(cut, 0.0, 1e-6) << s.dump();
      }
      EXPECT_GE(cut, -1e-6) << s.dump();
      largest_cut = std::max(largest_cut, cut);
    }
    if (in_reward)
      EXPECT_GT(largest_cut, 1e-4);
    else
      EXPECT_EQ(largest_cut, 0.0);
    EXPECT_GT(metrics(dir / "out/metrics.jsonl").back()["kl"].get<double>(), 0.0);
  }
}

TEST(TrainPaths, OverlongAndMissingEosPenaltiesShapeTheReward) {
  TempDir dir;
  auto c = config(dir,
                  "max_steps = 2\nmax_completion_length = 16\noverlong_buffer_length = 8\n"
                  "overlong_penalty_factor = 0.5\nmissing_eos_penalty = 0.25");
  rlaif::run_rl(c, {false, true});
  int long_ones = 0, truncated = 0, lines = 0;
  for (const auto& s : lines_of(dir / "out/samples.jsonl")) {
    const int64_t len = s["completion_tokens"].get<int64_t>();
    const bool cut = s["finish_reason"] == "length";
    double expected = s["grades"]["regex"].get<double>();
    if (len > 8) expected -= 0.5 * std::min(1.0, (len - 8) / 8.0);
    if (cut) expected -= 0.25;
    EXPECT_NEAR(s["reward"].get<double>(), expected, 1e-12) << s.dump();
    long_ones += len > 8, truncated += cut, ++lines;
  }
  EXPECT_EQ(lines, 32);
  EXPECT_GT(long_ones, 0);
  EXPECT_GT(truncated, 0);
}

// train/tokens counts the completion tokens in the loss: with mask_truncated_completions, only those of completions
// that ended with an end-of-sequence token.
TEST(TrainPaths, MaskTruncatedCompletionsLeavesThemOutOfTheLoss) {
  for (bool mask : {false, true}) {
    TempDir dir;
    auto c = config(dir, "max_steps = 2\nmask_truncated_completions = " + std::string(mask ? "true" : "false"));
    rlaif::run_rl(c, {false, true});
    std::map<int, double> tokens;
    for (const auto& s : lines_of(dir / "out/samples.jsonl"))
      if (!mask || s["finish_reason"] == "stop") tokens[s["step"].get<int>()] += s["completion_tokens"].get<double>();
    for (const auto& m : metrics(dir / "out/metrics.jsonl"))
      EXPECT_EQ(m["train/tokens"].get<double>(), tokens[m["step"].get<int>()]) << (mask ? "masked" : "all");
  }
}

// The truncated importance-sampling correction weighs each token's loss by min(exp(old - sampler), cap): the same
// rollouts (sampled in bfloat16, trained in float32, so the two log-probs differ slightly) give a slightly different
// gradient with it than without. Weights near 1 show the sampler's log-probs are the right tokens' (misaligned or
// missing ones would give weights far below 1).
TEST(TrainPaths, ImportanceSamplingCorrectionWeighsTheLoss) {
  std::vector<double> grad_norms;
  for (bool correct : {false, true}) {
    TempDir dir;
    auto c = config(dir, "max_steps = 1\nbeta = 0.0\nimportance_sampling_cap = 1.0\nimportance_sampling_correction = " +
                             std::string(correct ? "true" : "false"));
    c.dtype = "bfloat16";
    c.judge.graders[0].value = "[a-m]";  // about half the completions: the first step's groups carry signal
    c.judge.graders[0].validate("test");
    rlaif::run_rl(c, {false, true});
    auto m = metrics(dir / "out/metrics.jsonl");
    ASSERT_EQ(m.size(), 1u);
    EXPECT_GT(m[0]["sampler/logprob_gap"].get<double>(), 0.0);
    EXPECT_LT(m[0]["sampler/logprob_gap"].get<double>(), 0.05);
    grad_norms.push_back(m[0]["grad_norm"].get<double>());
  }
  ASSERT_GT(grad_norms[0], 0.0);
  EXPECT_NE(grad_norms[1], grad_norms[0]);
  EXPECT_NEAR(grad_norms[1] / grad_norms[0], 1.0, 0.05) << grad_norms[0] << " " << grad_norms[1];
}

// The first iteration's ratio is exactly 1 (nothing to clip); later iterations over the same batch move the policy
// past a small epsilon and the clipped share becomes positive.
TEST(TrainPaths, ClippingEngagesWithSeveralIterations) {
  for (int iterations : {1, 4}) {
    TempDir dir;
    auto c = config(
        dir, "max_steps = 2\nepsilon = 0.02\nlearning_rate = 1e-2\nnum_iterations = " + std::to_string(iterations));
    rlaif::run_rl(c, {false, true});
    double clipped = 0;
    for (const auto& m : metrics(dir / "out/metrics.jsonl")) clipped += m["clip_ratio/region_mean"].get<double>();
    if (iterations == 1)
      EXPECT_EQ(clipped, 0.0);
    else
      EXPECT_GT(clipped, 0.0);
  }
}

// A judge backend registered by name (here a scripted one, no HTTP) is what the trainer's rewards come from: each
// valid sample's reward is the script's verdict, and completions it fails on leave their groups unscored.
TEST(TrainPaths, ARegisteredJudgeBackendScoresTheRollouts) {
  ScriptedJudge::install();
  TempDir dir;
  auto c = config(dir, "max_steps = 2");
  c.judge.backend = "scripted";
  c.judge.graders.clear();
  rlaif::run_rl(c, {false, true});
  int valid = 0, failed = 0;
  for (const auto& s : lines_of(dir / "out/samples.jsonl")) {
    const auto text = s["completion"].get<std::string>();
    if (ScriptedJudge::fails(text)) {
      EXPECT_FALSE(s["valid"].get<bool>()) << text;
      ++failed;
      continue;
    }
    if (!s["valid"].get<bool>()) continue;  // in a group left with fewer than 2 valid samples
    EXPECT_DOUBLE_EQ(s["reward"].get<double>(), ScriptedJudge::reward_of(text)) << text;
    EXPECT_DOUBLE_EQ(s["scores"]["e_share"].get<double>(), ScriptedJudge::reward_of(text));
    ++valid;
  }
  EXPECT_GT(valid, 0);
  int64_t failures = 0;
  for (const auto& m : metrics(dir / "out/metrics.jsonl")) failures += m["judge/failures"].get<int64_t>();
  EXPECT_GE(failures, failed);  // dropped groups are not in samples.jsonl
  EXPECT_EQ(ScriptedJudge::calls().load(), 32);
  auto unknown = c;
  unknown.judge.backend = "scripted2";
  rlaif_test::expect_error([&] { unknown.validate("run.toml"); }, {"judge.backend", "scripted2"});
}

// metrics.jsonl gets a line every logging_steps steps and after the last one; samples.jsonl every step.
TEST(TrainPaths, LoggingStepsSpacesTheMetricsLines) {
  TempDir dir;
  rlaif::run_rl(config(dir, "max_steps = 5\nlogging_steps = 2"), {false, true});
  std::vector<int> logged;
  for (const auto& m : metrics(dir / "out/metrics.jsonl")) logged.push_back(m["step"].get<int>());
  EXPECT_EQ(logged, (std::vector<int>{2, 4, 5}));
  std::set<int> sampled;
  for (const auto& s : lines_of(dir / "out/samples.jsonl")) sampled.insert(s["step"].get<int>());
  EXPECT_EQ(sampled.size(), 5u);
}

}  // namespace

namespace {

// Prompts that carry their own checklist or rubric, judged by a real server that grades each item it is shown
// ("Mentions X": yes when the completion holds X): every valid sample's reward is the weighted share of its own
// row's items, samples.jsonl lists the items with their scores, and metrics.jsonl reports checklist/* and rubric/*
// (not rewards/item1/mean, whose name would mix different rows' items). Group judging refuses such rows.
TEST(TrainPaths, PerPromptChecklistsAndRubricsAreTheReward) {
  TempDir dir;
  rlaif_test::FaultServer server;
  std::string rows;
  for (int i = 0; i < 8; ++i) {
    nlohmann::json row = {{"prompt", "Say something #" + std::to_string(i) + ":"}};
    if (i % 2 == 0)
      row["checklist"] = {"Mentions a", {{"criterion", "Mentions e"}, {"weight", 2}}};
    else
      row["rubric"] = {"Mentions o"};
    rows += row.dump() + "\n";
  }
  rlaif_test::write_text(dir / "prompts.jsonl", rows);
  auto c = config(dir, "max_steps = 2\nlogging_steps = 1");
  use_http_judge(c, server);
  c.judge.graders.clear();
  rlaif::run_rl(c, {false, true});
  int checked = 0;
  for (const auto& s : lines_of(dir / "out/samples.jsonl")) {
    if (!s["valid"].get<bool>()) continue;
    const auto text = s["completion"].get<std::string>();
    auto has = [&](char ch) { return text.find(ch) != std::string::npos; };
    const bool checklist = s["prompt"].get<std::string>().find_first_of("0246") != std::string::npos;
    const double want = checklist ? (1.0 * has('a') + 2.0 * has('e')) / 3 : (has('o') ? 1.0 : 0.0);
    EXPECT_DOUBLE_EQ(s["reward"].get<double>(), want) << s.dump();
    ASSERT_EQ(s["items"].size(), checklist ? 2u : 1u) << s.dump();
    EXPECT_EQ(s["items"][0]["criterion"], checklist ? "Mentions a" : "Mentions o");
    EXPECT_EQ(s["items"][0]["score"].get<double>(), checklist ? has('a') : (has('o') ? 10 : 1));
    ++checked;
  }
  EXPECT_GT(checked, 8);
  for (const auto& m : metrics(dir / "out/metrics.jsonl")) {
    EXPECT_FALSE(m.contains("rewards/item1/mean")) << m.dump();
    if (m.contains("checklist/samples")) {
      EXPECT_GE(m["checklist/item_pass_rate"].get<double>(), 0.0);
      EXPECT_LE(m["checklist/all_pass_rate"].get<double>(), m["checklist/item_pass_rate"].get<double>() + 1e-12);
    }
  }
  // The first step's checklist metrics from its samples.
  double items = 0, yes = 0, all = 0, n = 0;
  for (const auto& s : lines_of(dir / "out/samples.jsonl")) {
    if (s["step"] != 1 || !s["valid"].get<bool>() || s["items"].size() != 2) continue;
    bool every = true;
    for (const auto& it : s["items"]) items += 1, yes += it["score"].get<double>(), every &= it["score"] == 1;
    all += every, n += 1;
  }
  auto first = metrics(dir / "out/metrics.jsonl").at(0);
  if (n > 0) {
    EXPECT_DOUBLE_EQ(first["checklist/samples"].get<double>(), n);
    EXPECT_NEAR(first["checklist/item_pass_rate"].get<double>(), yes / items, 1e-12);
    EXPECT_NEAR(first["checklist/all_pass_rate"].get<double>(), all / n, 1e-12);
  }
  auto group = c;
  group.judge_mode = rlaif::JudgeMode::kGroup;
  rlaif_test::expect_error(
      [&] {
        rlaif::run_rl(group, {false, true});
      },
      {"prompts.jsonl:1", "checklist", "pointwise only"});
}

}  // namespace
