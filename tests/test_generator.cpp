// The generation engine: batching never changes results, seeds are per sample, logprobs are the model's, stop
// conditions work, and continuous batching finishes every sample exactly once.
#include <torch/torch.h>
#include "generate/json_schema_prefix.h"
#include "rlaif/generator.h"
#include "rlaif/init_model.h"
#include "rlaif/model_folder.h"

#include "test_util.h"

using rlaif_test::TempDir;

namespace {

struct Fixture {
  TempDir dir;
  std::string path;
  rlaif::CausalLM model{nullptr};
  rlaif::Tokenizer tok;
  Fixture(const std::string& arch = "qwen2") {
    rlaif::InitModelOptions o;
    o.arch = arch;
    o.size = "hidden=64,layers=2,heads=4,kv_heads=2,intermediate=128";
    o.seed = 21;
    path = dir / "m";
    rlaif::init_model(o, path);
    model = rlaif::load_model(path);
    {  // sharpen the distribution so greedy and sampled texts are far from uniform noise
      torch::NoGradGuard g;
      for (auto& p : model->named_parameters())
        if (p.key().find("norm") == std::string::npos) p.value().mul_(8.0);
    }
    tok = rlaif::Tokenizer::load(path);
  }
  rlaif::Generator generator(int64_t max_batch, std::vector<int64_t> eos = {}) {
    rlaif::GeneratorOptions go;
    go.max_batch = max_batch;
    return rlaif::Generator(model, tok, eos, go);
  }
};

rlaif::GenerationRequest request(const rlaif::Tokenizer& tok, const std::string& prompt, uint64_t seed, int64_t n,
                                 float temperature, int64_t max_new = 12) {
  rlaif::GenerationRequest r;
  r.prompt_ids = tok.encode(prompt);
  r.num_samples = n;
  r.seed = seed;
  r.params.sampling.temperature = temperature;
  r.params.max_new_tokens = max_new;
  return r;
}

std::vector<rlaif::GenerationRequest> mixed_requests(const rlaif::Tokenizer& tok, float temperature) {
  std::vector<rlaif::GenerationRequest> rs;
  const char* prompts[] = {"a", "The quick brown fox", "12345", "hello, world", "x y z", "Once upon a time there"};
  for (int i = 0; i < 6; ++i) rs.push_back(request(tok, prompts[i], 100 + i, 1 + i % 3, temperature, 6 + 3 * i));
  return rs;
}

}  // namespace

TEST(Generator, BatchedGreedyEqualsOneAtATime) {
  Fixture f;
  auto reqs = mixed_requests(f.tok, 0.0f);
  auto batched = f.generator(8).generate(reqs);
  for (size_t r = 0; r < reqs.size(); ++r) {
    auto alone = f.generator(1).generate({reqs[r]});
    for (size_t j = 0; j < alone[0].samples.size(); ++j)
      EXPECT_EQ(batched[r].samples[j].token_ids, alone[0].samples[j].token_ids) << "request " << r;
  }
  EXPECT_EQ(batched[1].samples[0].token_ids.size(), 9u);  // max_new_tokens = 6 + 3
  EXPECT_EQ(batched[1].samples[0].finish_reason, rlaif::FinishReason::kLength);
}

TEST(Generator, SameSeedSameSamplesWhateverElseIsInTheBatch) {
  Fixture f;
  auto reqs = mixed_requests(f.tok, 1.0f);
  auto all = f.generator(4).generate(reqs);
  auto target = reqs[3];
  auto alone = f.generator(2).generate({target});
  std::vector<rlaif::GenerationRequest> other = {reqs[5], target, reqs[0]};
  auto among = f.generator(16).generate(other);
  for (size_t j = 0; j < alone[0].samples.size(); ++j) {
    EXPECT_EQ(all[3].samples[j].token_ids, alone[0].samples[j].token_ids) << j;
    EXPECT_EQ(among[1].samples[j].token_ids, alone[0].samples[j].token_ids) << j;
    EXPECT_EQ(all[3].samples[j].text, alone[0].samples[j].text);
  }
  // Different seeds give different samples, and samples of one prompt differ from each other.
  auto reseeded = target;
  reseeded.seed += 1;
  EXPECT_NE(f.generator(2).generate({reseeded})[0].samples[0].token_ids, alone[0].samples[0].token_ids);
  auto many = f.generator(8).generate({request(f.tok, "abc", 1, 4, 1.0f)});
  EXPECT_NE(many[0].samples[0].token_ids, many[0].samples[1].token_ids);
}

