// The transformer's parts against hand-computed cases, and the KV-cache path against the full-sequence forward.
#include <cmath>
#include <limits>

#include "model/train_ops.h"
#include "rlaif/init_model.h"
#include "rlaif/model_folder.h"
#include <torch/torch.h>

#include "test_util.h"

using rlaif_test::TempDir;

namespace {

rlaif::CausalLM tiny(const std::string& arch, const std::string& size = "tiny", double std = 0.3) {
  rlaif::InitModelOptions o;
  o.arch = arch;
  o.size = size;
  o.seed = 11;
  torch::manual_seed(11);
  rlaif::CausalLM m(rlaif::init_model_config(o));
  torch::NoGradGuard g;
  for (auto& p : m->named_parameters()) p.value().normal_(p.key().find("norm") != std::string::npos ? 1.0 : 0.0, std);
  m->eval();
  return m;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST(Transformer, RmsNormHandComputed) {
  rlaif::RMSNorm norm(4, 1e-6);
  norm->weight.data().copy_(torch::tensor({1.0f, 0.5f, 2.0f, 1.0f}));
  auto y = norm(torch::tensor({{1.0f, 2.0f, 3.0f, 4.0f}}));
  const double r = 1.0 / std::sqrt(7.5 + 1e-6);  // mean of squares = 30 / 4
  const double want[4] = {1 * r, 0.5 * 2 * r, 2 * 3 * r, 4 * r};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[0][i].item<double>(), want[i], 1e-6);
}

TEST(Transformer, RopeHandComputed) {
  // D = 4, theta = 100: frequencies 1 and 0.1. Pairs are (0, 2) and (1, 3) (rotate-half layout).
  nlohmann::json j = {{"model_type", "llama"},  {"vocab_size", 8},        {"hidden_size", 8},
                      {"intermediate_size", 8}, {"num_hidden_layers", 1}, {"num_attention_heads", 2},
                      {"rope_theta", 100.0}};
  auto cfg = rlaif::ModelConfig::from_json(j, "test");
  auto inv = rlaif::rope_inv_freq(cfg);
  ASSERT_EQ(inv.size(0), 2);
  EXPECT_NEAR(inv[0].item<double>(), 1.0, 1e-7);
  EXPECT_NEAR(inv[1].item<double>(), 0.1, 1e-7);
  const double pos = 3;
  auto ang = torch::tensor({pos * 1.0, pos * 0.1, pos * 1.0, pos * 0.1}, torch::kFloat32).view({1, 1, 1, 4});
  auto x = torch::tensor({0.5f, -1.0f, 2.0f, 0.25f}).view({1, 1, 1, 4});
  auto y = rlaif::apply_rope(x, ang.cos(), ang.sin());
  const double c0 = std::cos(3.0), s0 = std::sin(3.0), c1 = std::cos(0.3), s1 = std::sin(0.3);
  EXPECT_NEAR(y.flatten()[0].item<double>(), 0.5 * c0 - 2.0 * s0, 1e-6);
  EXPECT_NEAR(y.flatten()[2].item<double>(), 2.0 * c0 + 0.5 * s0, 1e-6);
  EXPECT_NEAR(y.flatten()[1].item<double>(), -1.0 * c1 - 0.25 * s1, 1e-6);
  EXPECT_NEAR(y.flatten()[3].item<double>(), 0.25 * c1 + -1.0 * s1, 1e-6);
}

TEST(Transformer, Llama3RopeScalingFollowsTheFormula) {
  nlohmann::json j = {{"model_type", "llama"},
                      {"vocab_size", 8},
                      {"hidden_size", 64},
                      {"intermediate_size", 8},
                      {"num_hidden_layers", 1},
                      {"num_attention_heads", 1},
                      {"rope_theta", 500000.0},
                      {"rope_scaling",
                       {{"rope_type", "llama3"},
                        {"factor", 8.0},
                        {"low_freq_factor", 1.0},
                        {"high_freq_factor", 4.0},
                        {"original_max_position_embeddings", 8192}}}};
  auto inv = rlaif::rope_inv_freq(rlaif::ModelConfig::from_json(j, "test"));
  int high = 0, low = 0, mid = 0;
  for (int i = 0; i < 32; ++i) {
    double f = 1.0 / std::pow(500000.0, 2.0 * i / 64), wl = 2 * M_PI / f, want;
    if (wl < 8192 / 4.0)
      want = f, ++high;
    else if (wl > 8192 / 1.0)
      want = f / 8, ++low;
    else {
      double s = (8192 / wl - 1) / 3;
      want = (1 - s) * f / 8 + s * f;
      ++mid;
    }
    EXPECT_NEAR(inv[i].item<double>() / want, 1.0, 1e-5) << i;
  }
  EXPECT_GT(high, 0);
  EXPECT_GT(low, 0);
  EXPECT_GT(mid, 0);  // all three branches exercised
}

TEST(Transformer, GroupedQueryAttentionMatchesRepeatedHeads) {
  torch::manual_seed(1);
  const int64_t N = 2, H = 6, Hkv = 2, T = 5, D = 8;
  auto q = torch::randn({N, H, T, D}), k = torch::randn({N, Hkv, T, D}), v = torch::randn({N, Hkv, T, D});
  auto idx = torch::arange(T);
  auto allowed = (idx.view({1, T}) <= idx.view({T, 1})).unsqueeze(0).expand({N, T, T}).contiguous();
  auto out = rlaif::gqa_attention(q, k, v, allowed);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h) {
      int64_t g = h / (H / Hkv);  // transformers' repeat_kv: query head h reads key/value head h / (H / Hkv)
      for (int64_t t = 0; t < T; ++t) {
        auto s = (k[n][g].narrow(0, 0, t + 1).matmul(q[n][h][t])) / std::sqrt(double(D));  // [t+1]
        auto want = torch::softmax(s, 0).matmul(v[n][g].narrow(0, 0, t + 1));
        EXPECT_LT(max_diff(out[n][h][t], want), 1e-5);
      }
    }
}

