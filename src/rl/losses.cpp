// Policy losses, KL estimators and token log-probabilities. The objectives, exactly as computed below:
//
// Notation: N completions (B prompts x G samples), T completion tokens (right-padded), mask [N, T] 1 on real tokens.
// logp = log pi_theta(o_t | q, o_<t), old = log pi_old (the policy that sampled, or the previous iterate when
// num_iterations > 1), ref = log pi_ref (the frozen reference). A_i is the advantage of completion i.
//
// KL estimators of KL(pi_theta || pi_ref) per token, with x = ref - logp (Schulman, "Approximating KL divergence"):
//   k1 = -x        k2 = x^2 / 2        k3 = exp(x) - x - 1
//
// Clipped surrogate (PPO / GRPO), per token, with ratio w:
//   token level:     w_{i,t} = exp(logp_{i,t} - old_{i,t})
//   sequence level:  w_{i,t} = exp( sum_t mask (logp - old) / |o_i| )                       (GSPO, Zheng et al. 2025)
//   l_{i,t} = -min(w A_i, clip(w, 1 - epsilon, 1 + epsilon_high) A_i) + beta k_{i,t} - entropy_coef H_{i,t}
//   and, with a truncated importance-sampling correction (sampler and trainer numerics differ),
//   l_{i,t} *= min(exp(old_{i,t} - sampler_{i,t}), is_cap)                               (Yao et al. 2025, TIS)
// Normalisation by loss_type (sums are over mask):
//   grpo     L = 1/N sum_i ( 1/|o_i| sum_t l_{i,t} )                                       (Shao et al. 2024)
//   bnpo     L = sum_{i,t} l / sum_{i,t} mask                      (tokens of this micro-batch)
//   dr_grpo  L = sum_{i,t} l / (N * max_completion_length)                                 (Liu et al. 2025, Dr. GRPO)
//   dapo     L = sum_{i,t} l / num_items  (tokens of the whole accumulated batch)         (Yu et al. 2025, DAPO)
// A step's N completions are split into M micro-batches (n of them in one); each micro-batch's L is weighted so that
// the weighted sum over the micro-batches is the loss of the whole batch:
//   grpo, dr_grpo  w = n / N        bnpo  w = 1 / M  (the mean of the micro-batches' token means, as TRL)
//   dapo           w = 1            (already divided by the tokens of the whole batch)
//
// Online DPO from pairwise judge preferences (Guo et al. 2024), per pair with summed completion log-probs:
//   L = -log sigmoid( beta * ((logp_w - ref_w) - (logp_l - ref_l)) )
#include "rlaif/error.h"
#include "rlaif/rl.h"

namespace rlaif {

torch::Tensor kl_estimate(const torch::Tensor& logp, const torch::Tensor& ref, KlEstimator estimator) {
  auto x = ref - logp;  // log(pi_ref / pi_theta) per token
  switch (estimator) {
    case KlEstimator::kK1:
      return -x;
    case KlEstimator::kK2:
      return 0.5 * x * x;
    case KlEstimator::kK3:
      return torch::exp(x) - x - 1;
  }
  throw Error("internal: unknown KL estimator");
}

namespace {

double masked_mean(const torch::Tensor& x, const torch::Tensor& mask, double tokens) {
  return tokens > 0 ? (x.detach() * mask).sum().item<double>() / tokens : 0.0;
}

}  // namespace

PolicyLossOutput policy_loss(const PolicyLossInputs& in, const PolicyLossOptions& o) {
  const auto& mask = in.mask;  // [N, T]
  const int64_t N = mask.size(0);
  auto log_ratio = in.logp - in.old_logp;  // [N, T]
  torch::Tensor log_w;
  if (o.importance_sampling_level == ImportanceSamplingLevel::kToken)
    log_w = log_ratio;
  else
    log_w = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp_min(1)).unsqueeze(-1);  // [N, 1]
  auto w = torch::exp(log_w);                                                        // [N, T] or [N, 1]
  auto w_clipped = torch::clamp(w, 1 - o.epsilon, 1 + o.epsilon_high);
  auto adv = in.advantages.view({N, 1});
  auto per_token = -torch::min(w * adv, w_clipped * adv);  // [N, T]
  if (per_token.size(1) != mask.size(1)) per_token = per_token.expand_as(mask);

