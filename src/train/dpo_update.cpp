// Online DPO (Guo et al. 2024): the judge's preferred completion of each pair against the other, relative to the
// reference (src/rl/losses.cpp's online_dpo_loss), over micro-batches of pairs, num_iterations times.
#include "rlaif/rl.h"
#include "train/rl_trainer.h"

namespace rlaif {

// Data parallel: each rank's pairs weigh n / P with P the pairs of the whole step, gradients summed over the ranks.
void RlTrainer::update_dpo(const RolloutBatch& rb, int64_t step, nlohmann::json& m) {
  const int64_t P_here = rb.groups(), P = static_cast<int64_t>(dist_->sum(double(P_here)));  // pairs
  const int64_t pairs_per_mb = std::max<int64_t>(1, c_.per_device_train_batch_size / 2);
  const auto rewards = rb.empty() ? torch::zeros({0, 2}, torch::kFloat64) : rb.rewards;
  auto reward = rewards.accessor<double, 2>();  // [P here, 2]: 1 for the preferred completion
  const double lr = scheduled_lr(c_, step, total_steps_);
  set_lr(*opt_, lr);
  model_->train();
  double loss_sum = 0, margin_sum = 0, tokens = 0, grad_norm = 0;
  for (int64_t iter = 0; iter < c_.num_iterations; ++iter) {
    for (int64_t s = 0; s < P_here; s += pairs_per_mb) {
      const int64_t e = std::min(P_here, s + pairs_per_mb), n = e - s;
      std::vector<const std::vector<int64_t>*> prompts, completions;
      for (int64_t k = s; k < e; ++k) {  // chosen first, then rejected
        const size_t w = reward[k][0] > reward[k][1] ? 0 : 1;
        prompts.push_back(&rows_[rb.rows[k]].prompt_ids);
        completions.push_back(&rb.samples[k][w].token_ids);
        prompts.push_back(&rows_[rb.rows[k]].prompt_ids);
        completions.push_back(&rb.samples[k][1 - w].token_ids);
      }
      auto b = make_sequence_batch(prompts, completions, pad_id_);
      auto ref = reference_logprobs(b).sum(-1).view({n, 2});  // [n, 2]: chosen, rejected
      auto logp = completion_logprobs(model_, b, c_.temperature, nullptr, bf16_).sum(-1).view({n, 2});  // [n, 2]
      auto loss = online_dpo_loss(logp.select(1, 0), logp.select(1, 1), ref.select(1, 0), ref.select(1, 1), c_.beta);
      if (e == P_here) replicas_->arm();  // the last backward of this pass
      (loss * (double(n) / P)).backward();
      loss_sum += loss.item<double>() * n / P / c_.num_iterations;
      margin_sum += ((logp.detach().select(1, 0) - ref.select(1, 0)) - (logp.detach().select(1, 1) - ref.select(1, 1)))
                        .sum()
                        .item<double>() *
                    c_.beta;
      tokens += b.completion_mask.sum().item<double>();
    }
    double waited = 0;
    grad_norm = replicas_->optimizer_step(waited);
  }
  model_->eval();
  auto sums = dist_->sum({loss_sum, margin_sum, tokens});
  loss_sum = sums[0], margin_sum = sums[1], tokens = sums[2];
  m["loss"] = loss_sum;
  m["rewards/margins"] = P ? margin_sum / (P * c_.num_iterations) : 0.0;
  m["grad_norm"] = grad_norm;
  m["lr"] = lr;
  m["train/tokens"] = tokens / c_.num_iterations;
}

}  // namespace rlaif
