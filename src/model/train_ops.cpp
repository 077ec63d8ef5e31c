#include "model/train_ops.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "core/simd_math.h"

namespace rlaif {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// ---- RMSNorm: y = w x r, r = (mean(x^2) + eps)^-1/2;  dx = r w g - x r^3 / C * sum(g w x);  dw = sum_rows g x r.

class RmsNorm : public torch::autograd::Function<RmsNorm> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w, double eps,
                               bool bf16_out) {
    const int64_t C = x.size(-1), M = x.numel() / C;
    auto y = torch::empty_like(x, bf16_out ? torch::kBFloat16 : torch::kFloat32);
    auto r = torch::empty({M}, torch::kFloat32);
    const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>();
    float* rp = r.data_ptr<float>();
    at::parallel_for(0, M, 16, [&](int64_t b, int64_t e) {
      std::vector<float> row(bf16_out ? C : 0);
      for (int64_t m = b; m < e; ++m) {
        const float* xr = xp + m * C;
        float ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int64_t c = 0; c < C; ++c) ss += xr[c] * xr[c];
        const float inv = 1.0f / std::sqrt(ss / C + static_cast<float>(eps));
        rp[m] = inv;
        float* yr = bf16_out ? row.data() : y.data_ptr<float>() + m * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) yr[c] = wp[c] * (xr[c] * inv);
        if (bf16_out) {  // rounded once, as autocast's cast of the fp32 result would
          c10::BFloat16* yb = y.data_ptr<c10::BFloat16>() + m * C;
          for (int64_t c = 0; c < C; ++c) yb[c] = static_cast<c10::BFloat16>(yr[c]);
        }
      }
    });
    ctx->save_for_backward({x, w, r});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1], &r = saved[2];
    auto g = grads[0].to(torch::kFloat32).contiguous();
    const int64_t C = x.size(-1), M = x.numel() / C;
    auto dx = torch::empty_like(x);
    auto dw = torch::zeros({C}, torch::kFloat32);
    const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>(), *rp = r.data_ptr<float>(),
                *gp = g.data_ptr<float>();
    float *dxp = dx.data_ptr<float>(), *dwp = dw.data_ptr<float>();
    at::parallel_for(0, M, 16, [&](int64_t b, int64_t e) {  // dx: rows split between threads
      for (int64_t m = b; m < e; ++m) {
        const float *xr = xp + m * C, *gr = gp + m * C;
        const float inv = rp[m];
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t c = 0; c < C; ++c) s += gr[c] * wp[c] * xr[c];
        const float k = inv * inv * inv * s / C;
        float* dxr = dxp + m * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) dxr[c] = inv * wp[c] * gr[c] - k * xr[c];
      }
    });
    // dw: columns split between threads, each summed over the rows in order, so it does not depend on the thread
    // count (summing per-thread partial sums did: 1 and 2 threads gave different gradients).
    at::parallel_for(0, (C + 15) / 16, 1, [&](int64_t b, int64_t e) {
      const int64_t c0 = 16 * b, c1 = std::min(C, 16 * e);
      for (int64_t m = 0; m < M; ++m) {
        const float *xr = xp + m * C, *gr = gp + m * C;
        const float inv = rp[m];
#pragma omp simd
        for (int64_t c = c0; c < c1; ++c) dwp[c] += gr[c] * xr[c] * inv;
      }
    });
    return {dx, dw, torch::Tensor(), torch::Tensor()};
  }
};

// ---- Rotary embedding, rotate-half form, per head of D = 2h:
//   y[i] = x[i] c[i] - x[i+h] s[i]          dx[i]   = g[i] c[i] + g[i+h] s[i+h]
//   y[i+h] = x[i+h] c[i+h] + x[i] s[i+h]    dx[i+h] = g[i+h] c[i+h] - g[i] s[i]
// `inverse` applies the transpose (the backward pass): the same with s negated and its halves swapped.

