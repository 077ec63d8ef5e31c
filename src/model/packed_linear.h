// Fast inference matmul for the generator (internal to the model part; the kernel tests and benchmarks use it too): y =
// x W^T + b with W pre-packed for AVX-512 or, in fp32, for AVX2 + FMA (the kernels are chosen at run time).
//
// libtorch's CPU linear goes through OpenBLAS, whose small-M kernels (decode: M = sequences in the batch) reach a
// fraction of the machine's bandwidth and FLOPs (docs/perf.md). PackedWeight stores W once in tiles of 64 output
// columns, each one sequential stream — [N/64][K][4][16] fp32, or [N/64][K/2][4][16][2] bf16 for vdpbf16ps — so the
// kernel keeps up to 6 rows x 64 columns of y in registers, streams the weights once per tile (prefetched ahead)
// and needs no horizontal reductions.
// bf16 mode rounds x to bf16 and accumulates in fp32 (the numerics of oneDNN's bf16 matmul); it needs AVX512_BF16.
// Without AVX-512 the fp32 kernel holds 1-3 rows x 64 (or 32) columns in the 16 ymm registers and makes the same
// one pass over the weights from memory: on an AVX2-only CPU OpenBLAS's small-M path packs W again on every call
// (decode at 1 / 8 sequences: 13.5 / 60.1 tok/s through OpenBLAS, 39.1 / 127.2 packed; docs/perf.md).
#pragma once

#include <torch/torch.h>

#include "rlaif/model.h"  // packed_linear_supported

namespace rlaif {

struct PackedWeight {
  torch::Tensor data;  // packed weights (fp32 or bf16 bits as int16), 64-byte aligned blocks
  torch::Tensor bias;  // [Npad] fp32 (zeros when the layer has none)
  int64_t n = 0, k = 0, n_pad = 0, k_pad = 0;
  bool bf16 = false;
  bool defined() const { return data.defined(); }
};

// Packs w [N, K] (any float dtype) and optional bias [N].
PackedWeight pack_linear(const torch::Tensor& w, const torch::Tensor& bias, bool bf16);

// x [..., K] fp32 -> [..., N] fp32. No autograd: for inference only. With `residual` ([..., N] fp32, contiguous),
// returns residual + x W^T + b in the same pass (the residual connection of a transformer block).
torch::Tensor packed_linear(const torch::Tensor& x, const PackedWeight& w, const torch::Tensor& residual = {});

// Whether packed_linear is the faster way to multiply `rows` rows here: always with AVX-512; with AVX2 only up to 64
// rows (decode steps and short prefills), above which libtorch's OpenBLAS sgemm was measured faster.
bool packed_linear_prefers(int64_t rows, bool bf16);

// Tests: runs the AVX2 fp32 kernels even on a CPU with AVX-512, so that both are checked where both can run.
void packed_linear_force_avx2(bool on);

}  // namespace rlaif
