// Token log-probabilities straight from hidden states and the output head, a chunk of rows at a time. Rows that fit
// one chunk (~256 MiB of logits: a micro-batch's completions) keep their logits, in the compute precision, for the
// backward pass; beyond that the logits are recomputed in backward instead of stored: memory O(chunk x V) instead of
// O(rows x V) (the idea of Liger-Kernel's fused linear cross-entropy), for one extra head matmul per row.
//
// Per row with z = (h W^T) / temperature, lse = logsumexp(z), p = softmax(z), mu = sum p z:
//   logp = z[target] - lse                 d logp / dz = onehot(target) - p
//   H    = lse - mu                        d H / dz    = -p (z - mu)
// and dz/dh = W / temperature, dz/dW = h / temperature. In bf16 mode the logits and their gradient are bf16 (the
// matmuls' own precision; every statistic is accumulated in fp32).
#include <ATen/autocast_mode.h>

#include "rl/softmax_rows.h"
#include "rlaif/rl.h"

namespace rlaif {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kVocabBlock = 2048;  // rows of the head's weight gradient computed at a time

struct NoAutocast {  // the matmul precision is chosen explicitly here
  bool was = at::autocast::is_cpu_enabled();
  NoAutocast() { at::autocast::set_cpu_enabled(false); }
  ~NoAutocast() { at::autocast::set_cpu_enabled(was); }
};

// A gradient as contiguous fp32, or null where autograd passed none (that output is unused).
const float* grad_data(const torch::Tensor& g, torch::Tensor& keep) {
  if (!g.defined()) return nullptr;
  keep = g.to(torch::kFloat32).contiguous();
  return keep.data_ptr<float>();
}

class LinearLogprobs : public torch::autograd::Function<LinearLogprobs> {
 public:
  // h [M, C], w [V, C], targets [M] (int64, contiguous) -> (logp [M], entropy [M]). The logits of a chunk of rows
  // are one matmul in the compute precision ([n, V], bf16 or fp32); the softmax statistics come from them in two
  // passes per row (softmax_rows.cpp), and nothing [n, V] outlives the chunk.
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& h, const torch::Tensor& w,
                               const torch::Tensor& targets, double temperature, bool bf16, int64_t chunk) {
    NoAutocast no_autocast;
    ctx->set_materialize_grads(false);  // an unused entropy gets no gradient pass at all
    const int64_t M = h.size(0);
    const auto mm_type = bf16 ? torch::kBFloat16 : torch::kFloat32;
    const auto w_mm = w.to(mm_type);
    auto logp = torch::empty({M}, torch::kFloat32), entropy = torch::empty({M}, torch::kFloat32);
    auto lse = torch::empty({M}, torch::kFloat32), mu = torch::empty({M}, torch::kFloat32);
    const int64_t* t = targets.data_ptr<int64_t>();
    torch::Tensor kept;  // with a single chunk, its logits stay for the backward pass instead of being recomputed
    for (int64_t s = 0; s < M; s += chunk) {
      const int64_t n = std::min(chunk, M - s);
      auto z = torch::matmul(h.narrow(0, s, n).to(mm_type), w_mm.t()).contiguous();  // [n, V] raw logits
      softmax_row_stats(z, t + s, static_cast<float>(1 / temperature), logp.data_ptr<float>() + s,
                        lse.data_ptr<float>() + s, mu.data_ptr<float>() + s, entropy.data_ptr<float>() + s);
      if (n == M) kept = z;
    }
    ctx->save_for_backward({h, w, targets, lse, mu, kept, w_mm});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["bf16"] = bf16;
    ctx->saved_data["chunk"] = chunk;
    return {logp, entropy};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    NoAutocast no_autocast;
    auto saved = ctx->get_saved_variables();
    const auto &h = saved[0], &w = saved[1], &targets = saved[2], &lse = saved[3], &mu = saved[4];
    torch::Tensor kept = saved[5];         // the logits of a single chunk, or undefined
    const torch::Tensor& w_mm = saved[6];  // w in the compute precision, cast once in forward
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const bool bf16 = ctx->saved_data["bf16"].toBool();
    const int64_t chunk = ctx->saved_data["chunk"].toInt(), M = h.size(0), V = w.size(0);
    torch::Tensor keep_logp, keep_ent;
    const float* g_logp = grad_data(grads[0], keep_logp);
    const float* g_ent = grad_data(grads[1], keep_ent);
    const bool need_h = h.requires_grad(), need_w = w.requires_grad();
    torch::Tensor grad_h, grad_w;
    if ((!g_logp && !g_ent) || (!need_h && !need_w))
      return {grad_h, grad_w, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
    if (need_h) grad_h = torch::empty_like(h);
    if (need_w) grad_w = torch::empty_like(w, torch::kFloat32);
    const auto mm_type = bf16 ? torch::kBFloat16 : torch::kFloat32;
    const int64_t* t = targets.data_ptr<int64_t>();
    for (int64_t s = 0; s < M; s += chunk) {
      const int64_t n = std::min(chunk, M - s);
      auto hc = h.narrow(0, s, n).to(mm_type);
      // [n, V]: the logits (kept, or again), then their gradient in place
      // (the kept ones are overwritten, so a second backward of a retained graph computes them again)
      auto dz = kept.defined() && !ctx->saved_data.count("kept_used") ? kept : torch::matmul(hc, w_mm.t()).contiguous();
      if (kept.defined()) ctx->saved_data["kept_used"] = true;
      softmax_row_grads(dz, t + s, static_cast<float>(1 / temperature), lse.data_ptr<float>() + s,
                        mu.data_ptr<float>() + s, g_logp ? g_logp + s : nullptr, g_ent ? g_ent + s : nullptr);
      if (need_h) grad_h.narrow(0, s, n).copy_(torch::matmul(dz, w_mm));
      // d W [V, C] += dz^T hc, a block of vocabulary rows at a time: each block's product (in the compute
      // precision) is still in cache when it is added to the fp32 gradient, not written out whole and read again
      for (int64_t v = 0; need_w && v < V; v += kVocabBlock) {
        const int64_t nv = std::min(kVocabBlock, V - v);
        auto block = torch::mm(dz.narrow(1, v, nv).t(), hc);  // [nv, C]
        if (s == 0)
          grad_w.narrow(0, v, nv).copy_(block);
        else
          grad_w.narrow(0, v, nv).add_(block);
      }
    }
    return {grad_h,          need_w ? grad_w.to(w.scalar_type()) : torch::Tensor(),
            torch::Tensor(), torch::Tensor(),
            torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor linear_token_logprobs(const torch::Tensor& hidden, const torch::Tensor& weight,
                                    const torch::Tensor& targets, double temperature, bool bf16, torch::Tensor* entropy,
                                    int64_t chunk_rows) {
  const auto lead = targets.sizes().vec();
  auto h = hidden.reshape({-1, hidden.size(-1)});
  const int64_t elem = bf16 ? 2 : 4;  // ~256 MiB of logits per chunk: a micro-batch's completions are one chunk
  if (chunk_rows <= 0) chunk_rows = std::max<int64_t>(16, (256LL << 20) / (elem * weight.size(0)));
  auto out = LinearLogprobs::apply(h, weight, targets.reshape({-1}).to(torch::kInt64).contiguous(), temperature, bf16,
                                   chunk_rows);
  if (entropy) *entropy = out[1].view(lead);
  return out[0].view(lead);
}

}  // namespace rlaif
