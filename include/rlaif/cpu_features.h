// What this CPU can run, asked at run time (the kernels dispatch on it; the build may target any x86-64).
#pragma once

namespace rlaif {

// True when this CPU runs the packed inference kernels (AVX-512F; bf16 also needs AVX512_BF16). The trainer's bf16
// "auto" follows the same test.
bool packed_linear_supported(bool bf16);

}  // namespace rlaif
