#include "rlaif/generator.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <deque>

#include "generate/json_prefix.h"
#include "rlaif/error.h"

namespace rlaif {

const char* to_string(FinishReason r) { return r == FinishReason::kStop ? "stop" : "length"; }

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The k most likely tokens of softmax(logits / temperature) (temperature 1 when greedy), most likely first.
std::vector<std::pair<int64_t, float>> top_logprobs(const float* logits, int64_t V, float temperature, int64_t k) {
  const double inv_t = temperature > 0 ? 1.0 / temperature : 1.0;
  double mx = -1e300;
  for (int64_t v = 0; v < V; ++v) mx = std::max(mx, logits[v] * inv_t);
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(logits[v] * inv_t - mx);
  const double lse = mx + std::log(sum);
  std::vector<int64_t> ids(V);
  for (int64_t v = 0; v < V; ++v) ids[v] = v;
  k = std::min(k, V);
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int64_t a, int64_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  std::vector<std::pair<int64_t, float>> out;
  for (int64_t i = 0; i < k; ++i) out.emplace_back(ids[i], static_cast<float>(logits[ids[i]] * inv_t - lse));
  return out;
}

struct Slot {
  bool active = false;
  size_t request = 0;
  int64_t sample = 0;
  int64_t len = 0;         // tokens in the cache for this slot
  int64_t next_token = 0;  // sampled, not yet fed to the model
  SampleRng rng;
  Sample out;
  std::string bytes;       // raw bytes of the completion so far (for stop strings)
  SamplerScratch scratch;
  JsonObjectPrefix json;   // params.json_object: the JSON read so far
};

// Pending work: samples [first, first + count) of one request.
struct Pending {
  size_t request;
  int64_t first, count;
};

}  // namespace

Generator::Generator(CausalLM model, Tokenizer tokenizer, std::vector<int64_t> eos_ids, GeneratorOptions options)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), eos_ids_(std::move(eos_ids)), options_(options) {
  if (options_.max_batch < 1) throw Error("max_batch must be >= 1", "max_batch");
  model_->eval();
}

