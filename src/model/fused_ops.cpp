#include "fused_ops.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace rlaif {

torch::Tensor rms_norm_rows(const torch::Tensor& x_in, const torch::Tensor& weight, double eps) {
  auto x = x_in.contiguous();
  const int64_t C = x.size(-1), M = x.numel() / C;
  auto y = torch::empty_like(x);
  const float* xp = x.data_ptr<float>();
  const float* w = weight.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int64_t m = 0; m < M; ++m) {
    const float* r = xp + m * C;
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t c = 0; c < C; ++c) ss += r[c] * r[c];
    const float inv = 1.0f / std::sqrt(ss / C + static_cast<float>(eps));
    for (int64_t c = 0; c < C; ++c) yp[m * C + c] = w[c] * (r[c] * inv);
  }
  return y;
}

namespace {

void rms_norm_head(float* x, const float* w, int64_t D, double eps) {
  float ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int64_t d = 0; d < D; ++d) ss += x[d] * x[d];
  const float inv = 1.0f / std::sqrt(ss / D + static_cast<float>(eps));
  for (int64_t d = 0; d < D; ++d) x[d] = w[d] * (x[d] * inv);
}

// Rotate-half rotary embedding of one head, in place.
void rope_head(float* x, const float* cos, const float* sin, int64_t D) {
  const int64_t h = D / 2;
  for (int64_t i = 0; i < h; ++i) {
    const float a = x[i], b = x[i + h];
    x[i] = a * cos[i] - b * sin[i];
    x[i + h] = b * cos[i + h] + a * sin[i + h];
  }
}

}  // namespace

torch::Tensor decode_attention(const DecodeAttentionArgs& a, torch::Tensor& cache_k, torch::Tensor& cache_v) {
  const int64_t N = a.qkv.size(0), H = a.heads, Hkv = a.kv_heads, D = a.head_dim, R = H / Hkv;
  const int64_t row_stride = a.qkv.stride(0), Tmax = cache_k.size(2);
  float* qkv = a.qkv.data_ptr<float>();
  float* kc = cache_k.data_ptr<float>();
  float* vc = cache_v.data_ptr<float>();
  // 1. Per row: q/k norms and rope in place; k and v into the cache.
  at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; ++n) {
    float* row = qkv + n * row_stride;
    const int64_t p = a.positions[n];
    const float* cs = a.cos + p * D;
    const float* sn = a.sin + p * D;
    for (int64_t h = 0; h < H + Hkv; ++h) {
      float* x = row + h * D;
      const float* norm = h < H ? a.q_norm : a.k_norm;
      if (norm) rms_norm_head(x, norm, D, a.eps);
      rope_head(x, cs, sn, D);
    }
    const int64_t slot = a.slot_begin + n;
    for (int64_t g = 0; g < Hkv; ++g) {
      std::memcpy(kc + ((slot * Hkv + g) * Tmax + p) * D, row + (H + g) * D, D * sizeof(float));
      std::memcpy(vc + ((slot * Hkv + g) * Tmax + p) * D, row + (H + Hkv + g) * D, D * sizeof(float));
    }
  }
  });
  // 2. Attention of each (row, query head) over positions 0..p of its slot.
  auto out = torch::empty({N, H * D}, torch::kFloat32);
  float* op = out.data_ptr<float>();
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  at::parallel_for(0, N * H, 1, [&](int64_t b, int64_t e) {
    std::vector<float> s;
    for (int64_t i = b; i < e; ++i) {
      const int64_t n = i / H, h = i % H, g = h / R, p = a.positions[n], slot = a.slot_begin + n;
      const float* q = qkv + n * row_stride + h * D;
      const float* K = kc + (slot * Hkv + g) * Tmax * D;
      const float* V = vc + (slot * Hkv + g) * Tmax * D;
      s.resize(p + 1);
      float mx = -INFINITY;
      for (int64_t l = 0; l <= p; ++l) {
        float dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t d = 0; d < D; ++d) dot += q[d] * K[l * D + d];
        s[l] = dot * scale;
        mx = std::max(mx, s[l]);
      }
      float sum = 0;
      for (int64_t l = 0; l <= p; ++l) sum += (s[l] = std::exp(s[l] - mx));
      float* o = op + n * H * D + h * D;
      for (int64_t d = 0; d < D; ++d) o[d] = 0;
      for (int64_t l = 0; l <= p; ++l) {
        const float w = s[l] / sum;
        for (int64_t d = 0; d < D; ++d) o[d] += w * V[l * D + d];
      }
    }
  });
  return out;
}

}  // namespace rlaif
