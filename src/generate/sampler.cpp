#include "rlaif/sampler.h"

#include <algorithm>
#include <cmath>

#include "rlaif/error.h"

namespace rlaif {

uint64_t sample_seed(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void validate(const SamplingParams& p) {
  if (!(p.temperature >= 0)) throw Error("temperature must be >= 0 (0 = greedy)", "temperature");
  if (p.top_k < 0) throw Error("top_k must be >= 0 (0 = off)", "top_k");
  if (!(p.top_p > 0 && p.top_p <= 1)) throw Error("top_p must be in (0, 1] (1 = off)", "top_p");
  if (!(p.min_p >= 0 && p.min_p <= 1)) throw Error("min_p must be in [0, 1] (0 = off)", "min_p");
}

SampledToken sample_token(const float* logits, int64_t V, const SamplingParams& params, SampleRng& rng,
                          std::vector<int32_t>& scratch) {
  const bool greedy = params.temperature == 0.0f;
  const double inv_t = greedy ? 1.0 : 1.0 / params.temperature;
  int64_t best = 0;
  float mx = logits[0];
  for (int64_t i = 1; i < V; ++i)
    if (logits[i] > mx) mx = logits[best = i];
  const double m = mx * inv_t;  // max of scaled logits
  double sum = 0;
  for (int64_t i = 0; i < V; ++i) sum += std::exp(logits[i] * inv_t - m);
  if (!std::isfinite(sum) || std::isnan(mx))
    throw Error("the model produced NaN or infinite logits", "", "the weights may be corrupt or overflowed");
  const double lse = m + std::log(sum);
  auto logprob = [&](int64_t i) { return static_cast<float>(logits[i] * inv_t - lse); };
  if (greedy || params.top_k == 1) return {best, logprob(best)};

  const bool truncate = params.top_k > 0 || params.top_p < 1.0f || params.min_p > 0.0f;
  if (!truncate) {  // plain temperature sampling over the full vocabulary
    double u = rng.uniform() * sum, acc = 0;
    for (int64_t i = 0; i < V; ++i) {
      acc += std::exp(logits[i] * inv_t - m);
      if (acc > u) return {i, logprob(i)};
    }
    return {best, logprob(best)};
  }

  // Candidates: the k most likely, sorted by decreasing logit. Without top_k, grow k until top_p mass is covered.
  scratch.resize(V);
  for (int64_t i = 0; i < V; ++i) scratch[i] = static_cast<int32_t>(i);
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  int64_t k = params.top_k > 0 ? std::min<int64_t>(params.top_k, V) : std::min<int64_t>(64, V);
  double min_p_floor = params.min_p > 0 ? m + std::log(static_cast<double>(params.min_p)) : -INFINITY;
  for (;;) {
    std::nth_element(scratch.begin(), scratch.begin() + (k - 1), scratch.end(), by_logit);
    std::sort(scratch.begin(), scratch.begin() + k, by_logit);
    if (params.top_k > 0 || k == V) break;
    // Without top_k the candidates must hold the top_p mass, and all tokens above the min_p floor.
    double mass = 0;
    for (int64_t i = 0; i < k; ++i) mass += std::exp(logits[scratch[i]] * inv_t - m) / sum;
    bool p_ok = params.top_p >= 1.0f ? false : mass >= params.top_p;
    bool minp_ok = params.min_p > 0 && logits[scratch[k - 1]] * inv_t < min_p_floor;
    if (p_ok || minp_ok) break;
    k = std::min<int64_t>(k * 4, V);
  }
  // Weights relative to the max; total over the top_k set, for top_p renormalisation.
  double total = sum;  // without top_k, top_p is over the whole distribution
  if (params.top_k > 0) {
    total = 0;
    for (int64_t i = 0; i < k; ++i) total += std::exp(logits[scratch[i]] * inv_t - m);
  }
  int64_t keep = k;
  if (params.top_p < 1.0f) {
    double acc = 0;
    for (int64_t i = 0; i < k; ++i) {
      if (acc >= params.top_p * total) {
        keep = i;
        break;
      }
      acc += std::exp(logits[scratch[i]] * inv_t - m);
    }
  }
  if (params.min_p > 0) {
    int64_t n = 1;
    while (n < keep && logits[scratch[n]] * inv_t >= min_p_floor) ++n;
    keep = n;
  }
  double kept = 0;
  for (int64_t i = 0; i < keep; ++i) kept += std::exp(logits[scratch[i]] * inv_t - m);
  double u = rng.uniform() * kept, acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += std::exp(logits[scratch[i]] * inv_t - m);
    if (acc > u) return {scratch[i], logprob(scratch[i])};
  }
  return {scratch[keep - 1], logprob(scratch[keep - 1])};
}

}  // namespace rlaif
