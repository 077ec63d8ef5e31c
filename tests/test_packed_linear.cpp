// The packed kernels (AVX-512, and AVX2 + FMA in fp32) against libtorch's linear, and the packed model path against
// the plain one. Where the CPU has AVX-512 the fp32 checks run twice, the second time on the AVX2 kernels.
#include <torch/torch.h>
#include "model/packed_linear.h"
#include "rlaif/init_model.h"
#include "rlaif/model.h"

#include "test_util.h"

namespace {
double max_rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

// The fp32 kernel sets this CPU runs: its best, and the AVX2 ones as well where it has AVX-512.
std::vector<bool> avx2_choices() {
  if (std::string(rlaif::packed_kernel_isa(false)) == "AVX-512") return {false, true};
  return {false};
}

// Runs the AVX2 kernels while it lives (tests only).
struct ForceAvx2 {
  explicit ForceAvx2(bool on) { rlaif::packed_linear_force_avx2(on); }
  ~ForceAvx2() { rlaif::packed_linear_force_avx2(false); }
};
}  // namespace

TEST(PackedLinear, MatchesLinearForAwkwardShapes) {
  if (!rlaif::packed_linear_supported(false)) GTEST_SKIP() << "CPU without AVX-512 or AVX2 + FMA";
  torch::manual_seed(0);
  for (bool avx2 : avx2_choices())
    for (int64_t M : {1, 2, 3, 4, 5, 6, 7, 13, 64})
      for (int64_t N : {1, 16, 63, 64, 130})
        for (int64_t K : {1, 7, 64, 129}) {
          auto x = torch::randn({M, K}), w = torch::randn({N, K}), b = torch::randn({N});
          auto want = torch::nn::functional::linear(x, w, b);
          // fp32: same products, other summation order. Tolerance 1e-5 relative to the largest output.
          ForceAvx2 kernels(avx2);
          auto packed = rlaif::pack_linear(w, b, /*bf16=*/false);
          auto got = rlaif::packed_linear(x, packed);
          ASSERT_EQ(got.sizes(), want.sizes());
          EXPECT_LT(max_rel(got, want), 1e-5) << M << "x" << N << "x" << K << (avx2 ? " AVX2" : "");
          // The residual form adds y into the same pass.
          auto r = torch::randn({M, N});
          EXPECT_LT(max_rel(rlaif::packed_linear(x, packed, r), want + r), 1e-5) << M << "x" << N << "x" << K;
          if (avx2 || !rlaif::packed_linear_supported(true)) continue;
          // bf16: exactly the products of bf16-rounded inputs, accumulated in fp32.
          auto xr = x.to(torch::kBFloat16).to(torch::kFloat32), wr = w.to(torch::kBFloat16).to(torch::kFloat32);
          auto want16 = torch::nn::functional::linear(xr, wr, b);
          auto got16 = rlaif::packed_linear(x, rlaif::pack_linear(w, b, /*bf16=*/true));
          EXPECT_LT(max_rel(got16, want16), 1e-5) << "bf16 " << M << "x" << N << "x" << K;
        }
}

TEST(PackedLinear, KeepsLeadingDimensions) {
  if (!rlaif::packed_linear_supported(false)) GTEST_SKIP() << "CPU without AVX-512 or AVX2 + FMA";
  auto x = torch::randn({2, 3, 10}), w = torch::randn({5, 10});
  auto y = rlaif::packed_linear(x, rlaif::pack_linear(w, {}, false));
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 3, 5}));
  EXPECT_LT(max_rel(y, torch::matmul(x, w.t())), 1e-5);
}

TEST(PackedLinear, ModelPackedPathMatchesAndFollowsWeightUpdates) {
  if (!rlaif::packed_linear_supported(false)) GTEST_SKIP() << "CPU without AVX-512 or AVX2 + FMA";
  for (std::string arch : {"llama", "qwen2", "qwen3"}) {
    rlaif::InitModelOptions o;
    o.arch = arch;
    o.size = "hidden=64,layers=2,heads=4,kv_heads=2,intermediate=100,tied=0";
    torch::manual_seed(1);
    rlaif::CausalLM m(rlaif::init_model_config(o));
    torch::NoGradGuard g;
    for (auto& p : m->named_parameters()) p.value().normal_(p.key().find("norm") != std::string::npos ? 1.0 : 0.0, 0.1);
    auto ids = torch::randint(0, m->config().vocab_size, {2, 9});
    auto plain = m->forward(ids);
    ASSERT_TRUE(m->set_packed_inference(true, /*bf16=*/false));
    EXPECT_LT(max_rel(m->forward(ids), plain), 1e-5) << arch;
    // An in-place update of the weights is seen by the next packed forward.
    m->model->layers->at<rlaif::DecoderLayerImpl>(1).mlp->down_proj->weight.mul_(-1.0);
    m->set_packed_inference(false, false);
    auto updated = m->forward(ids);
    m->set_packed_inference(true, false);
    m->forward(ids);
    m->model->layers->at<rlaif::DecoderLayerImpl>(0).mlp->up_proj->weight.mul_(1.5);
    auto fast = m->forward(ids);
    m->set_packed_inference(false, false);
    EXPECT_LT(max_rel(fast, m->forward(ids)), 1e-5) << arch << ": stale packed weights";
    EXPECT_GT(max_rel(updated, plain), 1e-3);
    {  // With gradients recorded the plain path runs, so training sees autograd.
      torch::AutoGradMode grad(true);
      m->set_packed_inference(true, true);
      auto y = m->forward(ids);
      EXPECT_TRUE(y.requires_grad());
    }
  }
}