// One head of D = 2h: y = rope(x) with this position's cos/sin rows (or its transpose when `inverse`).
template <typename T>
inline void rope_head(const T* x, const float* c, const float* s, T* y, int64_t D, bool inverse) {
  const int64_t h = D / 2;
  for (int64_t i = 0; i < h; ++i) {
    const float a = static_cast<float>(x[i]), bb = static_cast<float>(x[i + h]);
    if (!inverse) {
      y[i] = static_cast<T>(a * c[i] - bb * s[i]);
      y[i + h] = static_cast<T>(bb * c[i + h] + a * s[i + h]);
    } else {
      y[i] = static_cast<T>(a * c[i] + bb * s[i + h]);
      y[i + h] = static_cast<T>(bb * c[i + h] - a * s[i]);
    }
  }
}

template <typename T>
void rope_rows(const T* x, const float* cos, const float* sin, T* y, int64_t rows, int64_t heads, int64_t D,
               bool inverse) {
  at::parallel_for(0, rows, 16, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      for (int64_t k = 0; k < heads; ++k)
        rope_head(x + (r * heads + k) * D, cos + r * D, sin + r * D, y + (r * heads + k) * D, D, inverse);
  });
}

torch::Tensor rope_apply(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, bool inverse) {
  auto y = torch::empty_like(x);
  const int64_t D = x.size(-1), heads = x.size(-2), rows = x.numel() / (heads * D);
  if (x.scalar_type() == torch::kBFloat16)
    rope_rows(x.data_ptr<c10::BFloat16>(), cos.data_ptr<float>(), sin.data_ptr<float>(), y.data_ptr<c10::BFloat16>(),
              rows, heads, D, inverse);
  else
    rope_rows(x.data_ptr<float>(), cos.data_ptr<float>(), sin.data_ptr<float>(), y.data_ptr<float>(), rows, heads, D,
              inverse);
  return y;
}

class Rope : public torch::autograd::Function<Rope> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    return rope_apply(x, cos, sin, false);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    return {rope_apply(grads[0].contiguous(), saved[0], saved[1], true), torch::Tensor(), torch::Tensor()};
  }
};

// ---- The fused q/k/v projection's output split into attention's layout, rope applied to q and k:
//   qkv [N, T, (H + 2 Hkv) D] -> q [N, H, T, D], k [N, Hkv, T, D], v [N, Hkv, T, D] (each contiguous);
// backward writes d qkv in one pass (rope's transpose on dq and dk, dv copied; a part with no gradient is 0).

template <typename T>
void qkv_split_rows(T* qkv, T* q, T* k, T* v, const float* cos, const float* sin, int64_t N, int64_t T_, int64_t H,
                    int64_t Hkv, int64_t D, bool backward) {
  const int64_t F = (H + 2 * Hkv) * D;
  at::parallel_for(0, N * T_, 8, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t n = r / T_, t = r % T_;
      T* row = qkv + r * F;
      const float *c = cos + r * D, *s = sin + r * D;
      auto part = [&](T* heads_out, int64_t heads, int64_t offset, bool rotate) {  // [N, heads, T, D]
        for (int64_t j = 0; j < heads; ++j) {
          T* in_row = row + offset + j * D;
          if (!heads_out) {  // backward, no gradient for this part
            std::fill(in_row, in_row + D, static_cast<T>(0));
            continue;
          }
          T* in_head = heads_out + ((n * heads + j) * T_ + t) * D;
          if (rotate)
            rope_head(backward ? in_head : in_row, c, s, backward ? in_row : in_head, D, backward);
          else if (backward)
            std::copy(in_head, in_head + D, in_row);
          else
            std::copy(in_row, in_row + D, in_head);
        }
      };
      part(q, H, 0, true);
      part(k, Hkv, H * D, true);
      part(v, Hkv, (H + Hkv) * D, false);
    }
  });
}