std::vector<GenerationResult> Generator::generate(const std::vector<GenerationRequest>& requests,
                                                  const OnSample& on_sample, const OnToken& on_token) {
  const auto& cfg = model_->config();
  int64_t ctx = cfg.max_position_embeddings;
  if (cfg.sliding_window > 0) ctx = std::min(ctx, cfg.sliding_window);
  int64_t need = 1;
  for (size_t r = 0; r < requests.size(); ++r) {
    const auto& q = requests[r];
    std::string where = "request " + std::to_string(r);
    if (q.prompt_ids.empty()) throw Error("empty prompt", where, "a prompt needs at least one token");
    if (q.num_samples < 1) throw Error("num_samples must be >= 1", where);
    if (q.params.max_new_tokens < 1) throw Error("max_new_tokens must be >= 1", where);
    validate(q.params.sampling);
    for (int64_t id : q.prompt_ids)
      if (id < 0 || id >= cfg.vocab_size) throw Error("token id " + std::to_string(id) + " is outside the vocabulary", where);
    if (static_cast<int64_t>(q.prompt_ids.size()) >= ctx)
      throw Error("prompt of " + std::to_string(q.prompt_ids.size()) + " tokens leaves no room in the model's context of " +
                      std::to_string(ctx),
                  where, "shorten the prompt");
    need = std::max<int64_t>(need, std::min<int64_t>(ctx, q.prompt_ids.size() + q.params.max_new_tokens));
  }
  int64_t cache_len = options_.max_seq_len > 0 ? std::min(options_.max_seq_len, ctx) : need;
  for (size_t r = 0; r < requests.size(); ++r)
    if (static_cast<int64_t>(requests[r].prompt_ids.size()) >= cache_len)
      throw Error("prompt longer than the KV cache (max_seq_len " + std::to_string(cache_len) + ")",
                  "request " + std::to_string(r), "raise max_seq_len");
  const int64_t S = options_.max_batch;
  // bf16 compute keeps keys/values in bf16 too: at 32-64 sequences the cache is read as often as the weights.
  const torch::ScalarType cache_dtype =
      model_->packed_inference() && model_->packed_bf16() ? torch::kBFloat16 : model_->dtype();
  if (!cache_ || cache_->max_len() < cache_len || cache_->slots() != S || cache_->k(0).scalar_type() != cache_dtype)
    cache_ = std::make_unique<KVCache>(cfg, S, cache_len, cache_dtype);

  torch::InferenceMode inference;
  model_->prepare_inference();
  std::vector<GenerationResult> results(requests.size());
  for (size_t r = 0; r < requests.size(); ++r) results[r].samples.resize(requests[r].num_samples);
  std::deque<Pending> pending;
  for (size_t r = 0; r < requests.size(); ++r) pending.push_back({r, 0, requests[r].num_samples});
  std::vector<Slot> slots(S);
  const int64_t V = cfg.vocab_size;

  // Appends a sampled token to slot s; returns true when the sample is finished.
  // json_object: redraws a token that cannot extend the slot's JSON-object prefix (z, probs, lse: the step's scaled
  // logits, softmax and logsumexp for this slot); after 64 rejections, the most likely allowed token.
  auto constrain = [&](Slot& s, SampledToken t, const float* z, const float* probs, double lse) {
    const auto& p = requests[s.request].params;
    if (!p.json_object) return t;
    auto allowed = [&](int64_t tok) {
      if (std::find(eos_ids_.begin(), eos_ids_.end(), tok) != eos_ids_.end()) return s.json.complete();
      if (tokenizer_.is_special(tok)) return false;
      JsonObjectPrefix next = s.json;
      return next.feed(tokenizer_.token_bytes(tok));
    };
    for (int tries = 0; tries < 64; ++tries) {
      if (allowed(t.token)) return t;
      t = sample_token_from_probs(z, probs, lse, V, p.sampling, s.rng, s.scratch);
    }
    std::vector<int64_t> order(V);
    for (int64_t v = 0; v < V; ++v) order[v] = v;
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return probs[a] > probs[b] || (probs[a] == probs[b] && a < b); });
    for (int64_t v : order)
      if (allowed(v)) return SampledToken{v, static_cast<float>(z[v] - lse)};
    throw Error("no token of the vocabulary can continue the JSON object", "json_object",
                "the tokenizer lacks the characters JSON needs");
  };

  // `logits` is the slot's row of raw logits, for top_logprobs.
  auto append = [&](Slot& s, const SampledToken& t, const float* logits) {
    const auto& p = requests[s.request].params;
    s.out.token_ids.push_back(t.token);
    s.out.logprobs.push_back(t.logprob);
    if (on_token) on_token(s.request, static_cast<size_t>(s.sample), t.token);
    if (p.top_logprobs > 0) s.out.top_logprobs.push_back(top_logprobs(logits, V, p.sampling.temperature, p.top_logprobs));
    s.next_token = t.token;
    bool eos = !p.ignore_eos && std::find(eos_ids_.begin(), eos_ids_.end(), t.token) != eos_ids_.end();
    if (eos) {
      s.out.finish_reason = FinishReason::kStop;
      return true;
    }
    if (!tokenizer_.is_special(t.token)) {
      size_t before = s.bytes.size();
      s.bytes += tokenizer_.token_bytes(t.token);
      if (p.json_object) {
        s.json.feed(tokenizer_.token_bytes(t.token));  // accepted by `constrain`
        if (s.json.complete()) {
          s.out.finish_reason = FinishReason::kStop;
          return true;
        }
      }
      for (const auto& stop : p.stop) {
        if (stop.empty()) continue;
        size_t from = before >= stop.size() ? before - stop.size() + 1 : 0;
        size_t at = s.bytes.find(stop, from);
        if (at != std::string::npos) {
          s.bytes.resize(at);
          s.out.finish_reason = FinishReason::kStop;
          return true;
        }
      }
    }
    if (static_cast<int64_t>(s.out.token_ids.size()) >= p.max_new_tokens || s.len + 1 >= cache_->max_len()) {
      s.out.finish_reason = FinishReason::kLength;
      return true;
    }
    return false;
  };
  auto finish = [&](Slot& s) {
    s.out.text = utf8_lossy(s.bytes);
    Sample& dst = results[s.request].samples[s.sample];
    dst = std::move(s.out);
    if (on_sample) on_sample(s.request, s.sample, dst);
    s.active = false;
    s.out = Sample();
    s.bytes.clear();
    s.json = JsonObjectPrefix();
  };

  for (;;) {
    // 1. Fill free slots with waiting samples; one prefill per prompt, shared by its samples.
    while (!pending.empty()) {
      std::vector<int64_t> free;
      for (int64_t i = 0; i < S; ++i)
        if (!slots[i].active) free.push_back(i);
      if (free.empty()) break;
      Pending& item = pending.front();
      const auto& q = requests[item.request];
      const int64_t P = static_cast<int64_t>(q.prompt_ids.size());
      const int64_t n = std::min<int64_t>(item.count, free.size());
      auto t0 = Clock::now();
      CachedBatch batch;
      batch.input_ids = torch::tensor(q.prompt_ids, torch::kInt64).view({1, P});
      batch.positions = torch::arange(P, torch::kInt64).view({1, P});
      batch.slot_begin = free[0];
      batch.key_len = P;
      auto hidden = model_->forward_cached(batch, *cache_);                          // [1, P, C]
      auto logits = model_->logits(hidden.select(1, P - 1)).to(torch::kFloat32).contiguous();  // [1, V]
      for (int64_t j = 1; j < n; ++j) cache_->copy_slot(free[0], free[j], P);
      stats_.prefill_tokens += P;
      stats_.prefill_seconds += seconds_since(t0);
      for (int64_t j = 0; j < n; ++j) {
        Slot& s = slots[free[j]];
        s.active = true;
        s.request = item.request;
        s.sample = item.first + j;
        s.len = P;
        s.rng = SampleRng(sample_seed(q.seed, s.sample));
        auto t = sample_token(logits.data_ptr<float>(), V, q.params.sampling, s.rng, s.scratch);
        // sample_token leaves z and softmax(z) in the scratch; lse = z[t] - logprob(t).
        t = constrain(s, t, s.scratch.z.data(), s.scratch.probs.data(), s.scratch.z[t.token] - t.logprob);
        if (append(s, t, logits.data_ptr<float>())) finish(s);
      }
      item.first += n;
      item.count -= n;
      if (item.count == 0) pending.pop_front();
    }

    // 2. One decode step over slots [0, hi).
    int64_t hi = 0, key_len = 0;
    for (int64_t i = 0; i < S; ++i)
      if (slots[i].active) {
        hi = i + 1;
        key_len = std::max(key_len, slots[i].len + 1);
      }
    if (hi == 0) {
      if (pending.empty()) break;
      continue;
    }
    auto t0 = Clock::now();
    std::vector<int64_t> ids(hi, 0), pos(hi, 0);
    for (int64_t i = 0; i < hi; ++i)
      if (slots[i].active) {
        ids[i] = slots[i].next_token;
        pos[i] = slots[i].len;
      }
    CachedBatch batch;
    batch.input_ids = torch::tensor(ids, torch::kInt64).view({hi, 1});
    batch.positions = torch::tensor(pos, torch::kInt64).view({hi, 1});
    batch.slot_begin = 0;
    batch.key_len = key_len;
    auto hidden = model_->forward_cached(batch, *cache_);                                  // [hi, 1, C]
    auto logits = model_->logits(hidden.squeeze(1)).to(torch::kFloat32).contiguous();     // [hi, V]
    stats_.decode_seconds += seconds_since(t0);
    auto t1 = Clock::now();
    // Scaled logits, softmax and logsumexp for all rows at once (vectorised), then each row draws with its own rng.
    std::vector<float> inv_t(hi, 1.0f);
    for (int64_t i = 0; i < hi; ++i)
      if (slots[i].active) {
        float t = requests[slots[i].request].params.sampling.temperature;
        inv_t[i] = t > 0 ? 1.0f / t : 1.0f;
      }
    const float* raw = logits.data_ptr<float>();
    auto z = (logits * torch::tensor(inv_t).view({hi, 1})).contiguous();  // [hi, V]
    auto lse = torch::logsumexp(z, -1, /*keepdim=*/true);                  // [hi, 1]
    auto probs = (z - lse).exp_().contiguous();                            // [hi, V]
    std::vector<SampledToken> picked(hi);
    const float* zp = z.data_ptr<float>();
    const float* pp = probs.data_ptr<float>();
    const float* lp = lse.data_ptr<float>();
    at::parallel_for(0, hi, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        if (slots[i].active)
          picked[i] = sample_token_from_probs(zp + i * V, pp + i * V, lp[i], V, requests[slots[i].request].params.sampling,
                                              slots[i].rng, slots[i].scratch);
    });
    stats_.sample_seconds += seconds_since(t1);
    for (int64_t i = 0; i < hi; ++i) {
      Slot& s = slots[i];
      if (!s.active) continue;
      s.len += 1;
      stats_.decode_tokens += 1;
      const auto t = constrain(s, picked[i], zp + i * V, pp + i * V, lp[i]);
      if (append(s, t, raw + i * V)) finish(s);
    }
    stats_.decode_steps += 1;
  }
  return results;
}

}  // namespace rlaif
