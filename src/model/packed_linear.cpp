// The kernels carry target attributes (AVX-512, or AVX2 + FMA for fp32) and are called only after a run-time CPU
// check: the build itself may target any x86-64.
#include "model/packed_linear.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <immintrin.h>

#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

namespace rlaif {
namespace {

constexpr int64_t kBlock = 16;         // output columns per zmm register
constexpr int64_t kBlocksPerTile = 4;  // 64 columns per tile
constexpr int kRowsPerTile = 6;        // 6 x 4 accumulators = 24 of the 32 zmm registers
constexpr int kRowsPerTileAvx2 = 3;    // AVX2: 3 x 4 accumulators of 8 columns, two passes per tile
constexpr int64_t kKBlockAvx2 = 64;    // 64 k x 64 columns x 4 bytes = 16 KB of weights, half of a 32 KB L1
// Past this many rows OpenBLAS's sgemm beats the AVX2 kernel (a prefill of 8 x 64 tokens: ~0.8x; docs/perf.md).
constexpr int64_t kMaxRowsAvx2 = 64;

// fp32: acc[m][j] += broadcast(x[m][k]) * W[block j][k][0:16].
// Every tile starts its accumulators from bias (+ y when `add`, the residual already in the output).
template <int MT>
__attribute__((target("avx512f,fma"))) void tile_f32(const float* x, int64_t ldx, const float* w, int64_t K,
                                                     const float* bias, float* y, int64_t ldy, bool add) {
  __m512 acc[MT][kBlocksPerTile];
  for (int j = 0; j < kBlocksPerTile; ++j) {
    __m512 b = _mm512_loadu_ps(bias + j * kBlock);
    for (int m = 0; m < MT; ++m) acc[m][j] = add ? _mm512_add_ps(b, _mm512_loadu_ps(y + m * ldy + j * kBlock)) : b;
  }
  constexpr int64_t kStep = kBlocksPerTile * kBlock;  // floats of W per k: one 256-byte line of the tile's stream
  for (int64_t k = 0; k < K; ++k) {
    const float* wk = w + k * kStep;
    __m512 wv[kBlocksPerTile];
    for (int j = 0; j < kBlocksPerTile; ++j) wv[j] = _mm512_load_ps(wk + j * kBlock);
    for (int m = 0; m < MT; ++m) {
      __m512 xv = _mm512_set1_ps(x[m * ldx + k]);
      for (int j = 0; j < kBlocksPerTile; ++j) acc[m][j] = _mm512_fmadd_ps(xv, wv[j], acc[m][j]);
    }
  }
  for (int m = 0; m < MT; ++m)
    for (int j = 0; j < kBlocksPerTile; ++j) _mm512_storeu_ps(y + m * ldy + j * kBlock, acc[m][j]);
}

// bf16: acc[m][j] += dot2(x[m][2p:2p+2], W[block j][p][0:16][0:2]) with fp32 accumulation.
template <int MT>
__attribute__((target("avx512f,avx512bf16"))) void tile_bf16(const uint16_t* x, int64_t ldx, const uint16_t* w,
                                                             int64_t Kp, const float* bias, float* y, int64_t ldy,
                                                             bool add) {
  __m512 acc[MT][kBlocksPerTile];
  for (int j = 0; j < kBlocksPerTile; ++j) {
    __m512 b = _mm512_loadu_ps(bias + j * kBlock);
    for (int m = 0; m < MT; ++m) acc[m][j] = add ? _mm512_add_ps(b, _mm512_loadu_ps(y + m * ldy + j * kBlock)) : b;
  }
  const int64_t pairs = Kp / 2;
  constexpr int64_t kStep = kBlocksPerTile * kBlock * 2;  // bf16 of W per pair of k: 256 bytes of the tile's stream
  for (int64_t p = 0; p < pairs; ++p) {
    const uint16_t* wp = w + p * kStep;
    __m512bh wv[kBlocksPerTile];
    for (int j = 0; j < kBlocksPerTile; ++j)
      wv[j] = (__m512bh)_mm512_load_si512(reinterpret_cast<const void*>(wp + j * kBlock * 2));
    for (int m = 0; m < MT; ++m) {
      int32_t two;
      std::memcpy(&two, x + m * ldx + 2 * p, 4);
      __m512bh xv = (__m512bh)_mm512_set1_epi32(two);
      for (int j = 0; j < kBlocksPerTile; ++j) acc[m][j] = _mm512_dpbf16_ps(acc[m][j], xv, wv[j]);
    }
  }
  for (int m = 0; m < MT; ++m)
    for (int j = 0; j < kBlocksPerTile; ++j) _mm512_storeu_ps(y + m * ldy + j * kBlock, acc[m][j]);
}

// AVX2 + FMA (16 ymm registers): the same packed layout, a tile's 64 columns as 8 blocks of 8. One row takes the whole
// tile in one pass (8 accumulators, the stream read in order); 2-3 rows take it in two passes of 32 columns (12
// accumulators and 3 broadcasts; the weights are FMA memory operands). With more rows than one call takes,
// packed_linear walks K in blocks of kKBlockAvx2 so that the later rows re-read the block from L1, not L2; a null
// `bias` starts from zero (the blocks after the first add onto y).
template <int MT, int kCols>
__attribute__((target("avx2,fma"))) void tile_f32_avx2_cols(const float* x, int64_t ldx, const float* w, int64_t K,
                                                            const float* bias, float* y, int64_t ldy, bool add) {
  constexpr int kJ = kCols / 8;
  constexpr int64_t kStep = kBlocksPerTile * kBlock;  // floats of W per k
  for (int c0 = 0; c0 < kStep; c0 += kCols) {
    __m256 acc[MT][kJ];
    for (int j = 0; j < kJ; ++j) {
      __m256 b = bias ? _mm256_loadu_ps(bias + c0 + j * 8) : _mm256_setzero_ps();
      for (int m = 0; m < MT; ++m) acc[m][j] = add ? _mm256_add_ps(b, _mm256_loadu_ps(y + m * ldy + c0 + j * 8)) : b;
    }
    for (int64_t k = 0; k < K; ++k) {
      const float* wk = w + k * kStep + c0;
      __m256 xv[MT];
      for (int m = 0; m < MT; ++m) xv[m] = _mm256_broadcast_ss(x + m * ldx + k);
      for (int j = 0; j < kJ; ++j) {
        __m256 wv = _mm256_load_ps(wk + j * 8);
        for (int m = 0; m < MT; ++m) acc[m][j] = _mm256_fmadd_ps(xv[m], wv, acc[m][j]);
      }
    }
    for (int m = 0; m < MT; ++m)
      for (int j = 0; j < kJ; ++j) _mm256_storeu_ps(y + m * ldy + c0 + j * 8, acc[m][j]);
  }
}
template <int MT>
void tile_f32_avx2(const float* x, int64_t ldx, const float* w, int64_t K, const float* bias, float* y, int64_t ldy,
                   bool add) {
  tile_f32_avx2_cols<MT, MT == 1 ? 64 : 32>(x, ldx, w, K, bias, y, ldy, add);
}

using TileF32 = void (*)(const float*, int64_t, const float*, int64_t, const float*, float*, int64_t, bool);
using TileBf16 = void (*)(const uint16_t*, int64_t, const uint16_t*, int64_t, const float*, float*, int64_t, bool);
const TileF32 kTilesF32[] = {nullptr, tile_f32<1>, tile_f32<2>, tile_f32<3>, tile_f32<4>, tile_f32<5>, tile_f32<6>};
const TileF32 kTilesF32Avx2[] = {nullptr, tile_f32_avx2<1>, tile_f32_avx2<2>, tile_f32_avx2<3>};

// The fp32 kernels this CPU runs: AVX-512 where it has it, else AVX2 (or a test's choice, see packed_linear.h).
std::atomic<bool> g_force_avx2{false};
bool fp32_avx512() {
  static const bool avx512 = (__builtin_cpu_init(), __builtin_cpu_supports("avx512f"));
  return avx512 && !g_force_avx2.load(std::memory_order_relaxed);
}
const TileBf16 kTilesBf16[] = {nullptr,      tile_bf16<1>, tile_bf16<2>, tile_bf16<3>,
                               tile_bf16<4>, tile_bf16<5>, tile_bf16<6>};

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }
size_t round_up(size_t a, size_t b) { return (a + b - 1) / b * b; }

// Packed weights are copied into shared chunks of memory aligned to 2 MiB and advised for transparent huge pages:
// the weights are streamed once per token, and with 4 KiB pages a 135M-parameter model costs ~65,000 TLB misses
// per token. One chunk holds many matrices (most projections are under 2 MiB: each alone would either waste most
// of a huge page or stay on 4 KiB pages — measured on one thread with each small matrix on huge pages of its own: a
// batch-1 token's kernels streamed 21.5 GB/s with only the large matrices on huge pages, 23.9 GB/s with all of
// them). A chunk is freed with the last tensor in it.
class HugePageArena {
 public:
  torch::Tensor copy(const torch::Tensor& t) {
    const size_t bytes = t.numel() * t.element_size();
    std::shared_ptr<Chunk> chunk;
    size_t offset = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!current_ || current_->used + bytes > current_->size) current_ = Chunk::make(std::max(kChunk, bytes));
      if (!current_) return t;  // no memory for a chunk: the tensor stays where it is
      chunk = current_;
      offset = chunk->used;
      chunk->used = round_up(offset + bytes, kAlign);
    }
    char* p = chunk->base + offset;
    std::memcpy(p, t.data_ptr(), bytes);
    return torch::from_blob(
        p, t.sizes(), [chunk](void*) {}, t.options());  // the deleter holds the chunk
  }

 private:
  static constexpr size_t kHuge = 2u << 20, kChunk = 32u << 20, kAlign = 4096;
  struct Chunk {
    char* base = nullptr;
    size_t size = 0, used = 0;
    static std::shared_ptr<Chunk> make(size_t bytes) {
      auto c = std::make_shared<Chunk>();
      c->size = round_up(bytes, kHuge);
      void* p = nullptr;
      if (posix_memalign(&p, kHuge, c->size) != 0) return nullptr;
      ::madvise(p, c->size, MADV_HUGEPAGE);  // a hint: without THP the memory is still ordinary
      c->base = static_cast<char*>(p);
      return c;
    }
    ~Chunk() { std::free(base); }
  };
  std::mutex mu_;
  std::shared_ptr<Chunk> current_;
};

