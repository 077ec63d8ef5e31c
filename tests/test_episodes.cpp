// Multi-turn episodes with a real model and a real command environment (tests/data/counting_env.py): the sequence the
// policy saw, its loss mask token by token against the rendered conversation, its log-probs against one forward over
// the final sequence, and the environment's rewards reaching the turn that earned them.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "rlaif/episodes.h"
#include "rlaif/init_model.h"
#include "rlaif/model.h"
#include "rlaif/model_folder.h"
#include "rlaif/sequence_batch.h"
#include "rlaif/tokenizer.h"
#include "test_util.h"

namespace {

using json = nlohmann::json;

size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

class Episodes : public ::testing::Test {
 protected:
  void SetUp() override {
    rlaif::InitModelOptions o;
    o.arch = "qwen2";
    o.size = "hidden=64,layers=2,heads=4,kv_heads=2,intermediate=128";
    o.seed = 5;
    rlaif::init_model(o, dir_ / "m");
    model_ = rlaif::load_model(dir_ / "m");
    tok_ = rlaif::Tokenizer::load(dir_ / "m");
    env_config_.type = "command";
    env_config_.command = {"/usr/bin/python3", std::string(RLAIF_REFERENCE_DIR) + "/../data/counting_env.py"};
    env_config_.timeout_s = 20;
  }
  std::vector<std::vector<rlaif::Episode>> run(const std::vector<rlaif::EpisodeRequest>& requests,
                                               const rlaif::EpisodeOptions& options, rlaif::EpisodeStats* stats) {
    rlaif::GeneratorOptions go;
    go.max_batch = 4;  // fewer slots than episodes: turns queue and take freed slots
    rlaif::Generator gen(model_, tok_, rlaif::load_eos_token_ids(dir_ / "m", model_->config()), go);
    auto env = rlaif::make_environment(env_config_);
    return rlaif::run_episodes(gen, chat(), *env, requests, options, stats);
  }
  rlaif::ChatTemplate chat() const { return rlaif::ChatTemplate::for_tokenizer(tok_); }
  std::string render(const nlohmann::ordered_json& messages, bool gen) const {
    return chat().render_for(tok_, messages, gen);
  }
  rlaif_test::TempDir dir_;
  rlaif::CausalLM model_ = nullptr;
  rlaif::Tokenizer tok_;
  rlaif::EnvConfig env_config_;
};

rlaif::EpisodeRequest request(const std::string& prompt, const std::string& name, int64_t g, uint64_t seed) {
  rlaif::EpisodeRequest q;
  q.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", prompt}}});
  q.row = {{"name", name}};
  q.num_episodes = g;
  q.seed = seed;
  return q;
}

rlaif::EpisodeOptions sampling_options(int max_turns, int max_turn_tokens, int max_episode_tokens) {
  rlaif::EpisodeOptions o;
  o.params.sampling.temperature = 1.0f;
  o.max_turns = max_turns;
  o.max_turn_tokens = max_turn_tokens;
  o.max_episode_tokens = max_episode_tokens;
  return o;
}

TEST_F(Episodes, TheSequenceIsTheConversationAndOnlyThePolicysTokensAreMasked) {
  auto options = sampling_options(4, 6, 64);
  rlaif::EpisodeStats stats;
  const auto episodes =
      run({request("Play the game.", "alpha", 3, 11), request("Go.", "beta", 2, 12)}, options, &stats);
  ASSERT_EQ(episodes.size(), 2u);
  ASSERT_EQ(episodes[0].size(), 3u);
  ASSERT_EQ(episodes[1].size(), 2u);
  EXPECT_EQ(stats.episodes, 5);
  EXPECT_EQ(stats.failed, 0);
  EXPECT_EQ(stats.turns, 15);
  std::set<std::string> first_turns;
  for (size_t r = 0; r < episodes.size(); ++r)
    for (const auto& ep : episodes[r]) {
      ASSERT_EQ(ep.ended_by, "done") << ep.detail;
      ASSERT_EQ(ep.turns, 3);
      ASSERT_EQ(ep.messages.size(), 6u);  // the prompt with the reset's observation, then 3 x (assistant, user)...
      // ... except that the last observation (done) is not shown to the policy: user, a, u, a, u, a.
      EXPECT_EQ(ep.messages[0]["content"],
                std::string(r == 0 ? "Play the game." : "Go.") + "\n\nStart " + (r == 0 ? "alpha" : "beta"));
      first_turns.insert(ep.messages[1]["content"].get<std::string>());
      ASSERT_EQ(ep.token_ids.size(), ep.policy_mask.size());
      ASSERT_EQ(ep.token_ids.size(), ep.logprobs.size());
      // The prompt: the template's rendering of the first message with the generation prompt.
      const nlohmann::ordered_json first = nlohmann::ordered_json::array({ep.messages[0]});
      const std::vector<int64_t> prompt(ep.token_ids.begin(), ep.token_ids.begin() + ep.prompt_length);
      EXPECT_EQ(tok_.decode(prompt, false), render(first, true));
      // Then alternating runs: the policy's turn (mask 1) and the template's text around the next observation.
      std::vector<std::pair<bool, std::vector<int64_t>>> runs;
      for (size_t i = static_cast<size_t>(ep.prompt_length); i < ep.token_ids.size(); ++i) {
        const bool policy = ep.policy_mask[i] == 1;
        if (runs.empty() || runs.back().first != policy) runs.push_back({policy, {}});
        runs.back().second.push_back(ep.token_ids[i]);
        if (!policy) {
          EXPECT_EQ(ep.logprobs[i], 0.f);
        }
      }
      for (size_t i = 0; i < static_cast<size_t>(ep.prompt_length); ++i) EXPECT_EQ(ep.policy_mask[i], 0);
      ASSERT_EQ(runs.size(), 5u);  // turn, observation, turn, observation, turn
      for (size_t k = 0; k < 3; ++k) {
        ASSERT_TRUE(runs[2 * k].first);
        const std::string text = ep.messages[2 * k + 1]["content"];
        EXPECT_EQ(tok_.decode(runs[2 * k].second, true), text) << "turn " << k;
        // The environment's reward for this turn's action.
        ASSERT_TRUE(ep.rewards[k].has_value());
        EXPECT_EQ(*ep.rewards[k], static_cast<double>(code_points(text) % 3)) << "turn " << k;
        if (k == 2) break;
        // The observation's run: the conversation's rendering from the end of the policy's text (less an
        // end-of-turn token it sampled) to the next generation prompt.
        nlohmann::ordered_json upto(ep.messages.begin(), ep.messages.begin() + static_cast<long>(2 * k + 1));
        nlohmann::ordered_json next(ep.messages.begin(), ep.messages.begin() + static_cast<long>(2 * k + 3));
        const std::string before = render(upto, true), after = render(next, true);
        ASSERT_EQ(after.compare(0, before.size(), before), 0);
        std::string expected = after.substr(before.size() + text.size());
        const std::vector<int64_t> last = {runs[2 * k].second.back()};
        if (tok_.decode(last, true).empty()) expected.erase(0, tok_.decode(last, false).size());
        EXPECT_EQ(tok_.decode(runs[2 * k + 1].second, false), expected) << "observation " << k;
        EXPECT_NE(expected.find("turn " + std::to_string(k + 1) + ": you wrote"), std::string::npos);
      }
      EXPECT_DOUBLE_EQ(ep.env_reward, *ep.rewards[0] + *ep.rewards[1] + *ep.rewards[2]);
      // The log-probs the policy sampled with are those of one forward over the final sequence: each turn was
      // conditioned on exactly these tokens.
      torch::NoGradGuard ng;
      auto lp = torch::log_softmax(model_->forward(torch::tensor(ep.token_ids).view({1, -1}))[0], -1);  // [T, V]
      for (size_t i = 1; i < ep.token_ids.size(); ++i)
        if (ep.policy_mask[i]) {
          EXPECT_NEAR(ep.logprobs[i], lp[static_cast<long>(i) - 1][ep.token_ids[i]].item<float>(), 1e-3)
              << "token " << i;
        }
    }
  EXPECT_GT(first_turns.size(), 1u) << "episodes of one prompt draw from different streams";
  EXPECT_GT(stats.observation_tokens, 0);
  // Later turns continued their episode's kept cache, so the log-prob check above also checks the reuse.
  EXPECT_GT(stats.reused_tokens, 0);
  EXPECT_EQ(stats.policy_tokens, [&] {
    int64_t n = 0;
    for (const auto& g : episodes)
      for (const auto& ep : g)
        for (auto m : ep.policy_mask) n += m;
    return n;
  }());
}

// Keeping each episode's cache between turns changes what is prefilled, not what is drawn: the same episodes as when
// every turn prefills the whole conversation (tokens exactly, log-probs within 1e-4 in fp32), with every turn's
// prompt token either prefilled or reused.
TEST_F(Episodes, KeptCachesPlayTheSameEpisodesAsPrefillingEveryTurn) {
  auto options = sampling_options(4, 6, 64);
  const std::vector<rlaif::EpisodeRequest> requests = {request("Play the game.", "alpha", 3, 21),
                                                       request("Go.", "beta", 2, 22)};
  rlaif::EpisodeStats kept_stats, whole_stats;
  const auto kept = run(requests, options, &kept_stats);
  options.keep_cache = false;
  const auto whole = run(requests, options, &whole_stats);
  EXPECT_EQ(whole_stats.reused_tokens, 0);
  EXPECT_GT(kept_stats.reused_tokens, 0);
  EXPECT_EQ(kept_stats.prefill_tokens + kept_stats.reused_tokens, whole_stats.prefill_tokens);
  for (size_t r = 0; r < requests.size(); ++r)
    for (size_t j = 0; j < kept[r].size(); ++j) {
      const auto &a = kept[r][j], &b = whole[r][j];
      EXPECT_EQ(a.ended_by, b.ended_by);
      ASSERT_EQ(a.token_ids, b.token_ids) << "request " << r << " episode " << j;
      EXPECT_EQ(a.policy_mask, b.policy_mask);
      for (size_t i = 0; i < a.logprobs.size(); ++i) EXPECT_NEAR(a.logprobs[i], b.logprobs[i], 1e-4);
    }
}

TEST_F(Episodes, LimitsEndEpisodesAndAFailedResetLeavesTheOthers) {
  auto options = sampling_options(2, 5, 40);
  auto bad = request("Go.", "gamma", 2, 3);
  bad.row["fail"] = true;
  rlaif::EpisodeStats stats;
  const auto episodes = run({request("Go.", "alpha", 2, 1), bad}, options, &stats);
  for (const auto& ep : episodes[0]) {
    EXPECT_EQ(ep.ended_by, "max_turns");
    EXPECT_EQ(ep.turns, 2);
    EXPECT_EQ(ep.rewards.size(), 2u);
    EXPECT_FALSE(ep.failed());
  }
  for (const auto& ep : episodes[1]) {
    EXPECT_EQ(ep.ended_by, "env_error");
    EXPECT_EQ(ep.detail, "this row fails");
    EXPECT_TRUE(ep.failed());
    EXPECT_TRUE(ep.token_ids.empty());
  }
  EXPECT_EQ(stats.failed, 2);

  options.max_turns = 4;
  options.max_episode_tokens = 7;  // the second turn may use only what the first left
  const auto capped = run({request("Go.", "alpha", 2, 1)}, options, nullptr);
  for (const auto& ep : capped[0]) {
    int64_t policy = 0;
    for (auto m : ep.policy_mask) policy += m;
    EXPECT_LE(policy, 7);
    EXPECT_TRUE(ep.ended_by == "max_episode_tokens" || ep.ended_by == "done") << ep.ended_by;
  }
}

// rlaif train's layout of an episode: its first prompt, then everything after it as the "completion", with the policy
// mask keeping the observations' tokens out of the loss. The training log-probs equal one plain forward over the
// whole sequence on the policy's tokens (the sampling log-probs too), and are exactly 0 on the others.
TEST_F(Episodes, TheTrainingLayoutKeepsObservationsOutOfTheLoss) {
  auto options = sampling_options(3, 5, 64);
  const auto episodes = run({request("Play the game.", "alpha", 2, 4), request("Go.", "b", 1, 5)}, options, nullptr);
  std::vector<const rlaif::Episode*> eps = {&episodes[0][0], &episodes[0][1], &episodes[1][0]};
  std::vector<std::vector<int64_t>> prompts, completions;
  std::vector<std::vector<uint8_t>> masks;
  for (const auto* ep : eps) {
    ASSERT_FALSE(ep->failed()) << ep->detail;
    const auto cut = static_cast<std::ptrdiff_t>(ep->prompt_length);
    prompts.emplace_back(ep->token_ids.begin(), ep->token_ids.begin() + cut);
    completions.emplace_back(ep->token_ids.begin() + cut, ep->token_ids.end());
    masks.emplace_back(ep->policy_mask.begin() + cut, ep->policy_mask.end());
  }
  std::vector<const std::vector<int64_t>*> p, c;
  std::vector<const std::vector<uint8_t>*> m;
  for (size_t i = 0; i < eps.size(); ++i)
    p.push_back(&prompts[i]), c.push_back(&completions[i]), m.push_back(&masks[i]);
  auto batch = rlaif::make_sequence_batch(p, c, 0);
  rlaif::apply_policy_masks(batch, m);
  torch::NoGradGuard ng;
  auto lp = rlaif::completion_logprobs(model_, batch, 1.0);  // [3, Tc]
  int64_t policy = 0, others = 0;
  for (size_t i = 0; i < eps.size(); ++i) {
    const auto& ids = eps[i]->token_ids;
    auto full = torch::log_softmax(model_->forward(torch::tensor(ids).view({1, -1}))[0], -1);  // [T, V]
    for (size_t t = 0; t < completions[i].size(); ++t) {
      const size_t at = static_cast<size_t>(eps[i]->prompt_length) + t;
      const float got = lp[static_cast<long>(i)][static_cast<long>(t)].item<float>();
      if (masks[i][t]) {
        ++policy;
        EXPECT_NEAR(got, full[static_cast<long>(at) - 1][ids[at]].item<float>(), 1e-4) << "episode " << i << " " << t;
        EXPECT_NEAR(got, eps[i]->logprobs[at], 1e-3);
      } else {
        ++others;
        EXPECT_EQ(got, 0.f) << "observation token " << t << " of episode " << i << " is in the loss";
      }
    }
  }
  EXPECT_GT(policy, 0);
  EXPECT_GT(others, 0);
  EXPECT_EQ(batch.completion_mask.sum().item<double>(), static_cast<double>(policy));
  // A mask that does not match its completion is refused.
  masks[0].push_back(1);
  EXPECT_THROW(rlaif::apply_policy_masks(batch, m), c10::Error);
}

}  // namespace