TEST(Generator, SamplesOfOnePromptShareOnePrefill) {
  Fixture f;
  auto g = f.generator(8);
  auto r = request(f.tok, "a shared prompt", 3, 5, 1.0f);
  g.generate({r});
  EXPECT_EQ(g.stats().prefill_tokens, static_cast<int64_t>(r.prompt_ids.size()));
  EXPECT_EQ(g.stats().prefills, 1);
}

TEST(Generator, PromptsWaitingTogetherArePrefilledTogether) {
  // Six prompts of 1-6 tokens and 12 samples: with 16 slots one padded prefill serves them all; with 1 slot, one per
  // sample. The tokens are BatchedGreedyEqualsOneAtATime's business; here, the count of forwards.
  Fixture f;
  auto reqs = mixed_requests(f.tok, 0.0f);
  int64_t prompt_tokens = 0, samples = 0;
  for (const auto& r : reqs) prompt_tokens += r.prompt_ids.size(), samples += r.num_samples;
  auto wide = f.generator(16);
  wide.generate(reqs);
  EXPECT_EQ(wide.stats().prefills, 1);
  EXPECT_EQ(wide.stats().prefill_tokens, prompt_tokens);  // padding is not counted
  auto narrow = f.generator(1);
  narrow.generate(reqs);
  EXPECT_EQ(narrow.stats().prefills, samples);
}

TEST(Generator, LogprobsAreTheModelsTemperatureScaledLogSoftmax) {
  Fixture f;
  const float T = 0.7f;
  auto r = request(f.tok, "logprob check", 8, 1, T, 10);
  auto res = f.generator(4).generate({r});
  const auto& s = res[0].samples[0];
  std::vector<int64_t> seq = r.prompt_ids;
  seq.insert(seq.end(), s.token_ids.begin(), s.token_ids.end());
  torch::NoGradGuard g;
  auto logits = f.model->forward(torch::tensor(seq).view({1, -1}))[0];  // [T, V]
  auto lp = torch::log_softmax(logits / T, -1);
  const size_t P = r.prompt_ids.size();
  for (size_t i = 0; i < s.token_ids.size(); ++i)
    EXPECT_NEAR(s.logprobs[i], lp[P - 1 + i][s.token_ids[i]].item<float>(), 1e-4) << i;
}

TEST(Generator, TopLogprobsAreTheKMostLikelyTokensOfThatDistribution) {
  Fixture f;
  const float T = 0.7f;
  auto r = request(f.tok, "top logprob check", 9, 2, T, 8);
  r.params.top_logprobs = 4;
  auto res = f.generator(4).generate({r, request(f.tok, "no top", 1, 1, T, 5)});
  EXPECT_TRUE(res[1].samples[0].top_logprobs.empty());  // only when asked
  torch::NoGradGuard g;
  for (const auto& s : res[0].samples) {
    ASSERT_EQ(s.top_logprobs.size(), s.token_ids.size());
    std::vector<int64_t> seq = r.prompt_ids;
    seq.insert(seq.end(), s.token_ids.begin(), s.token_ids.end());
    auto lp = torch::log_softmax(f.model->forward(torch::tensor(seq).view({1, -1}))[0] / T, -1);  // [T, V]
    const int64_t P = static_cast<int64_t>(r.prompt_ids.size());
    for (size_t i = 0; i < s.token_ids.size(); ++i) {
      auto [values, ids] = lp[P - 1 + static_cast<int64_t>(i)].topk(4);
      ASSERT_EQ(s.top_logprobs[i].size(), 4u);
      for (int64_t k = 0; k < 4; ++k) {
        EXPECT_EQ(s.top_logprobs[i][k].first, ids[k].item<int64_t>()) << i << " " << k;
        EXPECT_NEAR(s.top_logprobs[i][k].second, values[k].item<float>(), 1e-4);
      }
    }
  }
}