TEST(Transformer, KvCacheLogitsEqualFullForward) {
  // Tolerance 2e-5 absolute on logits of magnitude ~1-10 (fp32 rounding of differently shaped matmuls).
  for (std::string arch : {"llama", "qwen2", "qwen3"}) {
    auto m = tiny(arch);
    torch::NoGradGuard g;
    const int64_t T = 14, P = 5;
    auto ids = torch::randint(0, m->config().vocab_size, {1, T});
    auto full = m->forward(ids)[0];  // [T, V]
    rlaif::KVCache cache(m->config(), /*slots=*/3, /*max_len=*/32, torch::kFloat32);
    rlaif::CachedBatch b;
    b.input_ids = ids.narrow(1, 0, P);
    b.positions = torch::arange(P).view({1, P});
    b.slot_begin = 2;
    b.key_len = P;
    auto pre = m->logits(m->forward_cached(b, cache))[0];  // [P, V]
    EXPECT_LT(max_diff(pre, full.narrow(0, 0, P)), 2e-5) << arch;
    for (int64_t t = P; t < T; ++t) {
      b.input_ids = ids.narrow(1, t, 1);
      b.positions = torch::full({1, 1}, t, torch::kInt64);
      b.key_len = t + 1;
      auto step = m->logits(m->forward_cached(b, cache))[0][0];
      EXPECT_LT(max_diff(step, full[t]), 2e-5) << arch << " position " << t;
    }
  }
}

TEST(Transformer, DecodeOverSlotsOfDifferentLengths) {
  auto m = tiny("qwen3");
  torch::NoGradGuard g;
  const int64_t V = m->config().vocab_size;
  auto a = torch::randint(0, V, {1, 9}), b = torch::randint(0, V, {1, 4});
  rlaif::KVCache cache(m->config(), 2, 16, torch::kFloat32);
  for (int s = 0; s < 2; ++s) {
    auto ids = (s == 0 ? a : b);
    int64_t P = ids.size(1) - 1;
    rlaif::CachedBatch pre{ids.narrow(1, 0, P), torch::arange(P).view({1, P}), s, P};
    m->forward_cached(pre, cache);
  }
  // One decode step over both slots: row 0 at position 8, row 1 at position 3.
  rlaif::CachedBatch step{torch::cat({a.narrow(1, 8, 1), b.narrow(1, 3, 1)}), torch::tensor({{8}, {3}}), 0, 9};
  auto out = m->logits(m->forward_cached(step, cache)).squeeze(1);  // [2, V]
  EXPECT_LT(max_diff(out[0], m->forward(a)[0][8]), 2e-5);
  EXPECT_LT(max_diff(out[1], m->forward(b)[0][3]), 2e-5);
}

