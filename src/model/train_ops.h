// Fused CPU kernels with their own backward for the training forward (internal to the model): RMSNorm, rotary
// embedding, SwiGLU's gate and attention's masked softmax, each one pass forward and one pass backward instead of a
// chain of libtorch ops that each read and write the whole activation (and, under bf16 autocast, a cast around each).
// The plain formulas stay the reference (tests/test_transformer.cpp compares values and gradients).
#pragma once

#include <torch/torch.h>

namespace rlaif {

// y = weight * x / sqrt(mean(x^2) + eps) over the last dimension. x fp32, contiguous; weight [C] fp32. The result
// is fp32, or bf16 with `bf16_out` (what autocast would cast it to before a bf16 matmul, without the extra pass).
torch::Tensor rms_norm_fused(const torch::Tensor& x, const torch::Tensor& weight, double eps, bool bf16_out = false);

// x * cos + rotate_half(x) * sin. x [N, T, heads, D] contiguous, fp32 or bf16 (the result has x's dtype);
// cos/sin [N, T, 1, D] fp32 contiguous.
torch::Tensor rope_fused(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// The fused q/k/v projection's output in attention's layout, rotary embedding applied to q and k: qkv
// [N, T, (heads + 2 kv_heads) D] (q, k, v concatenated per token), fp32 or bf16, contiguous; cos/sin [N, T, 1, D]
// fp32 contiguous -> {q [N, heads, T, D], k [N, kv_heads, T, D], v [N, kv_heads, T, D]}, contiguous, qkv's dtype.
std::vector<torch::Tensor> qkv_rope_fused(const torch::Tensor& qkv, const torch::Tensor& cos, const torch::Tensor& sin,
                                          int64_t heads, int64_t kv_heads);

// silu(gate) * up for the fused gate/up projection's output gu [..., 2 I] (gate in the first half of the last
// dimension, up in the second), fp32 or bf16, contiguous -> [..., I] of gu's dtype.
torch::Tensor swiglu_fused(const torch::Tensor& gu);

// softmax over the last dimension of scale * scores, keys not `allowed` left out (probability 0; a row with no
// allowed key gets the uniform distribution, as softmax over equal masked scores does). scores [N, G, R, T, L]
// contiguous, fp32 or bf16 (the result has its dtype; sums in fp32); allowed [N, T, L] bool contiguous.
torch::Tensor masked_softmax_fused(const torch::Tensor& scores, const torch::Tensor& allowed, double scale);

// Dropout for training forwards: each element kept with probability 1 - p (its mask bit a hash of a seed drawn
// from libtorch's default generator and the element's index, exact to 2^-32) and scaled by 1 / (1 - p); backward
// regenerates the mask from the seed instead of storing it. The same torch seed gives the same mask at any thread
// count. fp32 or bf16, any layout (the result is contiguous).
torch::Tensor dropout_fused(const torch::Tensor& x, double p);

// dropout_fused's pieces, for kernels that replay a mask themselves: a seed drawn from libtorch's default generator;
// the mask of `seed` applied to x (contiguous result); acc += the mask of `seed` applied to x (acc contiguous, x's
// dtype and size).
uint64_t draw_dropout_seed();
torch::Tensor dropout_with_seed(const torch::Tensor& x, uint64_t seed, double p);
void dropout_with_seed_add_(torch::Tensor& acc, const torch::Tensor& x, uint64_t seed, double p);
// Tests: use the portable loop instead of the AVX-512 one (the same masks and values); returns the previous setting.
bool dropout_force_portable(bool on);

// A frozen projection with LoRA adapters on column ranges of its output, forward and backward in one node:
//   y = x W^T + bias + sum_p scale_p * drop_p(x) A_p^T B_p^T   (added into columns [col_p, col_p + out_p) of y)
// x [M, in]; W [out, in] and bias [out] frozen (no gradient), in `compute`'s dtype; A_p [r_p, in], B_p [out_p, r_p]
// trainable, any float dtype (their gradients come back in it). Matmuls run in `compute` (bf16 under autocast,
// else fp32); y [M, out] has that dtype. Backward is dx = dy W + sum_p drop_p((scale_p dy_p B_p) A_p) accumulated
// in place (one product for all adapters without dropout), dA_p and dB_p; each adapter's dropout mask is replayed
// from its seed instead of stored, so backward keeps only x and the [M, sum r_p] products x A^T.
struct LoraPart {
  torch::Tensor A, B;
  double scale = 1;
  double dropout = 0;  // 0 outside training
  int64_t col = 0;     // first output column this adapter adds into
};
torch::Tensor lora_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                          const std::vector<LoraPart>& parts, at::ScalarType compute);

}  // namespace rlaif
