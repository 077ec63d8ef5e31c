#include "rlaif/cpu_features.h"

namespace rlaif {

bool packed_linear_supported(bool bf16) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f")) return false;
  return !bf16 || __builtin_cpu_supports("avx512bf16");
}

}  // namespace rlaif
