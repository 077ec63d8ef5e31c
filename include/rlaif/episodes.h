// Multi-turn episodes: the policy plays G episodes per prompt against an environment (rlaif/environment.h).
//
// An episode starts with the environment's reset; its observation joins the prompt's conversation as a user message.
// Each turn the policy answers (at most max_turn_tokens), the answer goes to the environment as the action, and its
// observation is appended as the next user message, until the environment says done or a limit ends the episode.
// All episodes run in one continuous batch: while one waits for its environment, the others keep decoding.
//
// The episode is kept as one token sequence, exactly as the policy saw it: the first prompt, then per turn the tokens
// it sampled (policy_mask 1, with their sampling log-probs) and the chat template's tokens around the next
// observation (policy_mask 0). Each turn's prompt is that sequence, so earlier turns are never re-tokenized; this
// needs a chat template that renders a conversation's earlier turns the same whatever follows (ChatML, Llama 3, ...),
// which is checked at every turn.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "rlaif/chat_template.h"
#include "rlaif/environment.h"
#include "rlaif/generator.h"

namespace rlaif {

// One prompt's G episodes.
struct EpisodeRequest {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // the conversation before the reset's observation
  nlohmann::json row = nlohmann::json::object();                      // given to the environment's reset
  int64_t num_episodes = 1;                                           // G
  uint64_t seed = 0;  // episode j: environment seed sample_seed(seed, j); its turns draw from streams derived from it
};

struct Episode;

struct EpisodeOptions {
  GenerationParams params;  // sampling; max_new_tokens is replaced by the turn's budget
  int max_turns = 4;
  int max_turn_tokens = 256;
  int max_episode_tokens = 1024;  // the policy's tokens over all turns
  // Each episode's keys and values stay in the generator's cache between its turns, so a turn prefills only the
  // tokens added since the last (the observation and the template's turn markers); off, each turn prefills the
  // whole conversation again.
  bool keep_cache = true;
  std::function<void(const Episode&)> on_end;  // called as each episode ends (e.g. a progress bar)
};

struct Episode {
  std::vector<int64_t> token_ids;    // the whole conversation as the policy saw it
  std::vector<uint8_t> policy_mask;  // 1 on the tokens the policy sampled (trained), 0 on prompt and observations
  std::vector<float> logprobs;       // per token: its sampling log-prob where policy_mask is 1, else 0
  int64_t prompt_length = 0;         // tokens of the first turn's prompt
  nlohmann::ordered_json messages;   // the conversation: the prompt, then assistant turns and observations (user)
  size_t prompt_messages = 0;        // messages of the first prompt (the reset's observation in)
  std::vector<std::optional<double>> rewards;  // the environment's reward after each action
  double env_reward = 0;                       // their sum
  int turns = 0;                               // actions taken
  std::string ended_by;  // done | max_turns | max_episode_tokens | context | template, or the environment's failure
                         // cause (env_timeout, env_died, ...): such an episode failed and leaves its group
  std::string detail;    // for a failure: what happened
  bool failed() const { return ended_by.rfind("env_", 0) == 0 || ended_by == "template"; }
};

struct EpisodeStats {
  int64_t episodes = 0, failed = 0, turns = 0;
  int64_t policy_tokens = 0, observation_tokens = 0;  // sampled by the policy; the others (prompts, observations)
  double env_wait_s = 0;                              // time the batch had nothing to decode, waiting for environments
  int64_t prefill_tokens = 0, reused_tokens = 0;      // turns' prompt tokens prefilled; those kept in the cache instead
};

// Plays every request's episodes; returns them by request, then episode index. Throws rlaif::Error for a request
// that cannot start (a bad conversation, a prompt past the context).
std::vector<std::vector<Episode>> run_episodes(Generator& generator, const ChatTemplate& chat, Environment& env,
                                               const std::vector<EpisodeRequest>& requests,
                                               const EpisodeOptions& options, EpisodeStats* stats = nullptr);

}  // namespace rlaif