TEST(Transformer, PaddedPrefillIntoScatteredSlotsThenDecode) {
  // Two prompts (7 and 3 tokens) prefilled in one right-padded forward into slots 3 and 1 of 4, then one decode step
  // over all four slots: every real position's logits equal the full forward of its own sequence (2e-5, as above).
  // The shorter row's padding writes keys past its prompt; its decode step overwrites the first of them.
  auto m = tiny("qwen3");
  torch::NoGradGuard g;
  const int64_t V = m->config().vocab_size;
  auto a = torch::randint(0, V, {1, 8}), b = torch::randint(0, V, {1, 4});
  rlaif::KVCache cache(m->config(), 4, 16, torch::kFloat32);
  rlaif::CachedBatch pre;
  pre.input_ids = torch::cat({a.narrow(1, 0, 7), torch::cat({b.narrow(1, 0, 3), torch::full({1, 4}, 5)}, 1)});
  pre.positions = torch::arange(7).view({1, 7}).expand({2, 7}).contiguous();
  pre.slots = torch::tensor({3, 1}, torch::kInt64);
  pre.key_len = 7;
  auto logits = m->logits(m->forward_cached(pre, cache));  // [2, 7, V]
  EXPECT_LT(max_diff(logits[0], m->forward(a)[0].narrow(0, 0, 7)), 2e-5);
  EXPECT_LT(max_diff(logits[1].narrow(0, 0, 3), m->forward(b)[0].narrow(0, 0, 3)), 2e-5);
  const std::vector<int64_t> next = {0, b[0][3].item<int64_t>(), 0, a[0][7].item<int64_t>()}, at = {0, 3, 0, 7};
  rlaif::CachedBatch step{torch::tensor(next).view({4, 1}), torch::tensor(at).view({4, 1}), 0, 8};
  auto out = m->logits(m->forward_cached(step, cache)).squeeze(1);  // [4, V]
  EXPECT_LT(max_diff(out[3], m->forward(a)[0][7]), 2e-5);
  EXPECT_LT(max_diff(out[1], m->forward(b)[0][3]), 2e-5);
  rlaif::CachedBatch bad = pre;
  bad.slots = torch::tensor({3, 4}, torch::kInt64);  // past the cache's 4 slots
  EXPECT_THROW(m->forward_cached(bad, cache), c10::Error);
}

TEST(Transformer, PaddingDoesNotChangeRealTokens) {
  auto m = tiny("qwen2");
  torch::NoGradGuard g;
  auto x = torch::randint(0, m->config().vocab_size, {1, 6});
  auto alone = m->forward(x)[0];
  auto left = torch::cat({torch::zeros({1, 3}, torch::kInt64), x}, 1);
  auto mask = torch::cat({torch::zeros({1, 3}, torch::kInt64), torch::ones({1, 6}, torch::kInt64)}, 1);
  auto padded = m->forward(left, mask)[0].narrow(0, 3, 6);
  EXPECT_LT(max_diff(padded, alone), 2e-5);
  auto right = torch::cat({x, torch::zeros({1, 2}, torch::kInt64)}, 1);
  auto rmask = torch::cat({torch::ones({1, 6}, torch::kInt64), torch::zeros({1, 2}, torch::kInt64)}, 1);
  EXPECT_LT(max_diff(m->forward(right, rmask)[0].narrow(0, 0, 6), alone), 2e-5);
}

TEST(Transformer, Bf16ComputeStaysCloseToFp32) {
  // bf16 has an 8-bit mantissa. With weights ~N(0, 0.06) (each layer keeps the activation scale, like a trained
  // model) the logits stay within 5% relative RMS error of fp32 and the argmax agrees on at least 80% of positions.
  auto m = tiny("llama", "small", 0.06);
  torch::NoGradGuard g;
  auto ids = torch::randint(0, m->config().vocab_size, {2, 16});
  auto ref = m->forward(ids);
  m->to(torch::kBFloat16);
  auto low = m->forward(ids).to(torch::kFloat32);
  double rel = ((low - ref).norm() / ref.norm()).item<double>();
  double agree = (low.argmax(-1) == ref.argmax(-1)).to(torch::kFloat32).mean().item<double>();
  std::printf("bf16 vs fp32: relative RMS error %.4f, argmax agreement %.3f\n", rel, agree);
  EXPECT_LT(rel, 0.05);
  EXPECT_GT(agree, 0.8);
}

