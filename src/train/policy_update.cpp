// Steps 3-5 of `rlaif train` for the policy-gradient family (GRPO, Dr. GRPO, DAPO, GSPO, RLOO, REINFORCE++):
//   3. the valid completions in micro-batches, with the log-probs the loss needs beyond the current policy's: old
//      (num_iterations > 1, or kl_in_reward) and reference (beta > 0), without gradient, on the training numerics
//   4. (in run()) KL in the reward when asked, then the advantages
//   5. num_iterations x micro-batches: loss (src/rl/losses.cpp) -> backward; clip; AdamW step
// Data parallel: each rank holds its own groups. What spans the step is summed over the ranks first — completions N,
// micro-batches M and tokens (the loss normalisations), the rewards for batch statistics — so that each rank's loss
// is its part of the step's loss, and the gradients are summed before clipping.
#include "rlaif/rewards.h"
#include "rlaif/rl.h"
#include "train/rl_trainer.h"

namespace rlaif {

torch::Tensor RlTrainer::reference_logprobs(const SequenceBatch& b) {
  torch::NoGradGuard no_grad;
  if (ref_) return completion_logprobs(ref_, b, c_.temperature, nullptr, bf16_);
  model_->set_lora_enabled(false);  // LoRA: the base model is the reference
  auto out = completion_logprobs(model_, b, c_.temperature, nullptr, bf16_);
  model_->set_lora_enabled(true);
  return out;
}

PolicyMicroBatches RlTrainer::prepare_micro_batches(const RolloutBatch& rb) {
  PolicyMicroBatches mb;
  mb.items = rb.valid_items();
  const int64_t N = static_cast<int64_t>(mb.items.size()), n_max = c_.per_device_train_batch_size;
  for (int64_t s = 0; s < N; s += n_max) {
    const int64_t e = std::min(N, s + n_max);
    std::vector<const Sample*> picked;
    std::vector<const std::vector<int64_t>*> prompts, completions;
    std::vector<const std::vector<uint8_t>*> masks;
    for (int64_t k = s; k < e; ++k) {
      const auto [g, i] = mb.items[k];
      picked.push_back(&rb.samples[g][i]);
      prompts.push_back(rb.prompt_ids.empty() ? &rows_[rb.rows[g]].prompt_ids : &rb.prompt_ids[g][i]);
      completions.push_back(&picked.back()->token_ids);
      if (!rb.policy_mask.empty()) masks.push_back(&rb.policy_mask[g][i]);
    }
    auto b = make_sequence_batch(prompts, completions, pad_id_);
    auto sampler = torch::zeros_like(b.completion_mask);  // [n, T]
    auto sampler_a = sampler.accessor<float, 2>();
    if (!masks.empty()) apply_policy_masks(b, masks);  // episodes: observations out of the loss and the KL
    for (size_t j = 0; j < picked.size(); ++j) {
      const auto& lp = picked[j]->logprobs;
      for (size_t t = 0; t < lp.size(); ++t) sampler_a[j][t] = lp[t];
      if (c_.mask_truncated_completions && picked[j]->finish_reason == FinishReason::kLength)
        b.completion_mask[j].zero_();
    }
    mb.batches.push_back(std::move(b));
    mb.sampler_lp.push_back(sampler);
  }
  const bool need_old = c_.num_iterations > 1 || c_.kl_in_reward;
  mb.old_lp.resize(mb.batches.size());
  mb.ref_lp.resize(mb.batches.size());
  for (size_t k = 0; k < mb.batches.size(); ++k) {
    if (need_old) {
      torch::NoGradGuard no_grad;
      mb.old_lp[k] = completion_logprobs(model_, mb.batches[k], c_.temperature, nullptr, bf16_);
    }
    if (c_.beta > 0) mb.ref_lp[k] = reference_logprobs(mb.batches[k]);
  }
  for (const auto& b : mb.batches) mb.tokens += b.completion_mask.sum().item<double>();
  return mb;
}

// KL in the reward (REINFORCE++ style): each completion's summed KL estimate between the sampling policy and the
// reference comes off its reward (src/rl/rewards.cpp).
void RlTrainer::add_kl_to_rewards(RolloutBatch& rb, const PolicyMicroBatches& mb) const {
  if (rb.empty()) return;  // data parallel: this rank kept no group this step
  std::vector<torch::Tensor> per_batch;
  for (size_t k = 0; k < mb.batches.size(); ++k)
    per_batch.push_back(
        (kl_estimate(mb.old_lp[k], mb.ref_lp[k], c_.kl_estimator) * mb.batches[k].completion_mask).sum(-1));
  auto kl = torch::zeros(rb.valid.sizes(), torch::kFloat32);                    // [B, G]
  if (!per_batch.empty()) kl.masked_scatter_(rb.valid, torch::cat(per_batch));  // [N] into the valid places
  rb.rewards = kl_in_reward(rb.rewards, kl, c_.beta);
}

torch::Tensor RlTrainer::advantages(const RolloutBatch& b) {
  if (dist_->world_size() == 1) return compute_advantages(b.rewards, b.valid, c_.algorithm, c_.scale_rewards);
  const int64_t G = c_.num_generations;
  auto rewards = b.empty() ? torch::zeros({0, G}, torch::kFloat64) : b.rewards;  // [B, G]
  auto valid = b.empty() ? torch::zeros({0, G}, torch::kBool) : b.valid;
  auto all = compute_advantages(gather_rows(*dist_, rewards), gather_rows(*dist_, valid), c_.algorithm,
                                c_.scale_rewards);  // [sum_r B_r, G]
  const auto groups = dist_->all_gather(b.groups());
  int64_t first = 0;
  for (int r = 0; r < dist_->rank(); ++r) first += groups[r];
  return all.narrow(0, first, b.groups()).clone();  // [B, G]
}

void RlTrainer::update_policy(const RolloutBatch& rb, const PolicyMicroBatches& mb, int64_t step, nlohmann::json& m) {
  const auto job = dist_->sum({double(mb.items.size()), double(mb.batches.size()), mb.tokens});  // the whole step's
  const int64_t N = static_cast<int64_t>(job[0]), M = static_cast<int64_t>(job[1]);
  const double tokens = job[2];
  const bool has_old = !mb.old_lp.empty() && mb.old_lp[0].defined();
  // [N here], group-major as mb.items
  auto advantages = rb.empty() ? torch::zeros({0}) : rb.advantages.masked_select(rb.valid).to(torch::kFloat32);
  PolicyLossOptions lo;
  lo.loss_type = c_.loss_type;
  lo.importance_sampling_level = c_.importance_sampling_level;
  lo.epsilon = c_.epsilon;
  lo.epsilon_high = c_.clip_high();
  lo.beta = c_.kl_in_reward ? 0.0 : c_.beta;
  lo.kl_estimator = c_.kl_estimator;
  lo.entropy_coef = c_.entropy_coef;
  lo.max_completion_length = c_.max_completion_length;
  lo.is_cap = c_.importance_sampling_correction ? c_.importance_sampling_cap : 0.0;
  lo.num_items = std::max(1.0, tokens);
  double loss_sum = 0, kl_sum = 0, ent_sum = 0, clip_low = 0, clip_high = 0, clip_region = 0, gap_sum = 0,
         grad_norm = 0, grad_sync_wait = 0, backward_s = 0;
  const double lr = scheduled_lr(c_, step, total_steps_);
  set_lr(*opt_, lr);
  model_->train();
  const int64_t M_here = static_cast<int64_t>(mb.batches.size());
  for (int64_t iter = 0; iter < c_.num_iterations; ++iter) {
    for (int64_t k = 0, first = 0; k < M_here; first += mb.batches[k].input_ids.size(0), ++k) {
      const auto& b = mb.batches[k];
      const int64_t n = b.input_ids.size(0);
      const auto t0 = Clock::now();
      torch::Tensor entropy;
      auto logp = completion_logprobs(model_, b, c_.temperature, &entropy, bf16_);  // [n, T], with grad
      PolicyLossInputs in;
      in.logp = logp;
      in.old_logp = has_old ? mb.old_lp[k] : logp.detach();
      in.ref_logp = mb.ref_lp[k];
      in.sampler_logp = mb.sampler_lp[k];
      in.entropy = c_.entropy_coef != 0 ? entropy : entropy.detach();
      in.advantages = advantages.slice(0, first, first + n);  // [n]
      in.mask = b.completion_mask;
      auto out = policy_loss(in, lo);
      const double w = micro_batch_weight(c_.loss_type, n, N, M);
      if (k + 1 == M_here) replicas_->arm();  // the step's last backward: sum gradients across ranks as they finish
      (out.loss * w).backward();
      backward_s += seconds_since(t0);
      const double share = out.tokens / std::max(1.0, tokens) / c_.num_iterations;
      loss_sum += out.loss.item<double>() * w / c_.num_iterations;
      kl_sum += out.kl * share;
      ent_sum += out.entropy * share;
      clip_low += out.clip_low * share;
      clip_high += out.clip_high * share;
      clip_region += out.clip_region * share;
      if (iter == 0)  // sampler vs trainer numerics, on the policy that sampled
        gap_sum += ((logp.detach() - mb.sampler_lp[k]).abs() * b.completion_mask).sum().item<double>();
    }
    grad_norm = replicas_->optimizer_step(grad_sync_wait);
  }
  model_->eval();
  auto sums = dist_->sum({loss_sum, kl_sum, ent_sum, clip_low, clip_high, clip_region, gap_sum});
  loss_sum = sums[0], kl_sum = sums[1], ent_sum = sums[2], clip_low = sums[3], clip_high = sums[4];
  clip_region = sums[5], gap_sum = sums[6];
  m["loss"] = loss_sum;
  if (c_.beta > 0) m["kl"] = kl_sum;
  m["entropy"] = ent_sum;
  m["clip_ratio/low_mean"] = clip_low;
  m["clip_ratio/high_mean"] = clip_high;
  m["clip_ratio/region_mean"] = clip_region;
  m["sampler/logprob_gap"] = gap_sum / std::max(1.0, tokens);
  m["grad_norm"] = grad_norm;
  m["lr"] = lr;
  m["train/tokens"] = tokens;
  m["timing/backward"] = dist_->max({backward_s})[0];  // forward and backward of the update, the slowest rank's
  if (dist_->world_size() > 1) m["dist/grad_sync"] = dist_->sum(grad_sync_wait) / dist_->world_size();
}

}  // namespace rlaif
