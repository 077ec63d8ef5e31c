#include "fused_ops.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <c10/util/BFloat16.h>

#include <cmath>
#include <vector>

#include "core/simd_math.h"

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

// Attention of the R query heads q[r] (r < R, each D floats) that share one key/value head, over keys/values
// K, V [L, D] (fp32 or bf16). Writes out[r]. D % 16 == 0. `s` is scratch of R * L floats.
template <typename T>
__attribute__((target("avx512f"))) void attend_group_avx512(const float* const* q, int64_t R, const T* K, const T* V,
                                                            int64_t L, int64_t D, float scale, float* const* out,
                                                            float* s) {
  for (int64_t r = 0; r < R; ++r) {
    float* sr = s + r * L;
    float mx = -INFINITY;
    for (int64_t l = 0; l < L; ++l) {
      __m512 acc = _mm512_setzero_ps();
      for (int64_t d = 0; d < D; d += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q[r] + d), load16(K + l * D + d), acc);
      sr[l] = _mm512_reduce_add_ps(acc) * scale;
      mx = std::max(mx, sr[l]);
    }
    __m512 sum = _mm512_setzero_ps(), m = _mm512_set1_ps(mx);
    int64_t l = 0;
    for (; l + 16 <= L; l += 16) {
      __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(sr + l), m));
      _mm512_storeu_ps(sr + l, e);
      sum = _mm512_add_ps(sum, e);
    }
    if (l < L) {
      __mmask16 k = static_cast<__mmask16>((1u << (L - l)) - 1);
      __m512 e = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, sr + l), m));
      _mm512_mask_storeu_ps(sr + l, k, e);
      sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(k, e));
    }
    const float inv = 1.0f / _mm512_reduce_add_ps(sum);
    for (int64_t d = 0; d < D; d += 16) {
      __m512 o = _mm512_setzero_ps();
      for (int64_t j = 0; j < L; ++j) o = _mm512_fmadd_ps(_mm512_set1_ps(sr[j]), load16(V + j * D + d), o);
      _mm512_storeu_ps(out[r] + d, _mm512_mul_ps(o, _mm512_set1_ps(inv)));
    }
  }
}

// The same, in portable C++ (any D, any CPU).
template <typename T>
void attend_group(const float* const* q, int64_t R, const T* K, const T* V, int64_t L, int64_t D, float scale,
                  float* const* out, float* s) {
  for (int64_t r = 0; r < R; ++r) {
    float* sr = s + r * L;
    float mx = -INFINITY;
    for (int64_t l = 0; l < L; ++l) {
      float dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t d = 0; d < D; ++d) dot += q[r][d] * static_cast<float>(K[l * D + d]);
      sr[l] = dot * scale;
      mx = std::max(mx, sr[l]);
    }
    float sum = 0;
    for (int64_t l = 0; l < L; ++l) sum += (sr[l] = std::exp(sr[l] - mx));
    for (int64_t d = 0; d < D; ++d) out[r][d] = 0;
    for (int64_t l = 0; l < L; ++l) {
      const float w = sr[l] / sum;
      for (int64_t d = 0; d < D; ++d) out[r][d] += w * static_cast<float>(V[l * D + d]);
    }
  }
}

}  // namespace

namespace {

__attribute__((target("avx512f"))) void silu_mul_avx512(const float* g, const float* u, float* o, int64_t I) {
  int64_t i = 0;
  for (; i + 16 <= I; i += 16) {
    __m512 x = _mm512_loadu_ps(g + i);
    // silu(x) = x / (1 + exp(-x)); exp_avx512 takes x <= 0, so use exp(-|x|) and the identity for x < 0.
    __m512 e = exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(x)));
    __m512 one = _mm512_set1_ps(1.0f);
    __m512 sig_pos = _mm512_div_ps(one, _mm512_add_ps(one, e));  // sigmoid(|x|)
    __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    __m512 sig = _mm512_mask_sub_ps(sig_pos, neg, one, sig_pos);  // sigmoid(x) = 1 - sigmoid(|x|) for x < 0
    _mm512_storeu_ps(o + i, _mm512_mul_ps(_mm512_mul_ps(x, sig), _mm512_loadu_ps(u + i)));
  }
  for (; i < I; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

}  // namespace