template <typename T>
T* ptr_or_null(const torch::Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

class QkvRope : public torch::autograd::Function<QkvRope> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& qkv, const torch::Tensor& cos,
                               const torch::Tensor& sin, int64_t H, int64_t Hkv) {
    const int64_t N = qkv.size(0), T = qkv.size(1), D = qkv.size(2) / (H + 2 * Hkv);
    auto q = torch::empty({N, H, T, D}, qkv.options()), k = torch::empty({N, Hkv, T, D}, qkv.options()),
         v = torch::empty({N, Hkv, T, D}, qkv.options());
    if (qkv.scalar_type() == torch::kBFloat16)
      qkv_split_rows(qkv.data_ptr<c10::BFloat16>(), q.data_ptr<c10::BFloat16>(), k.data_ptr<c10::BFloat16>(),
                     v.data_ptr<c10::BFloat16>(), cos.data_ptr<float>(), sin.data_ptr<float>(), N, T, H, Hkv, D, false);
    else
      qkv_split_rows(qkv.data_ptr<float>(), q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(),
                     cos.data_ptr<float>(), sin.data_ptr<float>(), N, T, H, Hkv, D, false);
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["shape"] = std::vector<int64_t>{N, T, H, Hkv, D};
    ctx->saved_data["bf16"] = qkv.scalar_type() == torch::kBFloat16;
    ctx->set_materialize_grads(false);
    return {q, k, v};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto shape = ctx->saved_data["shape"].toIntVector();
    const int64_t N = shape[0], T = shape[1], H = shape[2], Hkv = shape[3], D = shape[4];
    const auto dtype = ctx->saved_data["bf16"].toBool() ? torch::kBFloat16 : torch::kFloat32;
    auto in = [&](const torch::Tensor& g) { return g.defined() ? g.to(dtype).contiguous() : g; };
    auto dq = in(grads[0]), dk = in(grads[1]), dv = in(grads[2]);
    auto dqkv = torch::empty({N, T, (H + 2 * Hkv) * D}, torch::TensorOptions().dtype(dtype));
    if (dtype == torch::kBFloat16)
      qkv_split_rows(dqkv.data_ptr<c10::BFloat16>(), ptr_or_null<c10::BFloat16>(dq), ptr_or_null<c10::BFloat16>(dk),
                     ptr_or_null<c10::BFloat16>(dv), saved[0].data_ptr<float>(), saved[1].data_ptr<float>(), N, T, H,
                     Hkv, D, true);
    else
      qkv_split_rows(dqkv.data_ptr<float>(), ptr_or_null<float>(dq), ptr_or_null<float>(dk), ptr_or_null<float>(dv),
                     saved[0].data_ptr<float>(), saved[1].data_ptr<float>(), N, T, H, Hkv, D, true);
    return {dqkv, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// ---- SwiGLU's gate: y = silu(g) u, silu(g) = g sig(g);  dg = dy u sig(g) (1 + g (1 - sig(g)));  du = dy silu(g).

__attribute__((target("avx512f"))) inline __m512 sigmoid16(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(x)));  // exp(-|x|)
  const __m512 pos = _mm512_div_ps(one, _mm512_add_ps(one, e));                       // sig(|x|)
  const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  return _mm512_mask_sub_ps(pos, neg, one, pos);  // sig(x) = 1 - sig(|x|) for x < 0
}

inline float sigmoid1(float x) { return 1.0f / (1.0f + std::exp(-x)); }

template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void swiglu_fwd_avx512(const T* g, const T* u, T* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    const __m512 x = load16(g + i, k);
    store16(y + i, _mm512_mul_ps(_mm512_mul_ps(x, sigmoid16(x)), load16(u + i, k)), k);
  }
}

template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void swiglu_bwd_avx512(const T* g, const T* u, const T* dy, T* dg,
                                                                            T* du, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    const __m512 x = load16(g + i, k), s = sigmoid16(x), d = load16(dy + i, k);
    const __m512 ds = _mm512_mul_ps(s, _mm512_fmadd_ps(x, _mm512_sub_ps(one, s), one));  // d silu / dg
    store16(dg + i, _mm512_mul_ps(_mm512_mul_ps(d, load16(u + i, k)), ds), k);
    store16(du + i, _mm512_mul_ps(d, _mm512_mul_ps(x, s)), k);
  }
}