TEST(Generator, JsonObjectModeWritesOneJsonObject) {
  Fixture f;
  auto r = request(f.tok, "JSON please:", 3, 8, 1.0f, 96);
  r.params.json_object = true;
  std::vector<int64_t> eos = {f.tok.eos_id()};
  auto res = f.generator(8, eos).generate({r});
  int closed = 0;
  for (const auto& s : res[0].samples) {
    // Always a valid prefix, even when cut by the length limit.
    EXPECT_NE(rlaif::JsonSchemaPrefix::check(*rlaif::JsonSchema::any_object(), s.text), 'x') << s.text;
    if (s.finish_reason == rlaif::FinishReason::kStop) {
      ++closed;
      auto j = nlohmann::json::parse(s.text, nullptr, false);
      EXPECT_TRUE(!j.is_discarded() && j.is_object()) << s.text;
    }
  }
  EXPECT_GT(closed, 0);  // a random model closes some objects within 96 tokens once only JSON may be written
}

TEST(Generator, JsonSchemaModeWritesObjectsTheSchemaAccepts) {
  Fixture f;
  auto r = request(f.tok, "Verdict:", 5, 8, 1.0f, 160);
  r.params.json_object = true;
  r.params.json_schema = std::make_shared<const rlaif::JsonSchema>(rlaif::JsonSchema::parse(
      nlohmann::json::parse(
          R"({"type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5},
                                "label": {"enum": ["good", "bad"]}}, "required": ["score", "label"]})"),
      "schema"));
  std::vector<int64_t> eos = {f.tok.eos_id()};
  auto res = f.generator(8, eos).generate({r});
  int closed = 0;
  for (const auto& s : res[0].samples) {
    EXPECT_NE(rlaif::JsonSchemaPrefix::check(*r.params.json_schema, s.text), 'x') << s.text;
    if (s.finish_reason != rlaif::FinishReason::kStop) continue;
    ++closed;
    auto j = nlohmann::json::parse(s.text, nullptr, false);  // checked here without the prefix check
    ASSERT_TRUE(!j.is_discarded() && j.is_object()) << s.text;
    EXPECT_EQ(j.size(), 2u) << s.text;
    ASSERT_TRUE(j.contains("score") && j["score"].is_number_integer()) << s.text;
    EXPECT_GE(j["score"].get<int>(), 1);
    EXPECT_LE(j["score"].get<int>(), 5);
    EXPECT_TRUE(j["label"] == "good" || j["label"] == "bad") << s.text;
  }
  EXPECT_GT(closed, 0);  // a random model, held to the schema, closes some objects within 160 tokens
}

TEST(Generator, StopStringsEosAndLength) {
  Fixture f;
  auto r = request(f.tok, "stop here", 1, 1, 0.0f, 16);
  auto base = f.generator(2).generate({r})[0].samples[0];
  ASSERT_EQ(base.token_ids.size(), 16u);
  // A stop string taken from the middle of the greedy text ends generation there, cut before it.
  std::string bytes;
  for (auto id : base.token_ids) bytes += f.tok.token_bytes(id);
  std::string stop = bytes.substr(5, 2);
  size_t first = bytes.find(stop);
  r.params.stop = {stop};
  auto stopped = f.generator(2).generate({r})[0].samples[0];
  EXPECT_EQ(stopped.finish_reason, rlaif::FinishReason::kStop);
  EXPECT_EQ(stopped.text, rlaif::utf8_lossy(bytes.substr(0, first)));
  EXPECT_LE(stopped.token_ids.size(), first + 2);
  // An end-of-sequence id stops generation and stays in the token ids, not the text.
  r.params.stop.clear();
  auto with_eos = f.generator(2, {base.token_ids[4]}).generate({r})[0].samples[0];
  size_t at = std::find(base.token_ids.begin(), base.token_ids.end(), base.token_ids[4]) - base.token_ids.begin();
  EXPECT_EQ(with_eos.finish_reason, rlaif::FinishReason::kStop);
  EXPECT_EQ(with_eos.token_ids.size(), at + 1);
  r.params.ignore_eos = true;
  EXPECT_EQ(f.generator(2, {base.token_ids[4]}).generate({r})[0].samples[0].token_ids.size(), 16u);
}

