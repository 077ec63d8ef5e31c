// Token log-probabilities straight from hidden states and the output head, a chunk of rows at a time, with the
// logits recomputed in the backward pass instead of stored: memory O(chunk x V) instead of O(rows x V) (the idea of
// Liger-Kernel's fused linear cross-entropy), for one extra head matmul per row.
//
// Per row with z = (h W^T) / temperature, lse = logsumexp(z), p = softmax(z), mu = sum p z:
//   logp = z[target] - lse                 d logp / dz = onehot(target) - p
//   H    = lse - mu                        d H / dz    = -p (z - mu)
// and dz/dh = W / temperature, dz/dW = h / temperature.
#include <ATen/autocast_mode.h>

#include "rlaif/rl.h"

namespace rlaif {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct NoAutocast {  // the matmul precision is chosen explicitly here
  bool was = at::autocast::is_cpu_enabled();
  NoAutocast() { at::autocast::set_cpu_enabled(false); }
  ~NoAutocast() { at::autocast::set_cpu_enabled(was); }
};

torch::Tensor chunk_logits(const torch::Tensor& h, const torch::Tensor& w, double temperature, bool bf16) {
  auto z = bf16 ? torch::matmul(h.to(torch::kBFloat16), w.to(torch::kBFloat16).t()).to(torch::kFloat32)
                : torch::matmul(h.to(torch::kFloat32), w.to(torch::kFloat32).t());
  return temperature != 1 ? z / temperature : z;  // [n, V]
}

class LinearLogprobs : public torch::autograd::Function<LinearLogprobs> {
 public:
  // h [M, C], w [V, C], targets [M] -> (logp [M], entropy [M])
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& h, const torch::Tensor& w,
                               const torch::Tensor& targets, double temperature, bool bf16, int64_t chunk) {
    NoAutocast no_autocast;
    const int64_t M = h.size(0);
    auto logp = torch::empty({M}, torch::kFloat32), entropy = torch::empty({M}, torch::kFloat32);
    auto lse = torch::empty({M}, torch::kFloat32), mu = torch::empty({M}, torch::kFloat32);
    for (int64_t s = 0; s < M; s += chunk) {
      const int64_t n = std::min(chunk, M - s);
      auto z = chunk_logits(h.narrow(0, s, n), w, temperature, bf16);  // [n, V]
      auto l = torch::logsumexp(z, 1);
      auto m = (torch::softmax(z, 1) * z).sum(1);
      lse.narrow(0, s, n).copy_(l);
      mu.narrow(0, s, n).copy_(m);
      logp.narrow(0, s, n).copy_(z.gather(1, targets.narrow(0, s, n).unsqueeze(1)).squeeze(1) - l);
      entropy.narrow(0, s, n).copy_(l - m);
    }
    ctx->save_for_backward({h, w, targets, lse, mu});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["bf16"] = bf16;
    ctx->saved_data["chunk"] = chunk;
    return {logp, entropy};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    NoAutocast no_autocast;
    auto saved = ctx->get_saved_variables();
    const auto &h = saved[0], &w = saved[1], &targets = saved[2], &lse = saved[3], &mu = saved[4];
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const bool bf16 = ctx->saved_data["bf16"].toBool();
    const int64_t chunk = ctx->saved_data["chunk"].toInt(), M = h.size(0);
    const auto& g_logp = grads[0];
    const auto& g_ent = grads[1];
    const bool need_h = h.requires_grad(), need_w = w.requires_grad();
    torch::Tensor grad_h = need_h ? torch::empty_like(h) : torch::Tensor();
    torch::Tensor grad_w = need_w ? torch::zeros({w.size(0), w.size(1)}, torch::kFloat32) : torch::Tensor();
    const auto mm_type = bf16 ? torch::kBFloat16 : torch::kFloat32;
    auto w_mm = w.to(mm_type);
    for (int64_t s = 0; s < M; s += chunk) {
      const int64_t n = std::min(chunk, M - s);
      auto hc = h.narrow(0, s, n);
      auto z = chunk_logits(hc, w, temperature, bf16);                  // [n, V]
      auto p = torch::exp(z - lse.narrow(0, s, n).unsqueeze(1));        // softmax(z)
      torch::Tensor dz = torch::zeros_like(z);
      if (g_logp.defined()) {
        auto g = g_logp.narrow(0, s, n).unsqueeze(1);
        dz = -p * g;
        dz.scatter_add_(1, targets.narrow(0, s, n).unsqueeze(1), g);     // + onehot * g
      }
      if (g_ent.defined()) dz = dz - p * (z - mu.narrow(0, s, n).unsqueeze(1)) * g_ent.narrow(0, s, n).unsqueeze(1);
      if (temperature != 1) dz = dz / temperature;
      auto dz_mm = dz.to(mm_type);
      if (need_h) grad_h.narrow(0, s, n).copy_(torch::matmul(dz_mm, w_mm).to(h.scalar_type()));
      if (need_w) grad_w.add_(torch::matmul(dz_mm.t(), hc.to(mm_type)).to(torch::kFloat32));
    }
    return {grad_h, need_w ? grad_w.to(w.scalar_type()) : torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor linear_token_logprobs(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                                    double temperature, bool bf16, torch::Tensor* entropy, int64_t chunk_rows) {
  const auto lead = targets.sizes().vec();
  auto h = hidden.reshape({-1, hidden.size(-1)});
  if (chunk_rows <= 0) chunk_rows = std::max<int64_t>(16, (64LL << 20) / (4 * weight.size(0)));  // ~64 MiB of logits
  auto out = LinearLogprobs::apply(h, weight, targets.reshape({-1}), temperature, bf16, chunk_rows);
  if (entropy) *entropy = out[1].view(lead);
  return out[0].view(lead);
}

}  // namespace rlaif