// gu rows [g (I) | u (I)] -> y rows [I]; backward: d gu rows [dg | du].
template <typename T>
void swiglu_fwd(const T* gu, T* y, int64_t rows, int64_t I) {
  at::parallel_for(0, rows, std::max<int64_t>(1, (1 << 14) / I), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T *g = gu + r * 2 * I, *u = g + I;
      T* yr = y + r * I;
      if (has_avx512_bw()) {
        swiglu_fwd_avx512(g, u, yr, I);
        continue;
      }
      for (int64_t i = 0; i < I; ++i) {
        const float x = static_cast<float>(g[i]);
        yr[i] = static_cast<T>(x * sigmoid1(x) * static_cast<float>(u[i]));
      }
    }
  });
}

template <typename T>
void swiglu_bwd(const T* gu, const T* dy, T* dgu, int64_t rows, int64_t I) {
  at::parallel_for(0, rows, std::max<int64_t>(1, (1 << 14) / I), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T *g = gu + r * 2 * I, *u = g + I, *d = dy + r * I;
      T *dg = dgu + r * 2 * I, *du = dg + I;
      if (has_avx512_bw()) {
        swiglu_bwd_avx512(g, u, d, dg, du, I);
        continue;
      }
      for (int64_t i = 0; i < I; ++i) {
        const float x = static_cast<float>(g[i]), s = sigmoid1(x), dd = static_cast<float>(d[i]);
        dg[i] = static_cast<T>(dd * static_cast<float>(u[i]) * s * (1 + x * (1 - s)));
        du[i] = static_cast<T>(dd * x * s);
      }
    }
  });
}

class SwiGlu : public torch::autograd::Function<SwiGlu> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& gu) {
    const int64_t I = gu.size(-1) / 2, rows = gu.numel() / (2 * I);
    auto sizes = gu.sizes().vec();
    sizes.back() = I;
    auto y = torch::empty(sizes, gu.options());
    if (gu.scalar_type() == torch::kBFloat16)
      swiglu_fwd(gu.data_ptr<c10::BFloat16>(), y.data_ptr<c10::BFloat16>(), rows, I);
    else
      swiglu_fwd(gu.data_ptr<float>(), y.data_ptr<float>(), rows, I);
    ctx->save_for_backward({gu});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto gu = ctx->get_saved_variables()[0];
    const int64_t I = gu.size(-1) / 2, rows = gu.numel() / (2 * I);
    auto dy = grads[0].to(gu.scalar_type()).contiguous();
    auto dgu = torch::empty_like(gu);
    if (gu.scalar_type() == torch::kBFloat16)
      swiglu_bwd(gu.data_ptr<c10::BFloat16>(), dy.data_ptr<c10::BFloat16>(), dgu.data_ptr<c10::BFloat16>(), rows, I);
    else
      swiglu_bwd(gu.data_ptr<float>(), dy.data_ptr<float>(), dgu.data_ptr<float>(), rows, I);
    return {dgu};
  }
};

// ---- Attention's masked softmax: p = softmax(scale s) over allowed keys;  ds = scale p (dp - sum(dp p)).

// The tail lanes from key l on that exist and whose key is allowed.
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __mmask16 allowed_lanes(const bool* ok, int64_t l,
                                                                                    int64_t L) {
  const __mmask16 k = tail_mask(L - l);
  return static_cast<__mmask16>(_mm_mask_cmpneq_epi8_mask(k, _mm_maskz_loadu_epi8(k, ok + l), _mm_setzero_si128()));
}