torch::Tensor to_huge_pages(const torch::Tensor& t) {
  static HugePageArena* arena = new HugePageArena();  // never destroyed: tensors may outlive static destruction
  return arena->copy(t);
}

}  // namespace

void packed_linear_force_avx2(bool on) { g_force_avx2 = on; }

bool packed_linear_prefers(int64_t rows, bool bf16) { return bf16 || fp32_avx512() || rows <= kMaxRowsAvx2; }

PackedWeight pack_linear(const torch::Tensor& w_in, const torch::Tensor& bias, bool bf16) {
  TORCH_CHECK(w_in.dim() == 2, "pack_linear: weight must be 2-D");
  PackedWeight p;
  p.bf16 = bf16;
  p.n = w_in.size(0);
  p.k = w_in.size(1);
  p.n_pad = round_up(p.n, kBlock * kBlocksPerTile);
  p.k_pad = bf16 ? round_up(p.k, 2) : p.k;
  auto w = torch::zeros({p.n_pad, p.k_pad}, torch::kFloat32);
  w.narrow(0, 0, p.n).narrow(1, 0, p.k).copy_(w_in.detach().to(torch::kCPU, torch::kFloat32));
  // Each tile of 64 output columns is one sequential stream: k-major, then its 4 blocks of 16 columns.
  const int64_t tiles = p.n_pad / (kBlock * kBlocksPerTile);
  if (bf16) {
    // [tiles, 4, 16, Kp/2, 2] -> [tiles, Kp/2, 4, 16, 2]
    auto b = w.to(torch::kBFloat16)
                 .view({tiles, kBlocksPerTile, kBlock, p.k_pad / 2, 2})
                 .permute({0, 3, 1, 2, 4})
                 .contiguous();
    p.data = b.view(torch::kInt16);
  } else {
    // [tiles, 4, 16, K] -> [tiles, K, 4, 16]
    p.data = w.view({tiles, kBlocksPerTile, kBlock, p.k}).permute({0, 3, 1, 2}).contiguous();
  }
  p.data = to_huge_pages(p.data);
  p.bias = torch::zeros({p.n_pad}, torch::kFloat32);
  if (bias.defined()) p.bias.narrow(0, 0, p.n).copy_(bias.detach().to(torch::kCPU, torch::kFloat32));
  TORCH_CHECK(reinterpret_cast<uintptr_t>(p.data.data_ptr()) % 64 == 0, "pack_linear: data not 64-byte aligned");
  return p;
}

