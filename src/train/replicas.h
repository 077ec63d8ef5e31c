// What both trainers do the same way when several ranks hold replicas of one model: the optimizer step once the
// gradients are summed, and checkpoints that every rank reaches. With one rank they reduce to clip, step, save.
// Internal to the trainers.
#pragma once

#include <memory>

#include <torch/torch.h>

#include "rlaif/checkpoint.h"
#include "rlaif/distributed.h"
#include "rlaif/train_config.h"
#include "train/gradient_sync.h"
#include "train/optimizer_shards.h"
#include "train/train_common.h"

namespace rlaif {

class Replicas {
 public:
  // Hooks the trainable tensors' gradients for the sums (train.ddp_bucket_cap_mb) and, with train.zero_stage = 1 on
  // several ranks, shards the optimizer's moments.
  Replicas(Dist& dist, const TrainConfig& c, const Trainable& t, torch::optim::Optimizer& opt);

  // Before the step's last backward pass: its gradients are summed across ranks as they are produced.
  void arm() { sync_.arm(); }
  // After it: waits for the sums, clips to max_grad_norm, applies the optimizer (ZeRO-1: each rank its share, then
  // shared) and zeroes the gradients. Returns the norm before clipping; adds the seconds waited for the sums.
  double optimizer_step(double& waited);
  // After start_run: a resumed run loaded every tensor's moments; ZeRO-1 keeps this rank's.
  void after_start();
  // A checkpoint of state.step: the ranks' weights compared (a mismatch stops the run), every moment gathered, rank 0
  // writes it (the world size in the state), the others wait until it has.
  void save(TrainerState state, const CheckpointContents& contents);

 private:
  Dist& dist_;
  const TrainConfig& c_;
  const Trainable& t_;
  torch::optim::Optimizer& opt_;
  GradientSync sync_;
  std::unique_ptr<OptimizerShards> shards_;  // ZeRO-1 only
};

}  // namespace rlaif
