// AdamW as torch::optim::AdamW computes it (same options, same state objects, so checkpoints are unchanged), with
// each parameter's update in one pass over its four tensors instead of about eight libtorch ops, several of which
// allocate a parameter-sized temporary. Internal to the trainer.
#pragma once

#include <torch/torch.h>

namespace rlaif {

class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace rlaif