template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void masked_softmax_row_avx512(const T* s, const bool* ok, T* p,
                                                                                    int64_t L, float scale, float* e) {
  const __m512 sc = _mm512_set1_ps(scale);
  __m512 mx = _mm512_set1_ps(-INFINITY);
  __mmask16 any = 0;
  for (int64_t l = 0; l < L; l += 16) {
    const __mmask16 k = allowed_lanes(ok, l, L);
    any |= k;
    mx = _mm512_mask_max_ps(mx, k, mx, _mm512_mul_ps(sc, load16(s + l, k)));
  }
  if (!any) {  // no allowed key: uniform, like softmax over equal masked scores
    for (int64_t l = 0; l < L; ++l) p[l] = static_cast<T>(1.0f / L);
    return;
  }
  const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t l = 0; l < L; l += 16) {
    const __mmask16 k = allowed_lanes(ok, l, L);
    const __m512 x = _mm512_maskz_mov_ps(
        k, exp_avx512(_mm512_min_ps(_mm512_fmsub_ps(sc, load16(s + l, k), m), _mm512_setzero_ps())));
    _mm512_mask_storeu_ps(e + l, tail_mask(L - l), x);
    sum = _mm512_add_ps(sum, x);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
  for (int64_t l = 0; l < L; l += 16) {
    const __mmask16 k = tail_mask(L - l);
    store16(p + l, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, e + l), inv), k);
  }
}

template <typename T>
void masked_softmax_row(const T* s, const bool* ok, T* p, int64_t L, float scale, float* e) {
  float mx = -INFINITY;
  for (int64_t l = 0; l < L; ++l)
    if (ok[l]) mx = std::max(mx, scale * static_cast<float>(s[l]));
  if (mx == -INFINITY) {
    for (int64_t l = 0; l < L; ++l) p[l] = static_cast<T>(1.0f / L);
    return;
  }
  float sum = 0;
  for (int64_t l = 0; l < L; ++l) sum += (e[l] = ok[l] ? std::exp(scale * static_cast<float>(s[l]) - mx) : 0.0f);
  for (int64_t l = 0; l < L; ++l) p[l] = static_cast<T>(e[l] / sum);
}

template <typename T>
void masked_softmax_rows(const T* s, const bool* allowed, T* p, int64_t N, int64_t GR, int64_t TT, int64_t L,
                         float scale) {
  const bool fast = has_avx512_bw();
  at::parallel_for(0, N * GR, 1, [&](int64_t b, int64_t e) {
    std::vector<float> scratch(L + 16);
    for (int64_t i = b; i < e; ++i) {
      const int64_t n = i / GR;
      for (int64_t t = 0; t < TT; ++t) {
        const int64_t row = i * TT + t;
        const bool* ok = allowed + (n * TT + t) * L;
        if (fast)
          masked_softmax_row_avx512(s + row * L, ok, p + row * L, L, scale, scratch.data());
        else
          masked_softmax_row(s + row * L, ok, p + row * L, L, scale, scratch.data());
      }
    }
  });
}

// Masked keys get no gradient (in a row with no allowed key too, where p is uniform).
template <typename T>
void softmax_grad_rows(const T* p, const T* dp, const bool* allowed, T* ds, int64_t N, int64_t GR, int64_t TT,
                       int64_t L, float scale) {
  at::parallel_for(0, N * GR * TT, 64, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T *pr = p + r * L, *dr = dp + r * L;
      const bool* ok = allowed + ((r / (GR * TT)) * TT + r % TT) * L;
      float dot = 0;
      for (int64_t l = 0; l < L; ++l) dot += static_cast<float>(pr[l]) * static_cast<float>(dr[l]);
      T* out = ds + r * L;
      for (int64_t l = 0; l < L; ++l)
        out[l] = static_cast<T>(ok[l] ? scale * static_cast<float>(pr[l]) * (static_cast<float>(dr[l]) - dot) : 0.0f);
    }
  });
}