TEST(Generator, ContinuousBatchingFinishesEverySampleOnce) {
  Fixture f("qwen3");
  std::vector<rlaif::GenerationRequest> reqs;
  for (int i = 0; i < 10; ++i)
    reqs.push_back(request(f.tok, "prompt " + std::to_string(i), i, 3, 1.0f, 3 + (i * 7) % 11));
  std::map<std::pair<size_t, size_t>, int> calls;
  auto small = f.generator(3).generate(reqs, [&](size_t r, size_t s, const rlaif::Sample&) { calls[{r, s}]++; });
  EXPECT_EQ(calls.size(), 30u);
  for (const auto& c : calls) EXPECT_EQ(c.second, 1);
  auto big = f.generator(32).generate(reqs);
  for (size_t r = 0; r < reqs.size(); ++r)
    for (size_t s = 0; s < 3; ++s) {
      EXPECT_EQ(small[r].samples[s].token_ids, big[r].samples[s].token_ids);
      EXPECT_EQ(small[r].samples[s].token_ids.size(), static_cast<size_t>(reqs[r].params.max_new_tokens));
    }
}

TEST(Generator, BadRequestsAreErrorsBeforeAnyWork) {
  Fixture f;
  auto g = f.generator(2);
  auto r = request(f.tok, "x", 0, 1, 1.0f);
  r.prompt_ids.clear();
  rlaif_test::expect_error([&] { g.generate({request(f.tok, "ok", 0, 1, 1.0f), r}); }, {"request 1", "empty prompt"});
  r.prompt_ids.assign(4000, 65);
  rlaif_test::expect_error([&] { g.generate({r}); }, {"request 0", "no room"});
  r = request(f.tok, "x", 0, 1, 1.0f);
  r.params.sampling.top_p = 2;
  rlaif_test::expect_error([&] { g.generate({r}); }, {"top_p"});
}

TEST(Generator, PackedFp32PathGivesTheSameGreedyTokens) {
  // 12 samples in 4 slots: on the packed path, prompts that take slots freed mid-run are prefilled inside decode
  // steps (mixed steps, one row per token with its own slot and position). Every sample must still equal the plain
  // path's, where each prefill is a forward of its own: tokens exactly, log-probs within 1e-3.
  Fixture f("qwen3");
  auto reqs = mixed_requests(f.tok, 0.0f);
  auto plain_gen = f.generator(4);
  auto plain = plain_gen.generate(reqs);
  EXPECT_EQ(plain_gen.stats().mixed_steps, 0);
  if (!f.model->set_packed_inference(true, /*bf16=*/false)) GTEST_SKIP() << "CPU without AVX-512 or AVX2 + FMA";
  auto packed_gen = f.generator(4);
  auto packed = packed_gen.generate(reqs);
  EXPECT_GT(packed_gen.stats().mixed_steps, 0);
  for (size_t r = 0; r < reqs.size(); ++r)
    for (size_t j = 0; j < plain[r].samples.size(); ++j) {
      EXPECT_EQ(packed[r].samples[j].token_ids, plain[r].samples[j].token_ids) << r << "/" << j;
      for (size_t i = 0; i < plain[r].samples[j].logprobs.size(); ++i)
        EXPECT_NEAR(packed[r].samples[j].logprobs[i], plain[r].samples[j].logprobs[i], 1e-3);
    }
}

