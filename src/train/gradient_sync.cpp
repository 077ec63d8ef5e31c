#include "train/gradient_sync.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <chrono>

namespace rlaif {
namespace {

// Runs after a parameter's AccumulateGrad node: its .grad holds this backward's contribution.
struct GradientReady : torch::autograd::FunctionPostHook {
  GradientReady(GradientSync* sync, size_t param) : sync(sync), param(param) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    sync->on_gradient(param);
    return outputs;
  }
  GradientSync* sync;
  size_t param;
};

}  // namespace

GradientSync::GradientSync(Dist& dist, const std::vector<torch::Tensor>& params, int64_t bucket_bytes)
    : dist_(dist), params_(params), bucket_of_(params.size()) {
  if (dist_.world_size() == 1) return;
  overlap_ = bucket_bytes > 0;
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const int64_t size = params_[k].numel() * static_cast<int64_t>(params_[k].element_size());
    if (buckets_.empty() || (overlap_ && bytes > 0 && bytes + size > bucket_bytes)) {
      buckets_.emplace_back();
      bytes = 0;
    }
    buckets_.back().params.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    bytes += size;
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    auto acc = torch::autograd::impl::grad_accumulator(params_[k]);
    TORCH_CHECK(acc, "a trainable tensor without a gradient accumulator");
    const uintptr_t key = acc->add_post_hook(std::make_unique<GradientReady>(this, k));
    hooks_.emplace_back(acc, key);
  }
}

GradientSync::~GradientSync() {
  for (auto& [acc, key] : hooks_) acc->del_post_hook(key);
}

void GradientSync::arm() {
  if (dist_.world_size() == 1 || !overlap_) return;
  for (auto& b : buckets_) b.pending = b.params.size();
  next_ = 0;
  armed_ = true;
}

void GradientSync::on_gradient(size_t param) {
  if (!armed_) return;
  Bucket& b = buckets_[bucket_of_[param]];
  if (b.pending > 0 && --b.pending == 0) launch_ready();
}

void GradientSync::launch_ready() {
  while (next_ < buckets_.size() && buckets_[next_].pending == 0) launch(buckets_[next_++]);
}

void GradientSync::launch(Bucket& b) {
  std::vector<torch::Tensor> parts;
  for (size_t k : b.params) {
    const auto& p = params_[k];
    parts.push_back(p.grad().defined() ? p.grad().reshape({-1}) : torch::zeros({p.numel()}, p.options()));
  }
  b.flat = torch::cat(parts);  // [numel of the bucket]
  b.wait = dist_.start_sum(b.flat);
}

double GradientSync::finish() {
  if (dist_.world_size() == 1) return 0;
  const auto t0 = std::chrono::steady_clock::now();
  armed_ = false;
  while (next_ < buckets_.size()) launch(buckets_[next_++]);
  for (auto& b : buckets_) {
    b.wait();
    int64_t at = 0;
    for (size_t k : b.params) {
      auto& p = params_[k];
      auto sum = b.flat.narrow(0, at, p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(sum);
      else
        p.mutable_grad() = sum.clone();
      at += p.numel();
    }
    b.flat = torch::Tensor();
    b.wait = nullptr;
  }
  next_ = 0;  // the next pass launches from the first bucket again
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace rlaif
