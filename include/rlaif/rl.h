// The reinforcement-learning math: advantages, KL estimators and the policy losses. Pure tensor functions with no I/O,
// checked against hand-computed examples and a plain PyTorch implementation (tests/reference/rl_ref.py).
// The exact objectives open src/rl/losses.cpp (losses, KL, online DPO) and src/rl/advantages.cpp (advantages).
#pragma once

#include <string>

#include <torch/torch.h>

#include "rlaif/rl_options.h"

namespace rlaif {

// rewards [B, G], valid [B, G] bool (false = judgment failed: no advantage, left out of every statistic).
// Returns advantages [B, G] (0 where !valid). scale_rewards applies to grpo only. Throws rlaif::Error for online_dpo
// (it has preferences, not advantages).
torch::Tensor compute_advantages(const torch::Tensor& rewards, const torch::Tensor& valid, Algorithm estimator,
                                 ScaleRewards scale_rewards = ScaleRewards::kGroup);

// Per-token KL estimate [N, T] from logp and ref [N, T].
torch::Tensor kl_estimate(const torch::Tensor& logp, const torch::Tensor& ref, KlEstimator estimator);

struct PolicyLossOptions {
  LossType loss_type = LossType::kDapo;
  ImportanceSamplingLevel importance_sampling_level = ImportanceSamplingLevel::kToken;
  double epsilon = 0.2, epsilon_high = 0.2;
  double beta = 0;  // KL coefficient in the loss (0 = no KL term)
  KlEstimator kl_estimator = KlEstimator::kK3;
  double entropy_coef = 0;
  int64_t max_completion_length = 0;  // dr_grpo's constant
  double num_items = 0;               // dapo: completion tokens in the whole accumulated batch (0 = this batch's)
  double is_cap = 0;                  // > 0: truncated importance-sampling correction with this cap
};

struct PolicyLossInputs {
  torch::Tensor logp;          // [N, T] under the current policy (with grad)
  torch::Tensor old_logp;      // [N, T] under the sampling policy / previous iterate (no grad)
  torch::Tensor ref_logp;      // [N, T] under the reference (undefined when beta = 0)
  torch::Tensor sampler_logp;  // [N, T] as reported by the generator (only with is_cap > 0)
  torch::Tensor entropy;       // [N, T] per-token entropy (only with entropy_coef != 0)
  torch::Tensor advantages;    // [N]
  torch::Tensor mask;          // [N, T] float, 1 on completion tokens
};

struct PolicyLossOutput {
  torch::Tensor loss;  // scalar, differentiable
  // Statistics over the masked tokens (detached scalars, as doubles):
  double kl = 0, entropy = 0, clip_low = 0, clip_high = 0, clip_region = 0, tokens = 0;
};

PolicyLossOutput policy_loss(const PolicyLossInputs& in, const PolicyLossOptions& options);

// The weight of one micro-batch's policy_loss (n of the step's N completions, M micro-batches) so that the weighted
// sum over the micro-batches is the loss of the whole batch (src/rl/losses.cpp).
double micro_batch_weight(LossType loss_type, int64_t n, int64_t N, int64_t M);

// Online DPO: logp_w, logp_l, ref_w, ref_l [P] (summed completion log-probs of the preferred and rejected
// completion of each pair). Returns the mean loss over pairs.
torch::Tensor online_dpo_loss(const torch::Tensor& logp_w, const torch::Tensor& logp_l, const torch::Tensor& ref_w,
                              const torch::Tensor& ref_l, double beta);

// log softmax(logits / temperature)[target] without a full [N, T, V] log-softmax: logits [N, T, V], targets [N, T].
// Returns [N, T]. With `entropy` non-null, also the per-token entropy of softmax(logits / temperature) [N, T].
torch::Tensor token_logprobs(const torch::Tensor& logits, const torch::Tensor& targets, double temperature = 1,
                             torch::Tensor* entropy = nullptr);

// The same from hidden states [..., C] and the output head's weight [V, C] (targets [...]): logits are computed a chunk
// of rows at a time and recomputed in the backward pass, never stored whole (memory O(chunk_rows x V); chunk_rows 0 =
// about 64 MiB of logits). bf16: the head matmuls in bfloat16 (fp32 softmax and accumulation of the gradients).
// Differentiable in hidden and weight (and through the entropy when it is used in a loss).
torch::Tensor linear_token_logprobs(const torch::Tensor& hidden, const torch::Tensor& weight,
                                    const torch::Tensor& targets, double temperature = 1, bool bf16 = false,
                                    torch::Tensor* entropy = nullptr, int64_t chunk_rows = 0);

}  // namespace rlaif
