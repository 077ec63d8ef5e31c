// Multi-turn episodes over the generator's continuous batch (see rlaif/episodes.h). The batch's poll is the loop:
// it collects the environments' replies, appends each observation to its episode and hands the episode's next turn
// to the batch; a finished turn goes to the environment as the action. When nothing is decoding, the poll waits for
// the environments.
#include <chrono>
#include <map>

#include "rlaif/episodes.h"
#include "rlaif/error.h"
#include "rlaif/sampler.h"

namespace rlaif {
namespace {

using Clock = std::chrono::steady_clock;

struct Live {
  Episode* episode = nullptr;
  const nlohmann::json* row = nullptr;  // the request's row, for the environment's reset
  uint64_t seed = 0;                    // the episode's own stream
  std::string rendered;  // the chat template's rendering of `messages` with the generation prompt (the last turn's)
  int64_t policy_tokens = 0;
  bool ended = false;
};

// The messages an observation becomes: the environment's own (tools: `tool` messages), else a user message, appended
// to a trailing user message (the prompt, at the reset) or new.
void add_observation(nlohmann::ordered_json& messages, const EnvReply& reply) {
  const std::string& observation = reply.observation;
  if (!reply.messages.empty()) {
    for (const auto& m : reply.messages) messages.push_back(m);
  } else if (!messages.empty() && messages.back().value("role", "") == "user" &&
             messages.back()["content"].is_string()) {
    std::string content = messages.back()["content"].get<std::string>();
    if (!observation.empty()) content += (content.empty() ? "" : "\n\n") + observation;
    messages.back()["content"] = content;
  } else {
    messages.push_back({{"role", "user"}, {"content", observation}});
  }
}

}  // namespace

std::vector<std::vector<Episode>> run_episodes(Generator& generator, const ChatTemplate& chat, Environment& env,
                                               const std::vector<EpisodeRequest>& requests,
                                               const EpisodeOptions& options, EpisodeStats* stats) {
  const Tokenizer& tok = generator.tokenizer();
  std::vector<std::vector<Episode>> out(requests.size());
  std::vector<Live> live;
  for (size_t r = 0; r < requests.size(); ++r) {
    if (!requests[r].messages.is_array())
      throw Error("messages must be a list of chat messages", "episode request " + std::to_string(r));
    out[r].resize(static_cast<size_t>(requests[r].num_episodes));
  }
  for (size_t r = 0; r < requests.size(); ++r)
    for (int64_t j = 0; j < requests[r].num_episodes; ++j) {
      Live l;
      l.episode = &out[r][static_cast<size_t>(j)];
      l.row = &requests[r].row;
      l.episode->messages = requests[r].messages;
      l.seed = sample_seed(requests[r].seed, static_cast<uint64_t>(j));
      live.push_back(l);
    }
  EpisodeStats st;
  size_t ended = 0;
  const nlohmann::ordered_json extra = env.template_extra();  // tools: the tools the template shows the policy
  auto end = [&](int64_t e, const std::string& why, const std::string& detail = "") {
    Live& l = live[static_cast<size_t>(e)];
    if (l.ended) return;
    l.ended = true;
    l.episode->ended_by = why;
    l.episode->detail = detail;
    env.close(e);
    ++ended;
    if (options.on_end) options.on_end(*l.episode);
  };
  // The episode's next turn: its whole sequence as the prompt, within the turn's and the episode's token budgets.
  std::vector<std::pair<size_t, GenerationRequest>> next_turns;
  auto queue_turn = [&](int64_t e) {
    Live& l = live[static_cast<size_t>(e)];
    GenerationRequest q;
    q.prompt_ids = l.episode->token_ids;
    q.seed = sample_seed(l.seed, static_cast<uint64_t>(l.episode->turns));
    q.params = options.params;
    if (options.keep_cache) q.keep_key = e;
    q.params.max_new_tokens = std::min<int64_t>(options.max_turn_tokens, options.max_episode_tokens - l.policy_tokens);
    next_turns.emplace_back(static_cast<size_t>(e), std::move(q));
  };
  auto append = [&](Episode& ep, const std::vector<int64_t>& ids, bool policy, const std::vector<float>* lp) {
    for (size_t i = 0; i < ids.size(); ++i) {
      ep.token_ids.push_back(ids[i]);
      ep.policy_mask.push_back(policy ? 1 : 0);
      ep.logprobs.push_back(lp ? (*lp)[i] : 0.f);
    }
    (policy ? st.policy_tokens : st.observation_tokens) += static_cast<int64_t>(ids.size());
  };
  // An observation arrived: it joins the conversation, and the template's tokens from the end of the policy's last
  // turn to the next generation prompt join the sequence.
  auto observe = [&](int64_t e, const EnvReply& reply) {
    Live& l = live[static_cast<size_t>(e)];
    Episode& ep = *l.episode;
    const size_t assistant = ep.messages.size() - 1;  // the policy's last turn (after the reset: none)
    add_observation(ep.messages, reply);
    const std::string full = chat.render_for(tok, ep.messages, /*add_generation_prompt=*/true, extra);
    if (ep.token_ids.empty()) {  // the reset: the first prompt
      append(ep, tok.encode(full, false), false, nullptr);
      ep.prompt_length = static_cast<int64_t>(ep.token_ids.size());
      ep.prompt_messages = ep.messages.size();
    } else {
      // The sequence so far is the last prompt's rendering, then the sampled tokens; the template must render the
      // conversation with that prefix unchanged, followed by the assistant's text.
      const std::string& before = l.rendered;
      const std::string text = ep.messages[assistant]["content"].get<std::string>();
      if (full.compare(0, before.size(), before) != 0 || full.compare(before.size(), text.size(), text) != 0)
        return end(e, "template",
                   "the chat template renders earlier turns differently once a turn is added; multi-turn episodes "
                   "need a template whose rendering of a conversation starts with that of its earlier turns");
      std::string rest = full.substr(before.size() + text.size());
      // An end-of-turn token the policy sampled is in the sequence already; the rest of the template's text is not.
      if (ep.policy_mask.back()) {
        const std::vector<int64_t> last = {ep.token_ids.back()};
        const std::string special = tok.decode(last, false);
        if (!special.empty() && tok.decode(last, true).empty() && rest.compare(0, special.size(), special) == 0)
          rest.erase(0, special.size());
      }
      append(ep, tok.encode(rest, false), false, nullptr);
    }
    l.rendered = full;
    queue_turn(e);
  };
  auto on_reply = [&](EnvReply& reply) {
    const int64_t e = reply.episode;
    Live& l = live[static_cast<size_t>(e)];
    if (l.ended) return;
    Episode& ep = *l.episode;
    if (!reply.ok) return end(e, reply.failure, reply.detail);
    if (ep.turns > 0) {  // the reply to an action
      ep.rewards.push_back(reply.reward);
      if (reply.reward) ep.env_reward += *reply.reward;
    }
    if (reply.done) return end(e, "done");
    if (ep.turns >= options.max_turns) return end(e, "max_turns");
    if (l.policy_tokens >= options.max_episode_tokens) return end(e, "max_episode_tokens");
    observe(e, reply);
  };

  for (size_t e = 0; e < live.size(); ++e) env.reset(static_cast<int64_t>(e), *live[e].row, live[e].seed);
  auto poll = [&](const Generator::ContinuousStatus& status) {
    Generator::Incoming in;
    // Nothing to decode: wait for the environments (their latency is hidden only while other episodes decode).
    const auto t0 = Clock::now();
    auto replies = env.poll(status.idle && next_turns.empty() ? 1.0 : 0.0);
    if (status.idle) st.env_wait_s += std::chrono::duration<double>(Clock::now() - t0).count();
    for (auto& reply : replies) on_reply(reply);
    in.requests = std::move(next_turns);
    next_turns.clear();
    in.stop = ended == live.size();
    if (status.idle && in.requests.empty() && !in.stop && env.outstanding() == 0)
      throw Error("episodes neither decode nor wait for their environment (" + std::to_string(live.size() - ended) +
                      " not ended)",
                  "run_episodes", "this is a bug in rlaif");
    return in;
  };
  auto on_done = [&](size_t id, GenerationResult& result) {
    Live& l = live[id];
    Episode& ep = *l.episode;
    Sample& s = result.samples.at(0);
    append(ep, s.token_ids, true, &s.logprobs);
    l.policy_tokens += static_cast<int64_t>(s.token_ids.size());
    ep.messages.push_back({{"role", "assistant"}, {"content", s.text}});
    ++ep.turns;
    ++st.turns;
    env.step(static_cast<int64_t>(id), s.text);
  };
  auto on_error = [&](size_t id, const std::string& error) { end(static_cast<int64_t>(id), "context", error); };
  const GenerationStats before = generator.stats();
  generator.run_continuous(poll, {}, {}, on_done, on_error);
  st.prefill_tokens = generator.stats().prefill_tokens - before.prefill_tokens;
  st.reused_tokens = generator.stats().reused_tokens - before.reused_tokens;

  for (const auto& l : live) {
    ++st.episodes;
    st.failed += l.episode->failed();
  }
  if (stats) *stats = st;
  return out;
}

}  // namespace rlaif