class MaskedSoftmax : public torch::autograd::Function<MaskedSoftmax> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& s, const torch::Tensor& allowed,
                               double scale) {
    const int64_t N = s.size(0), GR = s.size(1) * s.size(2), TT = s.size(3), L = s.size(4);
    auto p = torch::empty_like(s);
    if (s.scalar_type() == torch::kBFloat16)
      masked_softmax_rows(s.data_ptr<c10::BFloat16>(), allowed.data_ptr<bool>(), p.data_ptr<c10::BFloat16>(), N, GR, TT,
                          L, static_cast<float>(scale));
    else
      masked_softmax_rows(s.data_ptr<float>(), allowed.data_ptr<bool>(), p.data_ptr<float>(), N, GR, TT, L,
                          static_cast<float>(scale));
    ctx->save_for_backward({p, allowed});
    ctx->saved_data["scale"] = scale;
    return p;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &p = saved[0], &allowed = saved[1];
    const float scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    auto dp = grads[0].to(p.scalar_type()).contiguous();
    auto ds = torch::empty_like(p);
    const int64_t N = p.size(0), GR = p.size(1) * p.size(2), TT = p.size(3), L = p.size(4);
    const bool* ok = allowed.data_ptr<bool>();
    if (p.scalar_type() == torch::kBFloat16)
      softmax_grad_rows(p.data_ptr<c10::BFloat16>(), dp.data_ptr<c10::BFloat16>(), ok, ds.data_ptr<c10::BFloat16>(), N,
                        GR, TT, L, scale);
    else
      softmax_grad_rows(p.data_ptr<float>(), dp.data_ptr<float>(), ok, ds.data_ptr<float>(), N, GR, TT, L, scale);
    return {ds, torch::Tensor(), torch::Tensor()};
  }
};

// ---- Dropout with a hashed mask: element j is kept when the j-th 32-bit draw of a splitmix64 stream seeded from
// libtorch's generator is >= p 2^32; kept elements are scaled by 1 / (1 - p). Backward applies the same mask to the
// gradient, so nothing but the seed is stored, and the mask does not depend on the thread count.

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;  // the stream's increment

inline uint64_t splitmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// y = keep ? x * scale : 0 (or y += that, with `accumulate`), keep = the element's half of a splitmix64 hash of
// the seed and its pair's index >= threshold.
template <typename T>
void dropout_portable(const T* x, T* y, int64_t n, uint64_t seed, uint32_t threshold, float scale, bool accumulate) {
  at::parallel_for(0, (n + 1) / 2, 1 << 13, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const uint64_t h = splitmix64(seed + static_cast<uint64_t>(i + 1) * kGolden);
      for (int64_t k = 0; k < 2 && 2 * i + k < n; ++k) {
        const int64_t j = 2 * i + k;
        const bool keep = static_cast<uint32_t>(h >> (32 * k)) >= threshold;
        const float v = keep ? static_cast<float>(x[j]) * scale : 0.0f;
        y[j] = static_cast<T>(accumulate ? static_cast<float>(y[j]) + v : v);
      }
    }
  });
}