torch::Tensor packed_linear(const torch::Tensor& x_in, const PackedWeight& w, const torch::Tensor& residual) {
  TORCH_CHECK(x_in.size(-1) == w.k, "packed_linear: x has ", x_in.size(-1), " features, weight expects ", w.k);
  auto lead = x_in.sizes().vec();
  lead.pop_back();
  auto x = x_in.scalar_type() == torch::kFloat32 && x_in.is_contiguous() ? x_in : x_in.to(torch::kFloat32).contiguous();
  const int64_t M = x.numel() / w.k;
  // The residual is written straight into the output when no padding columns are needed.
  const bool add = residual.defined() && w.n_pad == w.n;
  torch::Tensor y;
  if (add) {
    TORCH_CHECK(residual.numel() == M * w.n && residual.scalar_type() == torch::kFloat32,
                "packed_linear: residual shape");
    y = residual.contiguous().clone();
  } else {
    y = torch::empty({M, w.n_pad}, torch::kFloat32);
  }
  const int64_t tiles = w.n_pad / (kBlock * kBlocksPerTile);
  const float* bias = w.bias.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const float* xf = x.data_ptr<float>();
  if (w.bf16) {
    // x rounded to bf16 (round to nearest even), rows padded to an even length.
    thread_local std::vector<uint16_t> xb;
    xb.assign(M * w.k_pad, 0);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < w.k; ++k) xb[m * w.k_pad + k] = c10::BFloat16(xf[m * w.k + k]).x;
    const uint16_t* xp = xb.data();
    const auto* wp = reinterpret_cast<const uint16_t*>(w.data.data_ptr());
    const int64_t tile_stride = kBlocksPerTile * kBlock * w.k_pad;
    at::parallel_for(0, tiles, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        for (int64_t m = 0; m < M; m += kRowsPerTile) {
          int mt = static_cast<int>(std::min<int64_t>(kRowsPerTile, M - m));
          kTilesBf16[mt](xp + m * w.k_pad, w.k_pad, wp + t * tile_stride, w.k_pad, bias + t * 64,
                         yp + m * w.n_pad + t * 64, w.n_pad, add);
        }
    });
  } else {
    const float* wp = w.data.data_ptr<float>();
    const int64_t tile_stride = kBlocksPerTile * kBlock * w.k;
    const bool avx512 = fp32_avx512();
    const TileF32* kernels = avx512 ? kTilesF32 : kTilesF32Avx2;
    const int64_t rows = avx512 ? kRowsPerTile : kRowsPerTileAvx2;
    const int64_t kb = avx512 || M <= rows ? w.k : kKBlockAvx2;  // K block (AVX2 with several row blocks)
    at::parallel_for(0, tiles, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        for (int64_t k0 = 0; k0 < w.k; k0 += kb)
          for (int64_t m = 0; m < M; m += rows) {
            int mt = static_cast<int>(std::min<int64_t>(rows, M - m));
            kernels[mt](xf + m * w.k + k0, w.k, wp + t * tile_stride + k0 * 64, std::min(kb, w.k - k0),
                        k0 == 0 ? bias + t * 64 : nullptr, yp + m * w.n_pad + t * 64, w.n_pad, add || k0 > 0);
          }
    });
  }
  lead.push_back(w.n);
  auto out = w.n_pad == w.n ? y : y.narrow(1, 0, w.n);
  out = out.view(lead);
  if (residual.defined() && !add) out = out + residual;
  return out;
}

}  // namespace rlaif