TEST(PackedLinear, FusedDecodeStepsMatchTheFullForward) {
  if (!rlaif::packed_linear_supported(false)) GTEST_SKIP() << "CPU without AVX-512 or AVX2 + FMA";
  // head_dim 16 takes the AVX-512 attention, 24 the portable one; a bf16 cache rounds keys and values to bf16
  // (tolerance 2e-2 relative to the largest logit, against 1e-4 with an fp32 cache).
  struct Case {
    std::string arch;
    int64_t head_dim;
    torch::ScalarType cache;
  };
  for (bool avx2 : avx2_choices())
    for (const Case& c : std::vector<Case>{{"llama", 16, torch::kFloat32},
                                           {"qwen2", 16, torch::kFloat32},
                                           {"qwen3", 16, torch::kFloat32},
                                           {"qwen3", 24, torch::kFloat32},
                                           {"llama", 16, torch::kBFloat16},
                                           {"qwen3", 24, torch::kBFloat16}}) {
      ForceAvx2 kernels(avx2);
      const std::string& arch = c.arch;
      rlaif::InitModelOptions o;
      o.arch = arch;
      o.size = "hidden=64,layers=2,heads=4,kv_heads=2,intermediate=100,head_dim=" + std::to_string(c.head_dim);
      torch::manual_seed(4);
      rlaif::CausalLM m(rlaif::init_model_config(o));
      torch::NoGradGuard g;
      for (auto& p : m->named_parameters())
        p.value().normal_(p.key().find("norm") != std::string::npos ? 1.0 : 0.0, 0.2);
      const int64_t T = 12, P = 4;
      auto ids = torch::randint(0, m->config().vocab_size, {2, T});
      auto full = m->forward(ids);  // plain path, [2, T, V]
      ASSERT_TRUE(m->set_packed_inference(true, /*bf16=*/false));
      rlaif::KVCache cache(m->config(), 3, 16, c.cache);
      for (int64_t r = 0; r < 2; ++r) {  // prefill rows into slots 1 and 2
        rlaif::CachedBatch b{ids[r].narrow(0, 0, P).view({1, P}), torch::arange(P).view({1, P}), 1 + r, P};
        m->forward_cached(b, cache);
      }
      for (int64_t t = P; t < T; ++t) {  // fused one-token steps over both slots at once
        rlaif::CachedBatch b{ids.narrow(1, t, 1), torch::full({2, 1}, t, torch::kInt64), 1, t + 1};
        auto logits = m->logits(m->forward_cached(b, cache)).squeeze(1);  // [2, V]
        EXPECT_LT(max_rel(logits, full.select(1, t)), c.cache == torch::kFloat32 ? 1e-4 : 2e-2)
            << arch << " head_dim " << c.head_dim << " position " << t << (avx2 ? " AVX2" : "");
      }
    }
}

TEST(PackedLinear, Bf16PackedModelStaysCloseToFp32) {
  // bf16 weights and activations with fp32 accumulation, bf16 KV cache: with weights ~N(0, 0.06) (activation scale kept
  // per layer, like a trained model) the logits stay within 3% relative RMS error of the fp32 plain path and the
  // argmax agrees on at least 85% of positions. Measured here: printed below.
  if (!rlaif::packed_linear_supported(true)) GTEST_SKIP() << "CPU without AVX512_BF16";
  rlaif::InitModelOptions o;
  o.size = "small";
  torch::manual_seed(8);
  rlaif::CausalLM m(rlaif::init_model_config(o));
  torch::NoGradGuard g;
  for (auto& p : m->named_parameters()) p.value().normal_(p.key().find("norm") != std::string::npos ? 1.0 : 0.0, 0.06);
  const int64_t T = 24, P = 8;
  auto ids = torch::randint(0, m->config().vocab_size, {1, T});
  auto ref = m->forward(ids)[0];  // [T, V] fp32 plain path
  ASSERT_TRUE(m->set_packed_inference(true, /*bf16=*/true));
  rlaif::KVCache cache(m->config(), 1, T, torch::kBFloat16);
  std::vector<torch::Tensor> rows;
  rlaif::CachedBatch pre{ids.narrow(1, 0, P), torch::arange(P).view({1, P}), 0, P};
  rows.push_back(m->logits(m->forward_cached(pre, cache))[0]);
  for (int64_t t = P; t < T; ++t) {
    rlaif::CachedBatch b{ids.narrow(1, t, 1), torch::full({1, 1}, t, torch::kInt64), 0, t + 1};
    rows.push_back(m->logits(m->forward_cached(b, cache))[0]);
  }
  auto got = torch::cat(rows);  // [T, V]
  double rel = ((got - ref).norm() / ref.norm()).item<double>();
  double agree = (got.argmax(-1) == ref.argmax(-1)).to(torch::kFloat32).mean().item<double>();
  std::printf("packed bf16 vs fp32: relative RMS error %.4f, argmax agreement %.3f\n", rel, agree);
  EXPECT_LT(rel, 0.03);
  EXPECT_GT(agree, 0.85);
}
