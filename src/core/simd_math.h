// AVX-512 building blocks shared by the hand-written CPU kernels (internal): a fast exp for x <= 0 and 16-lane
// loads/stores of fp32 or bf16 rows. Callers check __builtin_cpu_supports("avx512f") before using them.
#pragma once

#include <c10/util/BFloat16.h>
#include <immintrin.h>

#include <cstdint>

namespace rlaif {

// Whether the CPU runs the kernels below that need AVX-512 F, BW and VL (the bf16 stores, byte masks).
inline bool has_avx512_bw() {
  static const bool yes =
      (__builtin_cpu_init(),
       __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"));
  return yes;
}

// The lanes of a 16-wide step that exist when `left` elements remain.
inline __mmask16 tail_mask(int64_t left) { return static_cast<__mmask16>(left >= 16 ? 0xFFFF : (1u << left) - 1); }

// exp(x) for x <= 0 (softmax after subtracting the max): 2^n * p(f), f = x - n ln2 in [-ln2/2, ln2/2], degree-6
// polynomial, relative error < 2e-7. Inputs below -87 give exp(-87) ~ 1.6e-38, not 0.
__attribute__((target("avx512f"))) inline __m512 exp_avx512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
  __m512 f = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  f = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), f);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

__attribute__((target("avx512f"))) inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
__attribute__((target("avx512f"))) inline __m512 load16(const c10::BFloat16* p) {  // bf16 -> fp32 is a shift
  __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
// The first k (< 16) lanes; the rest are 0.
__attribute__((target("avx512f"))) inline __m512 load16(const float* p, __mmask16 k) {
  return _mm512_maskz_loadu_ps(k, p);
}
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 load16(const c10::BFloat16* p, __mmask16 k) {
  __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

__attribute__((target("avx512f"))) inline void store16(float* p, __m512 v, __mmask16 k = 0xFFFF) {
  _mm512_mask_storeu_ps(p, k, v);
}
// fp32 -> bf16 rounding to nearest even, as c10::BFloat16's constructor does for finite values.
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline void store16(c10::BFloat16* p, __m512 v,
                                                                         __mmask16 k = 0xFFFF) {
  __m512i b = _mm512_castps_si512(v);
  __m512i odd = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
  b = _mm512_add_epi32(b, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF)));
  _mm256_mask_storeu_epi16(p, k, _mm512_cvtepi32_epi16(_mm512_srli_epi32(b, 16)));
}

}  // namespace rlaif