// The same, 16 elements (8 hashes, 64-bit lanes) at a time, over blocks [b, e) of 16: the 32-bit halves of the 8
// hashes, in memory order, are the draws of elements 16 blk .. 16 blk + 15, so the mask is bit-identical to the
// portable loop's. (A function of its own, not a lambda: a lambda does not inherit its enclosing function's target.)
template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) void dropout_blocks_avx512(const T* x, T* y, int64_t n,
                                                                                         int64_t b, int64_t e,
                                                                                         uint64_t seed,
                                                                                         uint32_t threshold,
                                                                                         float scale, bool accumulate) {
  const __m512i lanes = _mm512_setr_epi64(1, 2, 3, 4, 5, 6, 7, 8);
  const __m512i thr = _mm512_set1_epi32(static_cast<int>(threshold));
  const __m512 sc = _mm512_set1_ps(scale);
  for (int64_t blk = b; blk < e; ++blk) {
    const int64_t j = 16 * blk;
    const __mmask16 k = tail_mask(n - j);
    __m512i z = _mm512_add_epi64(_mm512_set1_epi64(static_cast<int64_t>(8 * blk)), lanes);  // pair index + 1
    z = _mm512_add_epi64(_mm512_set1_epi64(static_cast<int64_t>(seed)),
                         _mm512_mullo_epi64(z, _mm512_set1_epi64(static_cast<int64_t>(kGolden))));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                           _mm512_set1_epi64(static_cast<int64_t>(0xbf58476d1ce4e5b9ULL)));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                           _mm512_set1_epi64(static_cast<int64_t>(0x94d049bb133111ebULL)));
    z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
    const __mmask16 keep = _mm512_cmpge_epu32_mask(z, thr);
    __m512 v = _mm512_maskz_mul_ps(keep, load16(x + j, k), sc);
    if (accumulate) v = _mm512_add_ps(load16(y + j, k), v);
    store16(y + j, v, k);
  }
}

template <typename T>
void dropout_avx512(const T* x, T* y, int64_t n, uint64_t seed, uint32_t threshold, float scale, bool accumulate) {
  at::parallel_for(0, (n + 15) / 16, 1 << 10, [&](int64_t b, int64_t e) {
    dropout_blocks_avx512(x, y, n, b, e, seed, threshold, scale, accumulate);
  });
}

std::atomic<bool> dropout_portable_only{false};

bool dropout_has_avx512() {
  static const bool yes = has_avx512_bw() && (__builtin_cpu_init(), __builtin_cpu_supports("avx512dq"));
  return yes && !dropout_portable_only;
}

template <typename T>
void dropout_apply(const T* x, T* y, int64_t n, uint64_t seed, uint32_t threshold, float scale, bool accumulate) {
  if (dropout_has_avx512())
    dropout_avx512(x, y, n, seed, threshold, scale, accumulate);
  else
    dropout_portable(x, y, n, seed, threshold, scale, accumulate);
}

void dropout_into(const torch::Tensor& x, torch::Tensor& y, uint64_t seed, double p, bool accumulate) {
  auto xc = x.contiguous();
  TORCH_CHECK(y.is_contiguous() && y.scalar_type() == xc.scalar_type() && y.numel() == xc.numel(),
              "dropout: the output must be contiguous with the input's dtype and size");
  const auto threshold = static_cast<uint32_t>(std::min(p * 4294967296.0, 4294967295.0));
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  if (xc.scalar_type() == torch::kBFloat16)
    dropout_apply(xc.data_ptr<c10::BFloat16>(), y.data_ptr<c10::BFloat16>(), xc.numel(), seed, threshold, scale,
                  accumulate);
  else
    dropout_apply(xc.data_ptr<float>(), y.data_ptr<float>(), xc.numel(), seed, threshold, scale, accumulate);
}

class HashedDropout : public torch::autograd::Function<HashedDropout> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, double p) {
    const auto seed = draw_dropout_seed();
    ctx->saved_data["seed"] = static_cast<int64_t>(seed);
    ctx->saved_data["p"] = p;
    return dropout_with_seed(x, seed, p);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto seed = static_cast<uint64_t>(ctx->saved_data["seed"].toInt());
    return {dropout_with_seed(grads[0], seed, ctx->saved_data["p"].toDouble()), torch::Tensor()};
  }
};

}  // namespace

bool dropout_force_portable(bool on) { return dropout_portable_only.exchange(on); }

uint64_t draw_dropout_seed() {
  return static_cast<uint64_t>(torch::randint(std::numeric_limits<int64_t>::max(), {1}, torch::kInt64).item<int64_t>());
}

torch::Tensor dropout_with_seed(const torch::Tensor& x, uint64_t seed, double p) {
  auto y = torch::empty(x.sizes(), x.options().memory_format(torch::MemoryFormat::Contiguous));
  dropout_into(x, y, seed, p, /*accumulate=*/false);
  return y;
}