TEST(Generator, MixedStepsEqualSeparatePrefillsWhenSampling) {
  // Sampled (temperature 1, per-sample seeds) with prompts arriving while others decode: the packed run with mixed
  // steps draws the same tokens as each request generated alone on the packed path (no other rows, no mixing).
  Fixture f("llama");
  if (!f.model->set_packed_inference(true, /*bf16=*/false)) GTEST_SKIP() << "CPU without AVX-512 or AVX2 + FMA";
  std::vector<rlaif::GenerationRequest> reqs;
  for (int i = 0; i < 6; ++i)
    reqs.push_back(request(f.tok, "prompt number " + std::to_string(i), 7 + i, 2, 1.0f, 3 + 4 * i));
  auto g = f.generator(3);
  auto together = g.generate(reqs);
  EXPECT_GT(g.stats().mixed_steps, 0);
  for (size_t r = 0; r < reqs.size(); ++r) {
    auto alone_gen = f.generator(2);
    auto alone = alone_gen.generate({reqs[r]});
    EXPECT_EQ(alone_gen.stats().mixed_steps, 0);
    for (size_t j = 0; j < 2; ++j) {
      EXPECT_EQ(together[r].samples[j].token_ids, alone[0].samples[j].token_ids) << r << "/" << j;
      for (size_t i = 0; i < alone[0].samples[j].logprobs.size(); ++i)
        EXPECT_NEAR(together[r].samples[j].logprobs[i], alone[0].samples[j].logprobs[i], 1e-4);
    }
  }
}

namespace {

// Conversations of several turns through run_continuous, as episodes run them: each turn's prompt is the previous
// turn's prompt, its sample, then a few new tokens, handed over `delay` polls after that turn finished (an
// environment's latency). With `keep`, each conversation keeps its cache under its index.
struct Played {
  std::vector<std::vector<rlaif::Sample>> turns;  // per conversation, per turn
  std::vector<std::vector<int64_t>> prompt_lens;  // the same, each turn's prompt length
  rlaif::GenerationStats stats;
};
Played play(rlaif::Generator& g, const rlaif::Tokenizer& tok, int convs, int turns, bool keep, int delay = 0) {
  Played out;
  out.turns.resize(static_cast<size_t>(convs));
  out.prompt_lens.resize(static_cast<size_t>(convs));
  std::vector<rlaif::GenerationRequest> last(static_cast<size_t>(convs));
  std::vector<std::pair<int, std::pair<size_t, rlaif::GenerationRequest>>> queue;  // (ready at poll, request)
  int polls = 0;
  auto turn = [&](size_t c, std::vector<int64_t> prompt) {
    rlaif::GenerationRequest q;
    q.prompt_ids = std::move(prompt);
    q.seed = 1000 * c + out.turns[c].size();
    q.params.sampling.temperature = 1.0f;
    q.params.max_new_tokens = 3 + static_cast<int64_t>((c * 5 + out.turns[c].size() * 3) % 7);  // staggered ends
    q.keep_key = keep ? static_cast<int64_t>(c) : -1;
    out.prompt_lens[c].push_back(static_cast<int64_t>(q.prompt_ids.size()));
    last[c] = q;
    queue.push_back({polls + delay, {c, std::move(q)}});
  };
  for (int c = 0; c < convs; ++c) turn(static_cast<size_t>(c), tok.encode("conversation " + std::to_string(c)));
  int finished = 0;
  const auto before = g.stats();
  g.run_continuous(
      [&](const rlaif::Generator::ContinuousStatus&) {
        rlaif::Generator::Incoming in;
        ++polls;
        for (auto it = queue.begin(); it != queue.end();)
          if (it->first <= polls) {
            in.requests.push_back(std::move(it->second));
            it = queue.erase(it);
          } else {
            ++it;
          }
        in.stop = finished == convs * turns;
        return in;
      },
      {}, {},
      [&](size_t c, rlaif::GenerationResult& r) {
        const auto& s = r.samples.at(0);
        out.turns[c].push_back(s);
        ++finished;
        if (out.turns[c].size() == static_cast<size_t>(turns)) return;
        auto next = last[c].prompt_ids;
        next.insert(next.end(), s.token_ids.begin(), s.token_ids.end());
        for (int64_t id : tok.encode(" and then " + std::to_string(out.turns[c].size()))) next.push_back(id);
        turn(c, std::move(next));
      },
      [&](size_t c, const std::string& e) { ADD_FAILURE() << "conversation " << c << ": " << e; });
  out.stats = g.stats();
  out.stats.prefill_tokens -= before.prefill_tokens;
  out.stats.reused_tokens -= before.reused_tokens;
  out.stats.evictions -= before.evictions;
  out.stats.mixed_steps -= before.mixed_steps;
  return out;
}

void expect_same_turns(const Played& a, const Played& b, double tol) {
  ASSERT_EQ(a.turns.size(), b.turns.size());
  for (size_t c = 0; c < a.turns.size(); ++c) {
    ASSERT_EQ(a.turns[c].size(), b.turns[c].size());
    for (size_t t = 0; t < a.turns[c].size(); ++t) {
      EXPECT_EQ(a.turns[c][t].token_ids, b.turns[c][t].token_ids) << "conversation " << c << " turn " << t;
      for (size_t i = 0; i < a.turns[c][t].logprobs.size() && i < b.turns[c][t].logprobs.size(); ++i)
        EXPECT_NEAR(a.turns[c][t].logprobs[i], b.turns[c][t].logprobs[i], tol);
    }
  }
}

}  // namespace