// The fused training kernels (src/model/train_ops.cpp) against their plain formulas through libtorch's autograd:
// values and gradients of every input, in fp32 (tolerance 1e-5 relative to the largest value) and bf16 (rope, the
// q/k/v split, SwiGLU and the masked softmax, which take bf16 under autocast: 2e-2, bf16 keeps ~3 significant
// digits). The rows are long enough for the AVX-512 loops and their tails (C = 37, I = 1005 elements).
TEST(Transformer, FusedTrainingKernelsMatchTheFormulasWithGradients) {
  torch::manual_seed(5);
  auto check = [](const torch::Tensor& got, const torch::Tensor& want, double tol, const std::string& what) {
    ASSERT_EQ(got.sizes(), want.sizes()) << what;
    const double scale = std::max(1.0, want.abs().max().item<double>());
    EXPECT_LE(max_diff(got.to(torch::kFloat64), want.to(torch::kFloat64)), tol * scale) << what;
  };
  {  // RMSNorm
    auto x = torch::randn({6, 37}).requires_grad_(true);
    auto w = (torch::rand({37}) + 0.5).requires_grad_(true);
    auto dy = torch::randn({6, 37});
    auto want = w * (x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-5));
    auto gw = torch::autograd::grad({(want * dy).sum()}, {x, w});
    auto got = rlaif::rms_norm_fused(x, w, 1e-5);
    auto gg = torch::autograd::grad({(got * dy).sum()}, {x, w});
    check(got, want, 1e-5, "rms_norm");
    check(gg[0], gw[0], 1e-5, "rms_norm d/dx");
    check(gg[1], gw[1], 1e-5, "rms_norm d/dweight");
    auto low = rlaif::rms_norm_fused(x, w, 1e-5, /*bf16_out=*/true);  // what autocast's cast would give, exactly
    EXPECT_EQ(low.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::equal(low, got.to(torch::kBFloat16)));
    auto gl = torch::autograd::grad({(low.to(torch::kFloat32) * dy).sum()}, {x, w});
    check(gl[0], gw[0], 2e-2, "rms_norm (bf16 out) d/dx");  // its incoming gradient is bf16 too
    check(gl[1], gw[1], 2e-2, "rms_norm (bf16 out) d/dweight");
    // Its gradients do not depend on the thread count (a run resumed on another machine trains the same weights).
    auto xl = torch::randn({301, 70}).requires_grad_(true);
    auto dyl = torch::randn({301, 70});
    std::vector<torch::Tensor> by_threads[2];
    const int threads = torch::get_num_threads();
    for (int t : {1, 2}) {
      torch::set_num_threads(t);
      by_threads[t - 1] = torch::autograd::grad(
          {(rlaif::rms_norm_fused(xl, w.narrow(0, 0, 35).repeat({2}), 1e-5) * dyl).sum()}, {xl, w});
    }
    torch::set_num_threads(threads);
    EXPECT_TRUE(torch::equal(by_threads[0][0], by_threads[1][0])) << "rms_norm d/dx, 1 vs 2 threads";
    EXPECT_TRUE(torch::equal(by_threads[0][1], by_threads[1][1])) << "rms_norm d/dweight, 1 vs 2 threads";
  }
  auto rope_formula = [](const torch::Tensor& x, const torch::Tensor& c, const torch::Tensor& s) {
    const int64_t h = x.size(-1) / 2;
    return x * c + torch::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1) * s;
  };
  auto ang = torch::randn({2, 5, 1, 8}) * 3;
  auto cos = ang.cos(), sin = ang.sin();
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {  // rotary embedding
    const double tol = dtype == torch::kFloat32 ? 1e-5 : 2e-2;
    auto x = torch::randn({2, 5, 3, 8}).to(dtype).requires_grad_(true);
    auto dy = torch::randn({2, 5, 3, 8});
    auto want = rope_formula(x.to(torch::kFloat32), cos, sin);
    auto gw = torch::autograd::grad({(want * dy).sum()}, {x});
    auto got = rlaif::rope_fused(x, cos, sin);
    EXPECT_EQ(got.scalar_type(), dtype);
    auto gg = torch::autograd::grad({(got.to(torch::kFloat32) * dy).sum()}, {x});
    check(got, want, tol, "rope");
    check(gg[0], gw[0], tol, "rope d/dx");
  }
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {  // q/k/v split into attention's layout, rope on q and k
    const double tol = dtype == torch::kFloat32 ? 1e-5 : 2e-2;
    const int64_t N = 2, T = 5, H = 4, Hkv = 2, D = 8;
    auto qkv = torch::randn({N, T, (H + 2 * Hkv) * D}).to(dtype).requires_grad_(true);
    auto dq = torch::randn({N, H, T, D}), dk = torch::randn({N, Hkv, T, D}), dv = torch::randn({N, Hkv, T, D});
    auto f = qkv.to(torch::kFloat32);
    auto q_formula = [&] {
      return rope_formula(f.narrow(-1, 0, H * D).reshape({N, T, H, D}), cos, sin).transpose(1, 2);
    };
    auto wq = q_formula();
    auto wk = rope_formula(f.narrow(-1, H * D, Hkv * D).reshape({N, T, Hkv, D}), cos, sin).transpose(1, 2);
    auto wv = f.narrow(-1, (H + Hkv) * D, Hkv * D).reshape({N, T, Hkv, D}).transpose(1, 2);
    auto gw = torch::autograd::grad({(wq * dq).sum() + (wk * dk).sum() + (wv * dv).sum()}, {qkv});
    auto got = rlaif::qkv_rope_fused(qkv, cos, sin, H, Hkv);
    for (const auto& t : got) EXPECT_TRUE(t.is_contiguous() && t.scalar_type() == dtype);
    check(got[0], wq, tol, "qkv rope: q");
    check(got[1], wk, tol, "qkv rope: k");
    check(got[2], wv, tol, "qkv rope: v");
    auto fl = [](const torch::Tensor& t) { return t.to(torch::kFloat32); };
    auto gg =
        torch::autograd::grad({(fl(got[0]) * dq).sum() + (fl(got[1]) * dk).sum() + (fl(got[2]) * dv).sum()}, {qkv});
    check(gg[0], gw[0], tol, "qkv rope d/dqkv");
    // only q used: the k and v columns of the gradient are 0
    auto gq = torch::autograd::grad({(fl(rlaif::qkv_rope_fused(qkv, cos, sin, H, Hkv)[0]) * dq).sum()}, {qkv})[0];
    f = qkv.to(torch::kFloat32);
    auto gwq = torch::autograd::grad({(q_formula() * dq).sum()}, {qkv})[0];
    check(gq, gwq, tol, "qkv rope, q only: d/dqkv");
    EXPECT_EQ(gq.narrow(-1, H * D, 2 * Hkv * D).abs().max().item<double>(), 0.0);
  }
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {  // SwiGLU's gate on [gate | up] rows
    const double tol = dtype == torch::kFloat32 ? 1e-5 : 2e-2;
    const int64_t I = 1005;  // both signs, into the tails of sigmoid; rows long enough for the AVX-512 loop's tail
    auto gu = torch::cat({torch::randn({3, I}) * 4, torch::randn({3, I})}, -1).to(dtype).requires_grad_(true);
    auto dy = torch::randn({3, I});
    auto want = torch::silu(gu.narrow(-1, 0, I).to(torch::kFloat32)) * gu.narrow(-1, I, I).to(torch::kFloat32);
    auto gw = torch::autograd::grad({(want * dy).sum()}, {gu});
    auto got = rlaif::swiglu_fused(gu);
    auto gg = torch::autograd::grad({(got.to(torch::kFloat32) * dy).sum()}, {gu});
    check(got, want, tol, "swiglu");
    check(gg[0].narrow(-1, 0, I), gw[0].narrow(-1, 0, I), tol, "swiglu d/dgate");
    check(gg[0].narrow(-1, I, I), gw[0].narrow(-1, I, I), tol, "swiglu d/dup");
  }
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {  // attention's masked softmax, L = 21 (a tail)
    const double tol = dtype == torch::kFloat32 ? 1e-5 : 2e-2;
    auto s = (torch::randn({2, 2, 3, 5, 21}) * 3).to(dtype).requires_grad_(true);
    auto allowed = torch::rand({2, 5, 21}) > 0.3;
    allowed[1][2].fill_(false);  // a query with no allowed key: uniform, as the formula gives
    auto dy = torch::randn({2, 2, 3, 5, 21});
    auto masked = (s.to(torch::kFloat32) * 0.125)
                      .masked_fill(allowed.logical_not().view({2, 1, 1, 5, 21}), std::numeric_limits<float>::lowest());
    auto want = torch::softmax(masked, -1);
    auto gw = torch::autograd::grad({(want * dy).sum()}, {s});
    auto got = rlaif::masked_softmax_fused(s, allowed, 0.125);
    EXPECT_EQ(got.scalar_type(), dtype);
    auto gg = torch::autograd::grad({(got.to(torch::kFloat32) * dy).sum()}, {s});
    check(got, want, tol, "masked softmax");
    check(gg[0], gw[0], tol, "masked softmax d/ds");
  }
}

