#include "rlaif/cpu_features.h"

namespace rlaif {

bool packed_linear_supported(bool bf16) {
  __builtin_cpu_init();
  if (bf16) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
  return __builtin_cpu_supports("avx512f") || (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
}

const char* packed_kernel_isa(bool bf16) {
  if (!packed_linear_supported(bf16)) return "";
  if (bf16) return "AVX-512 BF16";
  return __builtin_cpu_supports("avx512f") ? "AVX-512" : "AVX2";
}

}  // namespace rlaif
