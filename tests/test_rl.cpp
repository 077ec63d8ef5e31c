// The RL math (src/rl/) against hand-computed examples and against tests/reference/rl_ref.py, a plain-PyTorch
// implementation of the published formulas (Debian's python3-torch), on the same random batches: values and gradients
// agree to 1e-9 relative (both sides compute in float64); gradients also against finite differences.
#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>
#include "rl/softmax_rows.h"
#include "rlaif/rl.h"

#include "test_util.h"

namespace {

using nlohmann::json;
using rlaif::Algorithm;
using rlaif::ImportanceSamplingLevel;
using rlaif::KlEstimator;
using rlaif::LossType;
using rlaif::PolicyLossInputs;
using rlaif::PolicyLossOptions;
using rlaif::ScaleRewards;

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

json to_json(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat64).contiguous();
  if (c.dim() == 0) return c.item<double>();
  json out = json::array();
  for (int64_t i = 0; i < c.size(0); ++i) out.push_back(to_json(c[i]));
  return out;
}

torch::Tensor from_json(const json& j) {
  if (j.is_number()) return torch::tensor(j.get<double>(), kF64);
  std::vector<torch::Tensor> rows;
  for (const auto& x : j) rows.push_back(from_json(x));
  return torch::stack(rows);
}

json run_reference(const json& c) {
  rlaif_test::TempDir dir;
  rlaif_test::write_text(dir / "case.json", c.dump());
  auto r = rlaif_test::run_command("/usr/bin/python3 " + std::string(RLAIF_REFERENCE_DIR) + "/rl_ref.py " +
                                   (dir / "case.json"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return json::parse(r.output);
}

void expect_close(const torch::Tensor& a, const torch::Tensor& b, double rtol, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  auto err = (a - b).abs().max().item<double>();
  auto scale = std::max(1.0, b.abs().max().item<double>());
  EXPECT_LE(err, rtol * scale) << what;
}

// A random batch: N completions of up to T tokens (right-padded), logp near old (ratios around 1, some clipped).
PolicyLossInputs random_batch(int64_t N, int64_t T, uint64_t seed) {
  torch::manual_seed(seed);
  PolicyLossInputs in;
  in.old_logp = -torch::rand({N, T}, kF64) * 3 - 0.01;
  in.logp = in.old_logp + torch::randn({N, T}, kF64) * 0.3;
  in.ref_logp = in.old_logp + torch::randn({N, T}, kF64) * 0.2;
  in.sampler_logp = in.old_logp + torch::randn({N, T}, kF64) * 0.5;
  in.entropy = torch::rand({N, T}, kF64) * 2;
  in.advantages = torch::randn({N}, kF64);
  auto lengths = torch::randint(1, T + 1, {N});
  in.mask = (torch::arange(T).view({1, T}) < lengths.view({N, 1})).to(torch::kFloat64);
  return in;
}

json options_json(const PolicyLossOptions& o) {
  return {
      {"loss_type", rlaif::choice_name(o.loss_type, rlaif::kLossTypes)},
      {"importance_sampling_level", rlaif::choice_name(o.importance_sampling_level, rlaif::kImportanceSamplingLevels)},
      {"epsilon", o.epsilon},
      {"epsilon_high", o.epsilon_high},
      {"beta", o.beta},
      {"kl_estimator", rlaif::choice_name(o.kl_estimator, rlaif::kKlEstimators)},
      {"entropy_coef", o.entropy_coef},
      {"max_completion_length", o.max_completion_length},
      {"num_items", o.num_items},
      {"is_cap", o.is_cap}};
}

TEST(RlLoss, HandComputedClippedExample) {
  // One completion of 2 tokens, A = 1: token 0 has ratio e^0.5 > 1.2 (clipped, no gradient), token 1 ratio 1.
  PolicyLossInputs in;
  in.logp = torch::tensor({{0.5, 0.0}}, kF64).requires_grad_(true);
  in.old_logp = torch::zeros({1, 2}, kF64);
  in.advantages = torch::ones({1}, kF64);
  in.mask = torch::ones({1, 2}, kF64);
  PolicyLossOptions o;
  o.loss_type = LossType::kGrpo;
  auto out = rlaif::policy_loss(in, o);
  EXPECT_NEAR(out.loss.item<double>(), -(1.2 + 1.0) / 2, 1e-12);
  out.loss.backward();
  EXPECT_NEAR(in.logp.grad()[0][0].item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(in.logp.grad()[0][1].item<double>(), -0.5, 1e-12);
  EXPECT_NEAR(out.clip_high, 0.5, 1e-12);
  EXPECT_NEAR(out.clip_low, 0.0, 1e-12);
}

TEST(RlLoss, HandComputedKlEstimators) {
  auto logp = torch::tensor({{std::log(0.25)}}, kF64), ref = torch::tensor({{std::log(0.5)}}, kF64);
  const double x = std::log(2.0);  // ref - logp
  EXPECT_NEAR(rlaif::kl_estimate(logp, ref, KlEstimator::kK1).item<double>(), -x, 1e-12);
  EXPECT_NEAR(rlaif::kl_estimate(logp, ref, KlEstimator::kK2).item<double>(), x * x / 2, 1e-12);
  EXPECT_NEAR(rlaif::kl_estimate(logp, ref, KlEstimator::kK3).item<double>(), 2 - x - 1, 1e-12);
}

TEST(RlLoss, LossTypesNormaliseAsPublished) {
  // Two completions of 1 and 3 tokens, every per-token loss -A = -1 (ratio 1): the normalisations differ.
  PolicyLossInputs in;
  in.logp = torch::zeros({2, 3}, kF64);
  in.old_logp = torch::zeros({2, 3}, kF64);
  in.advantages = torch::ones({2}, kF64);
  in.mask = torch::tensor({{1.0, 0.0, 0.0}, {1.0, 1.0, 1.0}}, kF64);
  PolicyLossOptions o;
  o.max_completion_length = 8;
  o.loss_type = LossType::kGrpo;
  EXPECT_NEAR(rlaif::policy_loss(in, o).loss.item<double>(), -1.0, 1e-12);  // mean of per-sequence means
  o.loss_type = LossType::kBnpo;
  EXPECT_NEAR(rlaif::policy_loss(in, o).loss.item<double>(), -1.0, 1e-12);  // 4 tokens / 4
  o.loss_type = LossType::kDrGrpo;
  EXPECT_NEAR(rlaif::policy_loss(in, o).loss.item<double>(), -4.0 / 16, 1e-12);  // 4 / (2 * 8)
  o.loss_type = LossType::kDapo;
  o.num_items = 10;
  EXPECT_NEAR(rlaif::policy_loss(in, o).loss.item<double>(), -4.0 / 10, 1e-12);  // 4 / tokens of the whole batch
}

TEST(RlOptions, NamesParseOnceAndUnknownNamesListTheValidOnes) {
  EXPECT_EQ(rlaif::parse_choice("dr_grpo", rlaif::kLossTypes, "train.loss_type"), LossType::kDrGrpo);
  EXPECT_EQ(rlaif::choice_name(LossType::kDrGrpo, rlaif::kLossTypes), "dr_grpo");
  EXPECT_EQ(rlaif::parse_choice("reinforce_pp_baseline", rlaif::kAlgorithms, "a"),
            rlaif::Algorithm::kReinforcePpBaseline);
  rlaif_test::expect_error([] { rlaif::parse_choice("ppo", rlaif::kLossTypes, "run.toml: train.loss_type"); },
                           {"train.loss_type", "ppo", "grpo, bnpo, dr_grpo or dapo"});
  rlaif_test::expect_error([] { rlaif::parse_choice("k4", rlaif::kKlEstimators, "kl_estimator"); },
                           {"k4", "k1, k2 or k3"});
  // Every name of every table maps back to itself.
  for (const auto& c : rlaif::kAlgorithms) EXPECT_EQ(rlaif::choice_name(c.value, rlaif::kAlgorithms), c.name);
  for (const auto& c : rlaif::kScaleRewards) EXPECT_EQ(rlaif::choice_name(c.value, rlaif::kScaleRewards), c.name);
  for (const auto& c : rlaif::kImportanceSamplingLevels)
    EXPECT_EQ(rlaif::parse_choice(c.name, rlaif::kImportanceSamplingLevels, "x"), c.value);
}

TEST(RlLoss, EveryVariantMatchesPyTorchReference) {
  std::vector<std::pair<PolicyLossInputs, PolicyLossOptions>> cases;
  json batch = json::array();
  for (const auto& loss_type : rlaif::kLossTypes)
    for (const auto& level : rlaif::kImportanceSamplingLevels)
      for (const auto& est : rlaif::kKlEstimators) {
        const int n = static_cast<int>(cases.size());
        auto in = random_batch(6, 9, 1000 + n);
        PolicyLossOptions o;
        o.loss_type = loss_type.value;
        o.importance_sampling_level = level.value;
        o.epsilon = 0.2;
        o.epsilon_high = 0.28;  // clip-higher
        o.beta = n % 2 ? 0.04 : 0.0;
        o.kl_estimator = est.value;
        o.entropy_coef = n % 3 == 0 ? 0.01 : 0.0;
        o.max_completion_length = 9;
        o.num_items = n % 4 == 0 ? 70 : 0;
        o.is_cap = n % 5 == 0 ? 2.0 : 0.0;
        batch.push_back({{"kind", "loss"},
                         {"logp", to_json(in.logp)},
                         {"old_logp", to_json(in.old_logp)},
                         {"ref_logp", to_json(in.ref_logp)},
                         {"sampler_logp", to_json(in.sampler_logp)},
                         {"entropy", to_json(in.entropy)},
                         {"mask", to_json(in.mask)},
                         {"advantages", to_json(in.advantages)},
                         {"options", options_json(o)}});
        cases.emplace_back(in, o);
      }
  auto refs = run_reference(batch);
  ASSERT_EQ(refs.size(), 24u);
  for (size_t k = 0; k < cases.size(); ++k) {
    auto& [in, o] = cases[k];
    const auto& ref = refs[k];
    in.logp.requires_grad_(true);
    auto out = rlaif::policy_loss(in, o);
    out.loss.backward();
    std::string what = options_json(o).dump();
    const double want = ref["loss"].get<double>();
    EXPECT_NEAR(out.loss.item<double>(), want, 1e-9 * std::max(1.0, std::abs(want))) << what;
    expect_close(in.logp.grad(), from_json(ref["grad"]), 1e-9, what + " grad");
    EXPECT_NEAR(out.kl, ref["kl"].get<double>(), 1e-9) << what;
    EXPECT_NEAR(out.clip_low, ref["clip_low"].get<double>(), 1e-12) << what;
    EXPECT_NEAR(out.clip_high, ref["clip_high"].get<double>(), 1e-12) << what;
    EXPECT_NEAR(out.clip_region, ref["clip_region"].get<double>(), 1e-12) << what;
  }
}

TEST(RlLoss, GradientMatchesFiniteDifferences) {
  auto in = random_batch(3, 5, 7);
  PolicyLossOptions o;
  o.loss_type = LossType::kGrpo;
  o.importance_sampling_level = ImportanceSamplingLevel::kSequence;
  o.beta = 0.1;
  o.epsilon_high = 10;  // keep every ratio inside the clip range, where the loss is smooth
  o.epsilon = 0.99;
  in.logp.requires_grad_(true);
  rlaif::policy_loss(in, o).loss.backward();
  auto grad = in.logp.grad().clone();
  const double h = 1e-6;
  torch::NoGradGuard ng;
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t t = 0; t < 5; ++t) {
      auto p = in;
      p.logp = in.logp.detach().clone();
      p.logp[i][t] += h;
      auto up = rlaif::policy_loss(p, o).loss.item<double>();
      p.logp[i][t] -= 2 * h;
      auto down = rlaif::policy_loss(p, o).loss.item<double>();
      EXPECT_NEAR(grad[i][t].item<double>(), (up - down) / (2 * h), 1e-7) << i << "," << t;
    }
}

TEST(RlAdvantages, HandComputedGroup) {
  auto r = torch::tensor({{1.0, 0.0, 0.5}}, kF64);
  auto v = torch::tensor({{true, true, false}});
  auto a = rlaif::compute_advantages(r, v, Algorithm::kGrpo, ScaleRewards::kGroup);
  const double std = std::sqrt(0.5);  // unbiased std of {1, 0}
  EXPECT_NEAR(a[0][0].item<double>(), 0.5 / (std + 1e-4), 1e-12);
  EXPECT_NEAR(a[0][1].item<double>(), -0.5 / (std + 1e-4), 1e-12);
  EXPECT_EQ(a[0][2].item<double>(), 0.0);  // a failed judgment gets no advantage
  auto rloo = rlaif::compute_advantages(torch::tensor({{3.0, 1.0, 2.0}}, kF64), torch::ones({1, 3}, torch::kBool),
                                        Algorithm::kRloo);
  EXPECT_NEAR(rloo[0][0].item<double>(), 3.0 - 1.5, 1e-12);
  EXPECT_NEAR(rloo[0][1].item<double>(), 1.0 - 2.5, 1e-12);
  rlaif_test::expect_error([&] { rlaif::compute_advantages(r, v, Algorithm::kOnlineDpo); },
                           {"online_dpo", "grpo, rloo"});
}

TEST(RlAdvantages, EveryEstimatorMatchesPyTorchReference) {
  torch::manual_seed(3);
  auto r = torch::rand({4, 5}, kF64);
  auto v = torch::rand({4, 5}) > 0.2;
  v[0] = torch::ones({5}, torch::kBool);
  v[1][0] = true;
  v[1][1] = true;
  std::vector<std::pair<std::string, std::string>> cases = {
      {"grpo", "group"}, {"grpo", "batch"},         {"grpo", "none"},
      {"rloo", "group"}, {"reinforce_pp", "group"}, {"reinforce_pp_baseline", "group"}};
  json vj = json::array();
  for (int64_t b = 0; b < 4; ++b) {
    json row = json::array();
    for (int64_t g = 0; g < 5; ++g) row.push_back(v[b][g].item<bool>());
    vj.push_back(row);
  }
  json batch = json::array();
  for (const auto& [est, scale] : cases)
    batch.push_back(
        {{"kind", "advantages"}, {"rewards", to_json(r)}, {"valid", vj}, {"estimator", est}, {"scale_rewards", scale}});
  auto refs = run_reference(batch);
  for (size_t k = 0; k < cases.size(); ++k) {
    const auto& [est, scale] = cases[k];
    expect_close(rlaif::compute_advantages(r, v, rlaif::parse_choice(est, rlaif::kAlgorithms, "estimator"),
                                           rlaif::parse_choice(scale, rlaif::kScaleRewards, "scale_rewards")),
                 from_json(refs[k]["advantages"]), 1e-9, est + "/" + scale);
  }
}

TEST(RlDpo, MatchesPyTorchReference) {
  torch::manual_seed(5);
  auto w = torch::randn({7}, kF64) * 5, l = torch::randn({7}, kF64) * 5;
  auto rw = torch::randn({7}, kF64) * 5, rl = torch::randn({7}, kF64) * 5;
  auto ref = run_reference({{"kind", "dpo"},
                            {"logp_w", to_json(w)},
                            {"logp_l", to_json(l)},
                            {"ref_w", to_json(rw)},
                            {"ref_l", to_json(rl)},
                            {"beta", 0.1}});
  w.requires_grad_(true);
  l.requires_grad_(true);
  auto loss = rlaif::online_dpo_loss(w, l, rw, rl, 0.1);
  loss.backward();
  EXPECT_NEAR(loss.item<double>(), ref["loss"].get<double>(), 1e-12);
  expect_close(w.grad(), from_json(ref["grad_w"]), 1e-9, "grad_w");
  expect_close(l.grad(), from_json(ref["grad_l"]), 1e-9, "grad_l");
}

TEST(RlTokenLogprobs, MatchFullLogSoftmaxAndEntropy) {
  torch::manual_seed(9);
  auto logits = torch::randn({2, 3, 11}) * 4;  // fp32, as the model gives
  auto targets = torch::randint(0, 11, {2, 3});
  auto ref = run_reference(
      {{"kind", "logprobs"}, {"logits", to_json(logits)}, {"targets", to_json(targets)}, {"temperature", 0.7}});
  torch::Tensor entropy;
  auto logp = rlaif::token_logprobs(logits, targets, 0.7, &entropy);
  expect_close(logp.to(torch::kFloat64), from_json(ref["logp"]), 1e-5, "logp (fp32 vs fp64)");
  expect_close(entropy.to(torch::kFloat64), from_json(ref["entropy"]), 1e-5, "entropy (fp32 vs fp64)");
}

// The chunked head (logits recomputed in backward, never stored) against the full-logits path with libtorch's
// autograd: values and gradients for hidden states and weight, through log-probs and entropy, over several chunks.
// fp32 on both sides: tolerance 1e-4 relative.
TEST(RlTokenLogprobs, ChunkedHeadMatchesFullLogitsWithGradients) {
  torch::manual_seed(21);
  auto h = torch::randn({3, 7, 16}).requires_grad_(true);
  auto w = (torch::randn({50, 16}) * 0.5).requires_grad_(true);
  auto targets = torch::randint(0, 50, {3, 7});
  auto a = torch::randn({3, 7}), b = torch::randn({3, 7});
  for (bool portable : {false, true}) {  // the AVX-512 row kernels and the plain C++ ones
    const bool was = rlaif::softmax_rows_force_portable(portable);
    for (double temperature : {1.0, 0.7}) {
      torch::Tensor ent_ref, ent;
      auto ref = rlaif::token_logprobs(torch::matmul(h, w.t()), targets, temperature, &ent_ref);
      auto loss_ref = (ref * a).sum() + (ent_ref * b).sum();
      auto g_ref = torch::autograd::grad({loss_ref}, {h, w});
      auto got = rlaif::linear_token_logprobs(h, w, targets, temperature, false, &ent, /*chunk_rows=*/4);
      auto loss = (got * a).sum() + (ent * b).sum();
      auto g = torch::autograd::grad({loss}, {h, w});
      expect_close(got, ref, 1e-4, "logp");
      expect_close(ent, ent_ref, 1e-4, "entropy");
      expect_close(g[0], g_ref[0], 1e-4, "d/dh");
      expect_close(g[1], g_ref[1], 1e-4, "d/dW");
      // Log-probs alone (the entropy unused, as when it is only a metric): no entropy term in the gradient.
      auto g_only =
          torch::autograd::grad({(rlaif::linear_token_logprobs(h, w, targets, temperature, false) * a).sum()}, {h, w});
      auto g_only_ref = torch::autograd::grad(
          {(rlaif::token_logprobs(torch::matmul(h, w.t()), targets, temperature) * a).sum()}, {h, w});
      expect_close(g_only[0], g_only_ref[0], 1e-4, "d/dh, log-probs only");
      // One chunk keeps its logits and overwrites them in backward: a retained graph's second backward recomputes.
      auto kept_loss = (rlaif::linear_token_logprobs(h, w, targets, temperature, false) * a).sum();
      auto first = torch::autograd::grad({kept_loss}, {h, w}, {}, /*retain_graph=*/true);
      auto second = torch::autograd::grad({kept_loss}, {h, w});
      expect_close(second[0], first[0], 1e-6, "second backward d/dh");
      expect_close(second[1], g_only_ref[1], 1e-4, "second backward d/dW");
      expect_close(g_only[1], g_only_ref[1], 1e-4, "d/dW, log-probs only");
    }
    // bf16 head: close to fp32 (bf16 keeps ~3 significant digits), gradients included.
    torch::Tensor ent16, ent32;
    auto got16 = rlaif::linear_token_logprobs(h, w, targets, 1.0, true, &ent16);
    auto ref32 = rlaif::token_logprobs(torch::matmul(h, w.t()), targets, 1.0, &ent32);
    expect_close(got16, ref32, 0.05, "bf16 logp");
    expect_close(ent16, ent32, 0.05, "bf16 entropy");
    auto g16 = torch::autograd::grad({(got16 * a).sum() + (ent16 * b).sum()}, {h, w});
    auto g32 = torch::autograd::grad({(ref32 * a).sum() + (ent32 * b).sum()}, {h, w});
    expect_close(g16[0], g32[0], 0.05, "bf16 d/dh");
    expect_close(g16[1], g32[1], 0.05, "bf16 d/dW");
    rlaif::softmax_rows_force_portable(was);
  }
}

}  // namespace
