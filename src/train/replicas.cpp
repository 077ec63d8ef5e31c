#include "train/replicas.h"

namespace rlaif {

Replicas::Replicas(Dist& dist, const TrainConfig& c, const Trainable& t, torch::optim::Optimizer& opt)
    : dist_(dist),
      c_(c),
      t_(t),
      opt_(opt),
      sync_(dist, t.params, static_cast<int64_t>(c.ddp_bucket_cap_mb * (1 << 20))) {
  if (c.zero_stage == 1 && dist.world_size() > 1) shards_ = std::make_unique<OptimizerShards>(dist, t.params, opt);
}

double Replicas::optimizer_step(double& waited) {
  waited += sync_.finish();
  const double norm = clip_gradients(t_.params, c_.max_grad_norm);
  if (shards_) shards_->drop_foreign_gradients();
  opt_.step();
  if (shards_) shards_->share_updated();
  opt_.zero_grad();
  return norm;
}

void Replicas::after_start() {
  if (shards_) shards_->drop_foreign_state();
}

void Replicas::save(TrainerState state, const CheckpointContents& contents) {
  check_replicas(dist_, t_, state.step);
  if (shards_) shards_->gather_state();  // ZeRO-1: a checkpoint holds every moment
  if (dist_.is_main()) {                 // every rank holds the same weights and optimizer state: one writes
    state.extra["world_size"] = dist_.world_size();
    save_checkpoint(c_.output_dir, state, contents, c_.save_total_limit);
  }
  dist_.barrier();
  if (shards_) shards_->drop_foreign_state();
}

}  // namespace rlaif
