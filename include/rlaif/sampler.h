// Token sampling from one row of logits: greedy, temperature, top-k, top-p (nucleus) and min-p.
// Filters apply in transformers' order: temperature, then top-k, then top-p over what top-k kept, then min-p.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace rlaif {

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy (argmax); otherwise logits are divided by it
  int64_t top_k = 0;         // 0 = off; keep the k most likely tokens
  float top_p = 1.0f;        // 1 = off; keep the smallest set of most likely tokens whose probability reaches top_p
  float min_p = 0.0f;        // 0 = off; keep tokens with probability >= min_p * (probability of the most likely)
};

struct SampledToken {
  int64_t token = 0;
  float logprob = 0.0f;  // log-probability of `token` under softmax(logits / temperature) over the whole vocabulary
                         // (temperature 1 when greedy), before top-k/top-p/min-p truncation
};

// A per-sequence random stream: the same seed gives the same draws, whatever else is being sampled.
class SampleRng {
 public:
  explicit SampleRng(uint64_t seed = 0) : gen_(seed) {}
  double uniform() { return static_cast<double>(gen_() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
 private:
  std::mt19937_64 gen_;
};

// Seed of sample `index` of a request seeded with `seed` (splitmix64 of both), so samples of one prompt differ.
uint64_t sample_seed(uint64_t seed, uint64_t index);

// Buffers reused between calls, to avoid allocating per token.
struct SamplerScratch {
  std::vector<int32_t> order;
  std::vector<float> z, probs;
};

// Samples from logits[0..V). Thread-safe for distinct rng/scratch. Throws rlaif::Error if the logits hold NaN/inf.
SampledToken sample_token(const float* logits, int64_t V, const SamplingParams& params, SampleRng& rng,
                          SamplerScratch& scratch);

// The same, from precomputed z = logits / temperature (logits when greedy), probs = softmax(z) and lse =
// logsumexp(z): the generator computes these for a whole batch with vectorised libtorch ops.
SampledToken sample_token_from_probs(const float* z, const float* probs, double lse, int64_t V,
                                     const SamplingParams& params, SampleRng& rng, SamplerScratch& scratch);

// Checks the ranges (temperature >= 0, top_k >= 0, 0 < top_p <= 1, 0 <= min_p <= 1); throws rlaif::Error naming the
// option.
void validate(const SamplingParams& params);

}  // namespace rlaif