// LoRA's dropout (src/model/train_ops.cpp): the keep rate, the 1 / (1 - p) scale, the same mask in backward, replay
// from the torch seed at any thread count, and independence of the two elements that share one 64-bit hash.
TEST(Transformer, HashedDropoutKeepsOneMinusPAndReplaysItsMask) {
  torch::manual_seed(7);
  const double p = 0.05;
  auto x = (torch::rand({1000, 1003}) + 0.5).requires_grad_(true);  // no zeros, so a zero output means dropped
  const double n = static_cast<double>(x.numel());
  torch::manual_seed(11);
  auto y = rlaif::dropout_fused(x, p);
  auto kept = y.detach() != 0;
  const double dropped = 1 - kept.to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(dropped, p, 5 * std::sqrt(p * (1 - p) / n));  // 5 standard deviations
  EXPECT_LE(max_diff(y.detach().masked_select(kept), (x.detach() / (1 - p)).masked_select(kept)), 1e-6);
  auto dy = torch::randn_like(x);
  auto dx = torch::autograd::grad({(y * dy).sum()}, {x})[0];
  EXPECT_LE(max_diff(dx, dy * kept.to(torch::kFloat32) / (1 - p)), 1e-6);
  auto pairs = kept.view({-1, 2}).logical_not();  // elements 2i and 2i + 1 (1000 x 1003 is even)
  const double both = pairs.all(1).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(both, p * p, 5 * std::sqrt(p * p * (1 - p * p) / (n / 2)));
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  torch::manual_seed(11);
  auto again = rlaif::dropout_fused(x.detach(), p);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(again, y.detach()));
  EXPECT_FALSE(torch::equal(rlaif::dropout_fused(x.detach(), p), y.detach()));  // the next seed, another mask
  auto xb = x.detach().to(torch::kBFloat16);
  torch::manual_seed(11);
  auto yb = rlaif::dropout_fused(xb, p);
  EXPECT_EQ(yb.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(yb != 0, kept));  // the mask does not depend on the dtype
  // The AVX-512 loop (where the CPU has it) and the portable one: the same values, bit for bit, for both dtypes,
  // alone and accumulated, on a length that is not a multiple of 16.
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    auto v = torch::randn({1000, 1003}).to(dtype).narrow(1, 0, 1001);  // not contiguous: copied first
    auto run = [&](bool portable) {
      const bool was = rlaif::dropout_force_portable(portable);
      auto alone = rlaif::dropout_with_seed(v, 1234567, p);
      auto acc = torch::ones({1000, 1001}, dtype);
      rlaif::dropout_with_seed_add_(acc, v, 1234567, p);
      rlaif::dropout_force_portable(was);
      return std::make_pair(alone, acc);
    };
    auto [fast_alone, fast_acc] = run(false);
    auto [plain_alone, plain_acc] = run(true);
    EXPECT_TRUE(torch::equal(fast_alone, plain_alone));
    EXPECT_TRUE(torch::equal(fast_acc, plain_acc));
    EXPECT_LE(max_diff(plain_acc.to(torch::kFloat32), 1 + plain_alone.to(torch::kFloat32)),
              dtype == torch::kFloat32 ? 1e-6 : 5e-2);
  }
}

