// Fused CPU kernels with their own backward for the training forward (internal to the model): RMSNorm, rotary
// embedding, SwiGLU's gate and attention's masked softmax, each one pass forward and one pass backward instead of a chain of libtorch ops that
// each read and write the whole activation (and, under bf16 autocast, a cast around each). The plain formulas stay
// the reference (tests/test_transformer.cpp compares values and gradients).
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

}  // namespace rlaif
