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
                          SamplerScratch& scratch) {
  const double inv_t = params.temperature == 0.0f ? 1.0 : 1.0 / params.temperature;
  scratch.z.resize(V);
  scratch.probs.resize(V);
  double mx = -INFINITY;
  for (int64_t i = 0; i < V; ++i) {
    scratch.z[i] = static_cast<float>(logits[i] * inv_t);
    mx = std::max<double>(mx, scratch.z[i]);
  }
  double sum = 0;
  for (int64_t i = 0; i < V; ++i) sum += std::exp(scratch.z[i] - mx);
  const double lse = mx + std::log(sum);
  for (int64_t i = 0; i < V; ++i) scratch.probs[i] = static_cast<float>(std::exp(scratch.z[i] - lse));
  return sample_token_from_probs(scratch.z.data(), scratch.probs.data(), lse, V, params, rng, scratch);
}

SampledToken sample_token_from_probs(const float* z, const float* probs, double lse, int64_t V,
                                     const SamplingParams& params, SampleRng& rng, SamplerScratch& scratch) {
  if (!std::isfinite(lse))
    throw Error("the model produced NaN or infinite logits", "", "the weights may be corrupt or overflowed");
  auto logprob = [&](int64_t i) { return static_cast<float>(z[i] - lse); };
  auto argmax = [&] {
    int64_t best = 0;
    for (int64_t i = 1; i < V; ++i)
      if (z[i] > z[best]) best = i;
    return best;
  };
  if (params.temperature == 0.0f || params.top_k == 1) {
    int64_t best = argmax();
    return {best, logprob(best)};
  }

  const bool truncate = params.top_k > 0 || params.top_p < 1.0f || params.min_p > 0.0f;
  if (!truncate) {  // plain temperature sampling over the whole vocabulary
    double u = rng.uniform(), acc = 0;
    for (int64_t i = 0; i < V; ++i) {
      acc += probs[i];
      if (acc > u) return {i, logprob(i)};
    }
    int64_t best = argmax();  // u beyond the rounded total: the mode
    return {best, logprob(best)};
  }
  const int64_t best = argmax();

  // Candidates: the k most likely, by decreasing probability. Without top_k, grow k until it holds the top_p mass
  // and everything above the min_p floor.
  auto& order = scratch.order;
  order.resize(V);
  for (int64_t i = 0; i < V; ++i) order[i] = static_cast<int32_t>(i);
  auto by_prob = [&](int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); };
  const double floor = params.min_p * static_cast<double>(probs[best]);
  int64_t k = params.top_k > 0 ? std::min<int64_t>(params.top_k, V) : std::min<int64_t>(64, V);
  for (;;) {
    std::nth_element(order.begin(), order.begin() + (k - 1), order.end(), by_prob);
    std::sort(order.begin(), order.begin() + k, by_prob);
    if (params.top_k > 0 || k == V) break;
    double mass = 0;
    for (int64_t i = 0; i < k; ++i) mass += probs[order[i]];
    bool p_ok = params.top_p < 1.0f && mass >= params.top_p;
    bool minp_ok = params.min_p > 0 && probs[order[k - 1]] < floor;
    if (p_ok || minp_ok) break;
    k = std::min<int64_t>(k * 4, V);
  }
  double total = 1.0;  // without top_k, top_p is over the whole distribution
  if (params.top_k > 0) {
    total = 0;
    for (int64_t i = 0; i < k; ++i) total += probs[order[i]];
  }
  int64_t keep = k;
  if (params.top_p < 1.0f) {
    double acc = 0;
    for (int64_t i = 0; i < k; ++i) {
      if (acc >= params.top_p * total) {
        keep = i;
        break;
      }
      acc += probs[order[i]];
    }
  }
  if (params.min_p > 0) {
    int64_t n = 1;
    while (n < keep && probs[order[n]] >= floor) ++n;
    keep = n;
  }
  double kept = 0;
  for (int64_t i = 0; i < keep; ++i) kept += probs[order[i]];
  double u = rng.uniform() * kept, acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += probs[order[i]];
    if (acc > u) return {order[i], logprob(order[i])};
  }
  return {order[keep - 1], logprob(order[keep - 1])};
}

}  // namespace rlaif
