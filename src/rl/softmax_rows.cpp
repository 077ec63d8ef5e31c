#include "rl/softmax_rows.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <cmath>

#include "core/simd_math.h"

namespace rlaif {
namespace {

std::atomic<bool> force_portable{false};

bool has_avx512() { return has_avx512_bw() && !force_portable; }

struct Stats {
  float lse, mu;
};

// Two passes: the row's max, then sum exp(x - max) and sum exp(x - max) (x - max).
template <typename T>
Stats row_stats_scalar(const T* z, int64_t V, float scale) {
  float mx = -INFINITY;
  for (int64_t v = 0; v < V; ++v) mx = std::max(mx, static_cast<float>(z[v]));
  const float m = scale * mx;
  double S = 0, ES = 0;
  for (int64_t v = 0; v < V; ++v) {
    const float x = scale * static_cast<float>(z[v]) - m, e = std::exp(x);
    S += e, ES += e * x;
  }
  return {m + static_cast<float>(std::log(S)), m + static_cast<float>(ES / S)};
}

template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) Stats row_stats_avx512(const T* z, int64_t V, float scale) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t v = 0; v < V; v += 16)
    mx = _mm512_mask_max_ps(mx, tail_mask(V - v), mx, load16(z + v, tail_mask(V - v)));
  const float m = scale * _mm512_reduce_max_ps(mx);
  const __m512 s = _mm512_set1_ps(scale), mv = _mm512_set1_ps(m);
  __m512 S = _mm512_setzero_ps(), ES = _mm512_setzero_ps();
  for (int64_t v = 0; v < V; v += 16) {
    const __mmask16 k = tail_mask(V - v);
    const __m512 x = _mm512_fmsub_ps(s, load16(z + v, k), mv);  // <= 0
    const __m512 e = _mm512_maskz_mov_ps(k, exp_avx512(x));
    S = _mm512_add_ps(S, e);
    ES = _mm512_fmadd_ps(e, x, ES);
  }
  const float sum = _mm512_reduce_add_ps(S);
  return {m + std::log(sum), m + _mm512_reduce_add_ps(ES) / sum};
}

// d/dz = scale * -p (gl + ge (x - mu)) everywhere, then the target's own term gl * scale added exactly.
template <typename T>
void row_grads_scalar(T* z, int64_t V, int64_t target, float scale, float lse, float mu, float gl, float ge) {
  const float zt = static_cast<float>(z[target]);
  for (int64_t v = 0; v < V; ++v) {
    const float x = scale * static_cast<float>(z[v]), p = std::exp(x - lse);
    z[v] = static_cast<T>(-scale * p * (gl + ge * (x - mu)));
  }
  const float xt = scale * zt, pt = std::exp(xt - lse);
  z[target] = static_cast<T>(scale * (gl * (1 - pt) - ge * pt * (xt - mu)));
}

template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void row_grads_avx512(T* z, int64_t V, int64_t target, float scale,
                                                                           float lse, float mu, float gl, float ge) {
  const float zt = static_cast<float>(z[target]);
  const __m512 s = _mm512_set1_ps(scale), l = _mm512_set1_ps(lse), m = _mm512_set1_ps(mu);
  const __m512 g = _mm512_set1_ps(gl), e = _mm512_set1_ps(ge), ns = _mm512_set1_ps(-scale);
  for (int64_t v = 0; v < V; v += 16) {
    const __mmask16 k = tail_mask(V - v);
    const __m512 x = _mm512_mul_ps(s, load16(z + v, k));
    const __m512 p = exp_avx512(_mm512_min_ps(_mm512_sub_ps(x, l), _mm512_setzero_ps()));  // x <= lse always
    const __m512 inner = _mm512_fmadd_ps(e, _mm512_sub_ps(x, m), g);
    store16(z + v, _mm512_mul_ps(ns, _mm512_mul_ps(p, inner)), k);
  }
  const float xt = scale * zt, pt = std::exp(std::min(xt - lse, 0.0f));
  z[target] = static_cast<T>(scale * (gl * (1 - pt) - ge * pt * (xt - mu)));
}

template <typename T>
void stats_t(const torch::Tensor& z, const int64_t* targets, float scale, float* logp, float* lse, float* mu,
             float* entropy) {
  const int64_t M = z.size(0), V = z.size(1);
  const T* zp = z.data_ptr<T>();
  const bool fast = has_avx512();
  at::parallel_for(0, M, 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* row = zp + r * V;
      Stats st = fast ? row_stats_avx512(row, V, scale) : row_stats_scalar(row, V, scale);
      lse[r] = st.lse, mu[r] = st.mu, entropy[r] = st.lse - st.mu;
      logp[r] = scale * static_cast<float>(row[targets[r]]) - st.lse;
    }
  });
}

template <typename T>
void grads_t(torch::Tensor& z, const int64_t* targets, float scale, const float* lse, const float* mu,
             const float* g_logp, const float* g_ent) {
  const int64_t M = z.size(0), V = z.size(1);
  T* zp = z.data_ptr<T>();
  const bool fast = has_avx512();
  at::parallel_for(0, M, 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float gl = g_logp ? g_logp[r] : 0.0f, ge = g_ent ? g_ent[r] : 0.0f;
      if (fast)
        row_grads_avx512(zp + r * V, V, targets[r], scale, lse[r], mu[r], gl, ge);
      else
        row_grads_scalar(zp + r * V, V, targets[r], scale, lse[r], mu[r], gl, ge);
    }
  });
}

}  // namespace

bool softmax_rows_force_portable(bool on) { return force_portable.exchange(on); }

void softmax_row_stats(const torch::Tensor& z, const int64_t* targets, float scale, float* logp, float* lse, float* mu,
                       float* entropy) {
  TORCH_CHECK(z.dim() == 2 && z.is_contiguous(), "softmax_row_stats: z must be a contiguous [M, V] tensor");
  if (z.scalar_type() == torch::kBFloat16)
    stats_t<c10::BFloat16>(z, targets, scale, logp, lse, mu, entropy);
  else
    stats_t<float>(z, targets, scale, logp, lse, mu, entropy);
}

void softmax_row_grads(torch::Tensor& z, const int64_t* targets, float scale, const float* lse, const float* mu,
                       const float* g_logp, const float* g_ent) {
  TORCH_CHECK(z.dim() == 2 && z.is_contiguous(), "softmax_row_grads: z must be a contiguous [M, V] tensor");
  if (z.scalar_type() == torch::kBFloat16)
    grads_t<c10::BFloat16>(z, targets, scale, lse, mu, g_logp, g_ent);
  else
    grads_t<float>(z, targets, scale, lse, mu, g_logp, g_ent);
}

}  // namespace rlaif
