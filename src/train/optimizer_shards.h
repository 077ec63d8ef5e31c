// ZeRO stage 1 (Rajbhandari et al. 2020): with train.zero_stage = 1 each rank keeps the AdamW moments of its share of
// the trainable tensors only (whole tensors, balanced by size), updates that share, and sends it to the other ranks;
// the gradients are still summed in full on every rank. The weights are the same as without it, bit for bit: each
// tensor's update is the same arithmetic on the same gradient and moments, done once instead of on every rank.
// Checkpoints hold every moment (gathered to every rank for the write, then dropped again), so a run resumes on any
// number of ranks and re-cuts the shards. Internal to the trainer.
#pragma once

#include <vector>

#include <torch/torch.h>

#include "rlaif/distributed.h"

namespace rlaif {

class OptimizerShards {
 public:
  OptimizerShards(Dist& dist, const std::vector<torch::Tensor>& params, torch::optim::Optimizer& opt);

  int owner(size_t param) const { return owner_[param]; }
  // Before the optimizer step: the gradients of the other ranks' tensors are dropped, so the step leaves them be.
  void drop_foreign_gradients();
  // After the optimizer step: each rank's updated tensors to every rank.
  void share_updated();
  // Every tensor's moments on every rank (for a checkpoint), and back to this rank's share.
  void gather_state();
  void drop_foreign_state();

 private:
  Dist& dist_;
  std::vector<torch::Tensor> params_;
  torch::optim::Optimizer& opt_;
  std::vector<int> owner_;  // [params] the rank that updates each tensor
};

}  // namespace rlaif