TEST(Generator, KeptSlotsPrefillOnlyTheNewTokensAndDrawTheSameSamples) {
  // 5 conversations of 4 turns in 3 slots. A turn whose slot was kept prefills only its new tokens; one whose slot
  // went to another conversation while it was away (evicted: next turns arrive 2 polls late) prefills it all. Either
  // way each turn draws what it draws when every turn prefills its whole prompt (tokens exactly, log-probs within
  // 1e-4 in fp32), on the plain path (batched prefills at offsets) and on the packed path (new tokens ridden in
  // decode steps).
  for (bool packed : {false, true}) {
    SCOPED_TRACE(packed ? "packed" : "plain");
    Fixture f("qwen3");
    if (packed && !f.model->set_packed_inference(true, /*bf16=*/false)) {
      GTEST_SKIP() << "CPU without AVX-512 or AVX2 + FMA";
    }
    auto g = f.generator(3);
    const Played whole = play(g, f.tok, 5, 4, /*keep=*/false);
    EXPECT_EQ(whole.stats.reused_tokens, 0);
    for (int delay : {0, 2}) {
      SCOPED_TRACE("delay " + std::to_string(delay));
      const Played kept = play(g, f.tok, 5, 4, /*keep=*/true, delay);
      expect_same_turns(kept, whole, 1e-4);
      // Every prompt token is prefilled once or was kept.
      EXPECT_EQ(kept.stats.prefill_tokens + kept.stats.reused_tokens, whole.stats.prefill_tokens);
      if (delay == 0) {  // a waiting turn's kept slot is left to it
        EXPECT_GT(kept.stats.reused_tokens, whole.stats.prefill_tokens / 2);
      } else {  // the waiting first turns take the slots of conversations away
        EXPECT_GT(kept.stats.evictions, 0);
      }
      if (packed) {
        EXPECT_GT(kept.stats.mixed_steps, 0);
      }
    }
    // With a slot for every conversation nothing is evicted, and every later turn reuses its whole history.
    auto roomy = f.generator(5);
    const Played all_kept = play(roomy, f.tok, 5, 4, /*keep=*/true, /*delay=*/2);
    expect_same_turns(all_kept, whole, 1e-4);
    EXPECT_EQ(all_kept.stats.evictions, 0);
    int64_t history =
        0;  // each later turn finds the previous turn's prompt and sample in the cache, less its last token
    for (size_t c = 0; c < whole.turns.size(); ++c)
      for (size_t t = 1; t < whole.turns[c].size(); ++t)
        history += whole.prompt_lens[c][t - 1] + static_cast<int64_t>(whole.turns[c][t - 1].token_ids.size()) - 1;
    EXPECT_EQ(all_kept.stats.reused_tokens, history);
  }
}

TEST(Generator, KeepKeyNeedsOneSample) {
  Fixture f;
  auto g = f.generator(2);
  auto r = request(f.tok, "x", 0, 2, 1.0f);
  r.keep_key = 0;
  rlaif_test::expect_error([&] { g.generate({r}); }, {"request 0", "keep_key", "num_samples"});
}
