// Fused CPU kernels for one-token decode steps (internal to the model). Each replaces a chain of small libtorch ops
// whose per-op overhead, ~5 us each, dominated a batch-1 decode step. fp32, contiguous rows, no autograd.
#pragma once

#include <torch/torch.h>

namespace rlaif {

// y = w * x / sqrt(mean(x^2) + eps) over the last dimension. x [M, C] contiguous fp32.
torch::Tensor rms_norm_rows(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// SwiGLU's gate: silu(gu[..., :I]) * gu[..., I:2I] for gu [M, >= 2I] (row stride may be padded). Returns [M, I].
torch::Tensor silu_mul(const torch::Tensor& gu, int64_t I);

struct DecodeAttentionArgs {
  torch::Tensor qkv;  // [N, >= (H + 2 Hkv) D] fp32: q, k, v of each row's one new token (row stride may be padded)
  const int64_t* positions;        // [N]: the new token's position in its slot
  int64_t slot_begin;              // row n uses cache slot slot_begin + n, or slots[n] when `slots` is set
  const int64_t* slots = nullptr;  // [N] or null. Rows may share a slot (a prompt's tokens, one row each): every
                                   // row's key and value are stored before any row attends
  int64_t heads, kv_heads, head_dim;
  const float* cos;  // rope tables [P, D] fp32
  const float* sin;
  const float* q_norm;  // [D] or null (qwen3 per-head RMSNorm, applied before rope)
  const float* k_norm;
  double eps;
};

// For each row: normalise q/k heads (qwen3), rotate q and k, write k and v into the cache at the row's position,
// then attend over cache positions 0..position. Returns [N, H * D] fp32. cache_k/cache_v: [S, Hkv, Tmax, D], fp32 or
// bf16 (keys and values rounded to bf16 when stored; all arithmetic in fp32).
torch::Tensor decode_attention(const DecodeAttentionArgs& a, torch::Tensor& cache_k, torch::Tensor& cache_v);

}  // namespace rlaif
