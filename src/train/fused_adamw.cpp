#include "train/fused_adamw.h"

#include <ATen/Parallel.h>

#include <cmath>

namespace rlaif {
namespace {

// One element, in the order torch::optim::AdamW applies it:
//   p *= 1 - lr wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
void update(float* p, const float* g, float* m, float* v, int64_t n, float decay, float b1, float b2,
            float inv_sqrt_bc2, float eps, float step_size) {
  at::parallel_for(0, n, 1 << 16, [&](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t i = b; i < e; ++i) {
      const float gi = g[i];
      const float mi = m[i] * b1 + (1 - b1) * gi;
      const float vi = v[i] * b2 + (1 - b2) * gi * gi;
      m[i] = mi, v[i] = vi;
      p[i] = p[i] * decay - step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
    }
  });
}

}  // namespace

torch::Tensor FusedAdamW::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    const auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const auto& grad = p.grad();
      const std::string key = c10::guts::to_string(p.unsafeGetTensorImpl());
      auto it = state_.find(key);
      if (it == state_.end()) {
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(0);
        s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        if (o.amsgrad()) s->max_exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        it = state_.emplace(key, std::move(s)).first;
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
      s.step(s.step() + 1);
      const auto [b1, b2] = o.betas();
      const double bc1 = 1 - std::pow(b1, s.step()), bc2 = 1 - std::pow(b2, s.step());
      auto &m = s.exp_avg(), &v = s.exp_avg_sq();
      const bool fused = !o.amsgrad() && p.scalar_type() == torch::kFloat32 && grad.scalar_type() == torch::kFloat32 &&
                         p.is_contiguous() && grad.is_contiguous() && m.is_contiguous() && v.is_contiguous() &&
                         !grad.is_sparse();
      if (fused) {
        update(p.data_ptr<float>(), grad.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(), p.numel(),
               static_cast<float>(1 - o.lr() * o.weight_decay()), static_cast<float>(b1), static_cast<float>(b2),
               static_cast<float>(1 / std::sqrt(bc2)), static_cast<float>(o.eps()), static_cast<float>(o.lr() / bc1));
        // Written through raw pointers: move the version counters as an in-place op would, so whatever keys on them
        // (the packed sampler repacks weights whose version moved) sees the update.
        for (auto* t : {&p, &m, &v}) t->unsafeGetTensorImpl()->bump_version();
        continue;
      }
      if (o.weight_decay() != 0) p.mul_(1 - o.lr() * o.weight_decay());  // torch::optim::AdamW's own steps
      m.mul_(b1).add_(grad, 1 - b1);
      v.mul_(b2).addcmul_(grad, grad, 1 - b2);
      torch::Tensor denom;
      if (o.amsgrad()) {
        auto& mx = s.max_exp_avg_sq();
        torch::max_out(mx, v, mx);
        denom = (mx.sqrt() / std::sqrt(bc2)).add_(o.eps());
      } else {
        denom = (v.sqrt() / std::sqrt(bc2)).add_(o.eps());
      }
      p.addcdiv_(m, denom, -o.lr() / bc1);
    }
  }
  return loss;
}

}  // namespace rlaif
