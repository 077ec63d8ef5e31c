// Fused CPU kernels with their own backward for the training forward (internal to the model): RMSNorm, rotary
// embedding, SwiGLU's gate and attention's masked softmax, each one pass forward and one pass backward instead of a chain of libtorch ops that
// each read and write the whole activation (and, under bf16 autocast, a cast around each). The plain formulas stay
// the reference (tests/test_transformer.cpp compares values and gradients).
#pragma once

#include <torch/torch.h>

namespace rlaif {

// y = weight * x / sqrt(mean(x^2) + eps) over the last dimension. x fp32, contiguous; weight [C] fp32.
torch::Tensor rms_norm_fused(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// x * cos + rotate_half(x) * sin. x [N, T, heads, D] contiguous, fp32 or bf16 (the result has x's dtype);
// cos/sin [N, T, 1, D] fp32 contiguous.
torch::Tensor rope_fused(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// silu(g) * u; g and u of one shape and dtype (fp32 or bf16), contiguous.
torch::Tensor swiglu_fused(const torch::Tensor& g, const torch::Tensor& u);

// softmax over the last dimension of scale * scores, keys not `allowed` left out (probability 0; a row with no
// allowed key gets the uniform distribution, as softmax over equal masked scores does). scores [N, G, R, T, L]
// contiguous, fp32 or bf16 (the result has its dtype; sums in fp32); allowed [N, T, L] bool contiguous.
torch::Tensor masked_softmax_fused(const torch::Tensor& scores, const torch::Tensor& allowed, double scale);

}  // namespace rlaif
