// What this CPU can run, asked at run time (the kernels dispatch on it; the build may target any x86-64).
#pragma once

namespace rlaif {

// True when this CPU runs the packed inference kernels: fp32 needs AVX-512F or AVX2 + FMA, bf16 needs AVX-512F and
// AVX512_BF16. The trainer's bf16 "auto" follows the bf16 test.
bool packed_linear_supported(bool bf16);
// The instruction set those kernels use here ("AVX-512", "AVX2", "AVX-512 BF16"), "" when unsupported: for messages.
const char* packed_kernel_isa(bool bf16);

}  // namespace rlaif
