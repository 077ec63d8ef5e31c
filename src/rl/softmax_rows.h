// Row kernels for linear_token_logprobs (internal): the softmax statistics of each row of logits, and the logits'
// gradient written over them, in one or two passes per row instead of a chain of full-size tensor ops (each of
// which reads and writes rows x vocabulary floats). AVX-512 where the CPU has it, plain C++ otherwise.
#pragma once

#include <torch/torch.h>

namespace rlaif {

// z [M, V] raw logits, fp32 or bf16, contiguous. With x = scale * z (scale = 1 / temperature) per row:
//   lse = logsumexp(x), mu = sum softmax(x) x, logp = x[target] - lse, entropy = lse - mu.
void softmax_row_stats(const torch::Tensor& z, const int64_t* targets, float scale, float* logp, float* lse, float* mu,
                       float* entropy);

// Overwrites z with d loss / d z for loss = sum g_logp logp + sum g_ent entropy (either may be null = 0):
//   d/dz = scale * (g_logp (onehot(target) - p) - g_ent p (x - mu)),  p = exp(x - lse).
void softmax_row_grads(torch::Tensor& z, const int64_t* targets, float scale, const float* lse, const float* mu,
                       const float* g_logp, const float* g_ent);

// Tests: use the plain C++ path even where the CPU has AVX-512 (returns the previous setting).
bool softmax_rows_force_portable(bool on);

}  // namespace rlaif