  PolicyLossOutput out;
  out.tokens = mask.sum().item<double>();
  if (o.beta != 0) {
    auto kl = kl_estimate(in.logp, in.ref_logp, o.kl_estimator);
    per_token = per_token + o.beta * kl;
    out.kl = masked_mean(kl, mask, out.tokens);
  } else if (in.ref_logp.defined()) {
    out.kl = masked_mean(kl_estimate(in.logp, in.ref_logp, o.kl_estimator), mask, out.tokens);
  }
  if (in.entropy.defined()) {
    if (o.entropy_coef != 0) per_token = per_token - o.entropy_coef * in.entropy;
    out.entropy = masked_mean(in.entropy, mask, out.tokens);
  }
  if (o.is_cap > 0) {
    auto is_w = torch::exp(in.old_logp - in.sampler_logp).clamp_max(o.is_cap).detach();
    per_token = per_token * is_w;
  }

  auto masked = per_token * mask;
  switch (o.loss_type) {
    case LossType::kGrpo:
      out.loss = (masked.sum(-1) / mask.sum(-1).clamp_min(1)).mean();
      break;
    case LossType::kBnpo:
      out.loss = masked.sum() / mask.sum().clamp_min(1);
      break;
    case LossType::kDrGrpo:
      TORCH_CHECK(o.max_completion_length > 0, "dr_grpo needs max_completion_length");
      out.loss = masked.sum() / static_cast<double>(N * o.max_completion_length);
      break;
    case LossType::kDapo:
      out.loss = masked.sum() / (o.num_items > 0 ? o.num_items : std::max(out.tokens, 1.0));
      break;
  }

  auto wd = w.detach().expand_as(mask);
  auto a = adv.detach().expand_as(mask);
  auto low = ((wd < 1 - o.epsilon) & (a < 0)).to(mask.scalar_type());
  auto high = ((wd > 1 + o.epsilon_high) & (a > 0)).to(mask.scalar_type());
  out.clip_low = masked_mean(low, mask, out.tokens);
  out.clip_high = masked_mean(high, mask, out.tokens);
  out.clip_region = masked_mean((low + high).clamp_max(1), mask, out.tokens);
  return out;
}

double micro_batch_weight(LossType loss_type, int64_t n, int64_t N, int64_t M) {
  switch (loss_type) {
    case LossType::kGrpo:
    case LossType::kDrGrpo:
      return double(n) / N;
    case LossType::kBnpo:
      return 1.0 / M;
    case LossType::kDapo:
      return 1.0;
  }
  throw Error("internal: unknown loss_type");
}

torch::Tensor online_dpo_loss(const torch::Tensor& logp_w, const torch::Tensor& logp_l, const torch::Tensor& ref_w,
                              const torch::Tensor& ref_l, double beta) {
  auto margin = (logp_w - ref_w) - (logp_l - ref_l);  // [P]
  return -torch::log_sigmoid(beta * margin).mean();
}

torch::Tensor token_logprobs(const torch::Tensor& logits, const torch::Tensor& targets, double temperature,
                             torch::Tensor* entropy) {
  auto z = logits.to(torch::kFloat32);
  if (temperature != 1) z = z / temperature;                          // [N, T, V]
  auto lse = torch::logsumexp(z, -1);                                 // [N, T]
  auto picked = z.gather(-1, targets.unsqueeze(-1)).squeeze(-1);      // [N, T]
  if (entropy) *entropy = lse - (torch::softmax(z, -1) * z).sum(-1);  // H = lse - E_p[z]
  return picked - lse;
}

}  // namespace rlaif
