// Data parallel: every rank's gradients summed into every rank's, overlapped with the backward pass as PyTorch's DDP
// does. The trainable tensors are cut into buckets of about 25 MiB in reverse order (the order backward produces
// their gradients); during the armed backward (a step's last micro-batch), a bucket is summed across ranks as soon as
// all its gradients are final, while backward goes on with the layers below; finish() waits for the buckets and
// writes the sums back. Buckets are launched strictly in order, so every rank issues the same collectives in the
// same order whatever its data. Internal to the trainers.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "rlaif/distributed.h"

namespace rlaif {

class GradientSync {
 public:
  // bucket_bytes 0: no overlap, one sum of every gradient in finish().
  GradientSync(Dist& dist, const std::vector<torch::Tensor>& params, int64_t bucket_bytes);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // The next backward pass produces the step's final gradients: sum each bucket as soon as it is complete.
  void arm();
  // Sums what the armed backward did not reach (a rank without data arms nothing: its buckets, zeros, go now), waits
  // for every bucket and writes the sums into the gradients. Returns the seconds it waited.
  double finish();

  void on_gradient(size_t param);  // from the autograd hooks

 private:
  struct Bucket {
    std::vector<size_t> params;
    size_t pending = 0;  // gradients not final yet in the armed backward
    torch::Tensor flat;  // [numel of its params] while being summed
    std::function<void()> wait;
  };
  void launch_ready();
  void launch(Bucket& b);

  Dist& dist_;
  std::vector<torch::Tensor> params_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;                                                    // [params] bucket index
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks_;  // kept alive: accumulator, key
  size_t next_ = 0;                                                                  // the first bucket not launched
  bool armed_ = false, overlap_ = true;
};

}  // namespace rlaif