void dropout_with_seed_add_(torch::Tensor& acc, const torch::Tensor& x, uint64_t seed, double p) {
  dropout_into(x, acc, seed, p, /*accumulate=*/true);
}

torch::Tensor rms_norm_fused(const torch::Tensor& x, const torch::Tensor& weight, double eps, bool bf16_out) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat32 && x.is_contiguous() && weight.scalar_type() == torch::kFloat32,
              "rms_norm_fused: fp32 contiguous input and weight");
  return RmsNorm::apply(x, weight, eps, bf16_out);
}

torch::Tensor rope_fused(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  TORCH_CHECK(x.dim() == 4 && x.is_contiguous() && x.size(-1) % 2 == 0 &&
                  (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16) &&
                  cos.scalar_type() == torch::kFloat32 && sin.scalar_type() == torch::kFloat32 && cos.is_contiguous() &&
                  sin.is_contiguous() && cos.numel() == x.size(0) * x.size(1) * x.size(3),
              "rope_fused: x [N, T, heads, D] fp32/bf16 contiguous, cos/sin [N, T, 1, D] fp32 contiguous");
  return Rope::apply(x, cos, sin);
}

torch::Tensor dropout_fused(const torch::Tensor& x, double p) {
  TORCH_CHECK((x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16) && p >= 0 && p < 1,
              "dropout_fused: fp32/bf16 input, 0 <= p < 1");
  return HashedDropout::apply(x, p);
}

torch::Tensor swiglu_fused(const torch::Tensor& gu) {
  TORCH_CHECK(gu.dim() >= 1 && gu.size(-1) % 2 == 0 && gu.is_contiguous() &&
                  (gu.scalar_type() == torch::kFloat32 || gu.scalar_type() == torch::kBFloat16),
              "swiglu_fused: gu [..., 2 I] (gate then up) fp32/bf16 contiguous");
  return SwiGlu::apply(gu);
}

std::vector<torch::Tensor> qkv_rope_fused(const torch::Tensor& qkv, const torch::Tensor& cos, const torch::Tensor& sin,
                                          int64_t heads, int64_t kv_heads) {
  TORCH_CHECK(qkv.dim() == 3 && qkv.is_contiguous() && qkv.size(2) % (heads + 2 * kv_heads) == 0 &&
                  (qkv.size(2) / (heads + 2 * kv_heads)) % 2 == 0 &&
                  (qkv.scalar_type() == torch::kFloat32 || qkv.scalar_type() == torch::kBFloat16) &&
                  cos.scalar_type() == torch::kFloat32 && sin.scalar_type() == torch::kFloat32 && cos.is_contiguous() &&
                  sin.is_contiguous() &&
                  cos.numel() == qkv.size(0) * qkv.size(1) * (qkv.size(2) / (heads + 2 * kv_heads)),
              "qkv_rope_fused: qkv [N, T, (H + 2 Hkv) D] fp32/bf16 contiguous, cos/sin [N, T, 1, D] fp32 contiguous");
  return QkvRope::apply(qkv, cos, sin, heads, kv_heads);
}

torch::Tensor masked_softmax_fused(const torch::Tensor& scores, const torch::Tensor& allowed, double scale) {
  TORCH_CHECK(scores.dim() == 5 && scores.is_contiguous() &&
                  (scores.scalar_type() == torch::kFloat32 || scores.scalar_type() == torch::kBFloat16) &&
                  allowed.scalar_type() == torch::kBool && allowed.is_contiguous() && allowed.dim() == 3 &&
                  allowed.size(0) == scores.size(0) && allowed.size(1) == scores.size(3) &&
                  allowed.size(2) == scores.size(4),
              "masked_softmax_fused: scores [N, G, R, T, L] fp32/bf16 contiguous, allowed [N, T, L] bool contiguous");
  return MaskedSoftmax::apply(scores, allowed, scale);
}

}  // namespace rlaif
