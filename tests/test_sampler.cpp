// Sampling: each filter's support and frequencies against the formulas, log-probabilities against log_softmax.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "rlaif/sampler.h"
#include <torch/torch.h>

#include "test_util.h"

namespace {

std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

std::vector<double> frequencies(const std::vector<float>& logits, const rlaif::SamplingParams& p, int draws,
                                uint64_t seed = 1) {
  rlaif::SampleRng rng(seed);
  rlaif::SamplerScratch scratch;
  std::vector<double> f(logits.size(), 0);
  for (int i = 0; i < draws; ++i)
    f[rlaif::sample_token(logits.data(), logits.size(), p, rng, scratch).token] += 1.0 / draws;
  return f;
}

// With 40000 draws the standard error of a frequency is <= 0.0025; 0.012 is ~5 sigma.
constexpr double kFreqTol = 0.012;
constexpr int kDraws = 40000;

}  // namespace

TEST(Sampler, GreedyIsArgmaxWithLogSoftmaxLogprob) {
  std::vector<float> l = {0.1f, 2.0f, -1.0f, 1.9f};
  rlaif::SamplingParams p;
  p.temperature = 0;
  rlaif::SampleRng rng(0);
  rlaif::SamplerScratch s;
  auto t = rlaif::sample_token(l.data(), 4, p, rng, s);
  EXPECT_EQ(t.token, 1);
  double lse = std::log(std::exp(0.1) + std::exp(2.0) + std::exp(-1.0) + std::exp(1.9));
  EXPECT_NEAR(t.logprob, 2.0 - lse, 1e-6);
}

TEST(Sampler, TemperatureFrequenciesAndLogprob) {
  auto l = logits_of({0.5, 0.3, 0.15, 0.05});
  rlaif::SamplingParams p;
  p.temperature = 0.5f;  // probabilities become p^2 / sum p^2
  double z = 0.25 + 0.09 + 0.0225 + 0.0025;
  auto f = frequencies(l, p, kDraws);
  const double want[4] = {0.25 / z, 0.09 / z, 0.0225 / z, 0.0025 / z};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(f[i], want[i], kFreqTol) << i;
  rlaif::SampleRng rng(3);
  rlaif::SamplerScratch s;
  auto t = rlaif::sample_token(l.data(), 4, p, rng, s);
  EXPECT_NEAR(t.logprob, std::log(want[t.token]), 1e-5);
}

TEST(Sampler, TopKKeepsTheKMostLikely) {
  auto l = logits_of({0.4, 0.1, 0.3, 0.15, 0.05});
  rlaif::SamplingParams p;
  p.top_k = 2;
  auto f = frequencies(l, p, kDraws);
  EXPECT_NEAR(f[0], 0.4 / 0.7, kFreqTol);
  EXPECT_NEAR(f[2], 0.3 / 0.7, kFreqTol);
  EXPECT_EQ(f[1] + f[3] + f[4], 0.0);
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingP) {
  auto l = logits_of({0.5, 0.3, 0.15, 0.05});
  rlaif::SamplingParams p;
  p.top_p = 0.75f;  // 0.5 < 0.75 <= 0.8: tokens 0 and 1
  auto f = frequencies(l, p, kDraws);
  EXPECT_NEAR(f[0], 0.625, kFreqTol);
  EXPECT_NEAR(f[1], 0.375, kFreqTol);
  EXPECT_EQ(f[2] + f[3], 0.0);
}

TEST(Sampler, TopPAfterTopKRenormalises) {
  auto l = logits_of({0.5, 0.3, 0.15, 0.05});
  rlaif::SamplingParams p;
  p.top_k = 3;      // 0.5, 0.3, 0.15 renormalised: 0.526, 0.316, 0.158
  p.top_p = 0.85f;  // 0.526 + 0.316 = 0.842 < 0.85: all three kept
  auto f = frequencies(l, p, kDraws);
  EXPECT_GT(f[2], 0.1);
  EXPECT_EQ(f[3], 0.0);
}

TEST(Sampler, MinPDropsTokensBelowAFractionOfTheTop) {
  auto l = logits_of({0.5, 0.3, 0.15, 0.05});
  rlaif::SamplingParams p;
  p.min_p = 0.2f;  // keep p >= 0.1: tokens 0, 1, 2
  auto f = frequencies(l, p, kDraws);
  EXPECT_NEAR(f[0], 0.5 / 0.95, kFreqTol);
  EXPECT_NEAR(f[2], 0.15 / 0.95, kFreqTol);
  EXPECT_EQ(f[3], 0.0);
}

TEST(Sampler, TopPOnALargeVocabularyMatchesAFullSort) {
  // 5000 tokens with a long tail: the candidate set has to grow past its first guess of 64.
  torch::manual_seed(2);
  auto t = torch::randn({5000}) * 0.5;
  std::vector<float> l(t.data_ptr<float>(), t.data_ptr<float>() + 5000);
  std::vector<int> order(5000);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return l[a] > l[b]; });
  double z = 0;
  for (float x : l) z += std::exp(x);
  std::set<int> want;
  double acc = 0;
  for (int i : order) {
    if (acc >= 0.5 * z) break;
    want.insert(i);
    acc += std::exp(l[i]);
  }
  ASSERT_GT(want.size(), 64u);
  rlaif::SamplingParams p;
  p.top_p = 0.5f;
  rlaif::SampleRng rng(9);
  rlaif::SamplerScratch s;
  std::set<int> seen;
  for (int i = 0; i < 20000; ++i) seen.insert(rlaif::sample_token(l.data(), 5000, p, rng, s).token);
  for (int x : seen) EXPECT_TRUE(want.count(x)) << "token " << x << " is outside the nucleus";
  EXPECT_GT(seen.size(), want.size() * 8 / 10);
}

TEST(Sampler, SameSeedSameDrawsAndSampleSeedsDiffer) {
  auto l = logits_of({0.25, 0.25, 0.25, 0.25});
  rlaif::SamplingParams p;
  rlaif::SampleRng a(42), b(42);
  rlaif::SamplerScratch s;
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(rlaif::sample_token(l.data(), 4, p, a, s).token, rlaif::sample_token(l.data(), 4, p, b, s).token);
  EXPECT_NE(rlaif::sample_seed(1, 0), rlaif::sample_seed(1, 1));
  EXPECT_NE(rlaif::sample_seed(1, 0), rlaif::sample_seed(2, 0));
}

TEST(Sampler, NanLogitsAndBadParametersAreErrors) {
  std::vector<float> l = {NAN, 1.0f};
  rlaif::SamplingParams p;
  rlaif::SampleRng rng(0);
  rlaif::SamplerScratch s;
  rlaif_test::expect_error([&] { rlaif::sample_token(l.data(), 2, p, rng, s); }, {"NaN"});
  p.top_p = 0;
  rlaif_test::expect_error([&] { rlaif::validate(p); }, {"top_p"});
  p = {};
  p.temperature = -1;
  rlaif_test::expect_error([&] { rlaif::validate(p); }, {"temperature"});
}