// LoRA on a frozen projection as one node (src/model/lora_linear.cpp) against the formula in autograd ops: three
// adapters on column ranges of a fused projection with a range left without one, a bias, fp32 and bf16 compute,
// with and without dropout (the same masks: both draw one seed per adapter from libtorch's generator), and an input
// that needs no gradient.
TEST(Transformer, LoraLinearMatchesTheFormulaWithGradients) {
  const int64_t M = 37, in = 24, outs[4] = {16, 8, 8, 12}, ranks[3] = {4, 2, 3}, cols[3] = {0, 16, 32};
  const int64_t out = 44;  // columns 24..31 (the third projection) have no adapter
  for (auto compute : {torch::kFloat32, torch::kBFloat16}) {
    for (double dropout : {0.0, 0.3}) {
      const double tol = compute == torch::kFloat32 ? 1e-5 : 2e-2;
      torch::manual_seed(3);
      auto w = torch::randn({out, in}).to(compute), b = torch::randn({out}).to(compute);
      auto x = torch::randn({M, in}).requires_grad_(true);
      std::vector<torch::Tensor> A, B;
      std::vector<rlaif::LoraPart> parts;
      for (int p = 0; p < 3; ++p) {
        A.push_back(torch::randn({ranks[p], in}).requires_grad_(true));
        B.push_back(torch::randn({p == 2 ? outs[3] : outs[p], ranks[p]}).requires_grad_(true));
        parts.push_back({A[p], B[p], 0.5 + p, p == 1 ? 0.0 : dropout, p == 2 ? 32 : cols[p]});
      }
      auto dy = torch::randn({M, out});
      torch::manual_seed(9);
      auto got = rlaif::lora_linear(x, w, b, parts, compute);
      EXPECT_EQ(got.scalar_type(), compute);
      std::vector<torch::Tensor> inputs = {x, A[0], A[1], A[2], B[0], B[1], B[2]};
      auto gg = torch::autograd::grad({(got.to(torch::kFloat32) * dy).sum()}, inputs);
      torch::manual_seed(9);  // the reference draws its masks' seeds in the same order
      auto f = [&](const torch::Tensor& t) { return t.to(compute).to(torch::kFloat32); };  // compute's rounding
      auto want = torch::addmm(f(b), f(x), f(w).t());
      std::vector<torch::Tensor> chunks;
      int64_t done = 0;
      for (int p = 0; p < 3; ++p) {
        const int64_t c = p == 2 ? 32 : cols[p];
        if (c > done) chunks.push_back(torch::zeros({M, c - done}));
        auto xin = parts[p].dropout > 0 ? rlaif::dropout_fused(f(x), parts[p].dropout) : f(x);
        chunks.push_back(torch::mm(torch::mm(xin, f(A[p]).t()), f(B[p]).t()) * parts[p].scale);
        done = c + B[p].size(0);
      }
      want = want + torch::cat(chunks, 1);
      auto gw = torch::autograd::grad({(want * dy).sum()}, inputs);
      const std::string what =
          std::string(compute == torch::kFloat32 ? "fp32" : "bf16") + " dropout " + std::to_string(dropout);
      auto check = [&](const torch::Tensor& g, const torch::Tensor& r, const std::string& name) {
        ASSERT_EQ(g.sizes(), r.sizes()) << name;
        const double scale = std::max(1.0, r.abs().max().item<double>());
        EXPECT_LE(max_diff(g.to(torch::kFloat64), r.to(torch::kFloat64)), tol * scale) << what << ": " << name;
      };
      check(got, want, "y");
      const char* names[7] = {"dx", "dA0", "dA1", "dA2", "dB0", "dB1", "dB2"};
      for (int i = 0; i < 7; ++i) {
        EXPECT_EQ(gg[i].scalar_type(), torch::kFloat32) << names[i];
        check(gg[i], gw[i], names[i]);
      }
      if (dropout > 0) {  // the masks differ between adapters 0 and 2 and are not all-keep
        torch::manual_seed(9);
        auto kept0 = rlaif::dropout_fused(torch::ones({M, in}), dropout) != 0;
        auto kept2 = rlaif::dropout_fused(torch::ones({M, in}), dropout) != 0;
        EXPECT_FALSE(torch::equal(kept0, kept2));
        EXPECT_FALSE(kept0.all().item<bool>());
      }
      auto xd = x.detach();  // an input without gradient: only the adapters get one
      auto gA = torch::autograd::grad({(rlaif::lora_linear(xd, w, b, parts, compute).to(torch::kFloat32) * dy).sum()},
                                      {A[0], B[2]});
      EXPECT_TRUE(gA[0].defined() && gA[1].defined());
    }
  }
  EXPECT_THROW(rlaif::lora_linear(torch::randn({3, 5}), torch::randn({4, 5}).requires_grad_(true), torch::Tensor(),
                                  {{torch::randn({2, 5}), torch::randn({4, 2}), 1, 0, 0}}, torch::kFloat32),
               c10::Error);  // a trainable base weight would get no gradient
}