torch::Tensor silu_mul(const torch::Tensor& gu, int64_t I) {
  const int64_t M = gu.size(0), stride = gu.stride(0);
  TORCH_CHECK(gu.stride(1) == 1 && gu.scalar_type() == torch::kFloat32, "silu_mul: rows must be fp32 and dense");
  auto out = torch::empty({M, I}, torch::kFloat32);
  const float* in = gu.data_ptr<float>();
  float* op = out.data_ptr<float>();
  static const bool avx512 = (__builtin_cpu_init(), __builtin_cpu_supports("avx512f"));
  at::parallel_for(0, M, 8, [&](int64_t b, int64_t e) {
    for (int64_t m = b; m < e; ++m) {
      const float* g = in + m * stride;
      if (avx512)
        silu_mul_avx512(g, g + I, op + m * I, I);
      else
        for (int64_t i = 0; i < I; ++i) op[m * I + i] = g[i] / (1.0f + std::exp(-g[i])) * g[I + i];
    }
  });
  return out;
}

namespace {

template <typename T>
torch::Tensor decode_attention_t(const DecodeAttentionArgs& a, torch::Tensor& cache_k, torch::Tensor& cache_v) {
  const int64_t N = a.qkv.size(0), H = a.heads, Hkv = a.kv_heads, D = a.head_dim, R = H / Hkv;
  const int64_t row_stride = a.qkv.stride(0), Tmax = cache_k.size(2);
  float* qkv = a.qkv.data_ptr<float>();
  T* kc = cache_k.data_ptr<T>();
  T* vc = cache_v.data_ptr<T>();
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
      const int64_t slot = a.slots ? a.slots[n] : a.slot_begin + n;
      for (int64_t g = 0; g < Hkv; ++g) {
        T* kd = kc + ((slot * Hkv + g) * Tmax + p) * D;
        T* vd = vc + ((slot * Hkv + g) * Tmax + p) * D;
        for (int64_t d = 0; d < D; ++d) {
          kd[d] = static_cast<T>(row[(H + g) * D + d]);
          vd[d] = static_cast<T>(row[(H + Hkv + g) * D + d]);
        }
      }
    }
  });
  // 2. Attention: the R query heads of each (row, key/value head) together, over positions 0..p of the slot.
  auto out = torch::empty({N, H * D}, torch::kFloat32);
  float* op = out.data_ptr<float>();
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  static const bool avx512 = (__builtin_cpu_init(), __builtin_cpu_supports("avx512f"));
  const bool fast = avx512 && D % 16 == 0;
  at::parallel_for(0, N * Hkv, 1, [&](int64_t b, int64_t e) {
    std::vector<float> s;
    std::vector<const float*> q(R);
    std::vector<float*> o(R);
    for (int64_t i = b; i < e; ++i) {
      const int64_t n = i / Hkv, g = i % Hkv, L = a.positions[n] + 1, slot = a.slots ? a.slots[n] : a.slot_begin + n;
      for (int64_t r = 0; r < R; ++r) {
        q[r] = qkv + n * row_stride + (g * R + r) * D;
        o[r] = op + n * H * D + (g * R + r) * D;
      }
      const T* K = kc + (slot * Hkv + g) * Tmax * D;
      const T* V = vc + (slot * Hkv + g) * Tmax * D;
      s.resize(R * L);
      if (fast)
        attend_group_avx512(q.data(), R, K, V, L, D, scale, o.data(), s.data());
      else
        attend_group(q.data(), R, K, V, L, D, scale, o.data(), s.data());
    }
  });
  return out;
}

}  // namespace

torch::Tensor decode_attention(const DecodeAttentionArgs& a, torch::Tensor& cache_k, torch::Tensor& cache_v) {
  if (cache_k.scalar_type() == torch::kBFloat16) return decode_attention_t<c10::BFloat16>(a, cache_k, cache_v);
  return decode_attention_t<float>(a, cache_k, cache_v);
}

}  // namespace rlaif
