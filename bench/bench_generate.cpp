// Generation speed for a SmolLM2-135M-shaped llama (random weights), beside this machine's matmul throughput and
// memory bandwidth, so the ratios hold on a noisy machine. Prints a fixed table; never a pass/fail test.
//
//   build/bench/bench_generate [--threads N] [--dtypes torch-float32,torch-bfloat16,float32,bfloat16]
//                              [--batches 1,8,32,64] [--prompt-tokens 64] [--new-tokens 128]
// dtypes: float32 / bfloat16 are what `rlaif generate --dtype` runs (packed kernels where the CPU has them);
// torch-float32 / torch-bfloat16 are plain libtorch, for comparison. Peak RSS is of the whole process so far.
#include <sys/resource.h>
#include "bench_args.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>

#include "model/packed_linear.h"
#include "rlaif/generator.h"
#include "rlaif/init_model.h"
#include "rlaif/runtime.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ',')) out.push_back(x);
  return out;
}

// The peak: the best of 7 timed products (the machine is shared; a peak is what it reaches when not disturbed).
double matmul_gflops(torch::ScalarType dtype, int64_t n) {
  auto a = torch::randn({n, n}).to(dtype), b = torch::randn({n, n}).to(dtype);
  torch::matmul(a, b);
  double best = 0;
  for (int i = 0; i < 7; ++i) {
    auto t = Clock::now();
    torch::matmul(a, b);
    best = std::max(best, 2.0 * n * n * n / seconds(t) / 1e9);
  }
  return best;
}

// Median of 7 timed passes of a vectorised sum over 1 GiB (the machine is shared: the median resists outliers).
double read_bandwidth_gbs() {
  auto x = torch::ones({256 << 20}, torch::kFloat32);
  x.sum();
  std::vector<double> rates;
  for (int i = 0; i < 7; ++i) {
    auto t = Clock::now();
    x.sum();
    rates.push_back(4.0 * x.numel() / seconds(t) / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  return rates[3];
}

double peak_rss_mb() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  rlaif::ensure_runtime_env(argc, argv);
  int threads = 0;
  std::string dtypes = "torch-float32,torch-bfloat16,float32,bfloat16", batches = "1,8,32,64";
  int64_t new_tokens = 128, prompt_len = 64;
  bench::Args args(
      "usage: bench_generate [--threads N] [--dtypes torch-float32,torch-bfloat16,float32,bfloat16]\n"
      "                      [--batches 1,8,32,64] [--prompt-tokens 64] [--new-tokens 128]\n"
      "Generation speed of a SmolLM2-135M-shaped model beside this machine's matmul peaks and memory bandwidth.\n");
  args.value("--threads", threads);
  args.value("--dtypes", dtypes);
  args.value("--batches", batches);
  args.value("--new-tokens", new_tokens);
  args.value("--prompt-tokens", prompt_len);
  args.parse(argc, argv);
  threads = rlaif::set_num_threads(threads);
  const char* wait = std::getenv("OMP_WAIT_POLICY");
  const char* core = std::getenv("OPENBLAS_CORETYPE");
  std::printf("threads %d, OMP_WAIT_POLICY=%s, OPENBLAS_CORETYPE=%s\n", threads, wait ? wait : "(unset)",
              core ? core : "(unset)");

  const double f32_peak = matmul_gflops(torch::kFloat32, 2048);
  const double bf16_peak = matmul_gflops(torch::kBFloat16, 2048);
  const double bw = read_bandwidth_gbs();
  std::printf("\n| machine | value |\n|---|---|\n");
  std::printf(
      "| fp32 matmul 2048^3 | %.1f GFLOP/s |\n| bf16 matmul 2048^3 | %.1f GFLOP/s |\n| memory read bandwidth | %.1f "
      "GB/s |\n",
      f32_peak, bf16_peak, bw);

  // The packed kernels alone on this model's projection shapes (N x K), as GFLOP/s and weight GB/s.
  std::printf(
      "\n| kernel | M | qkv 960x576 | o 576x576 | gate_up 3072x576 | down 576x1536 | head 49152x576 "
      "|\n|---|---|---|---|---|---|---|\n");
  for (bool bf16 : {false, true}) {
    if (!rlaif::packed_linear_supported(bf16)) continue;
    for (int64_t M : {1, 8, 32, 64}) {
      std::printf("| %s | %lld |", bf16 ? "bf16" : "fp32", (long long)M);
      for (auto nk :
           std::vector<std::pair<int64_t, int64_t>>{{960, 576}, {576, 576}, {3072, 576}, {576, 1536}, {49152, 576}}) {
        auto w = rlaif::pack_linear(torch::randn({nk.first, nk.second}), {}, bf16);
        auto x = torch::randn({M, nk.second});
        rlaif::packed_linear(x, w);
        int reps = 0;
        auto t = Clock::now();
        while (seconds(t) < 0.3 || reps < 3) {
          rlaif::packed_linear(x, w);
          ++reps;
        }
        double s = seconds(t) / reps;
        std::printf(" %.0f GFLOP/s %.1f GB/s |", 2.0 * M * nk.first * nk.second / s / 1e9,
                    nk.first * nk.second * (bf16 ? 2.0 : 4.0) / s / 1e9);
      }
      std::printf("\n");
    }
  }

  // All 121 projections of the model in order at M = 1 (the weights of a batch-1 token, streamed from memory).
  for (bool bf16 : {false, true}) {
    if (!rlaif::packed_linear_supported(bf16)) continue;
    std::vector<rlaif::PackedWeight> ws;
    double bytes = 0;
    for (int l = 0; l < 30; ++l)
      for (auto nk : std::vector<std::pair<int64_t, int64_t>>{{960, 576}, {576, 576}, {3072, 576}, {576, 1536}})
        ws.push_back(rlaif::pack_linear(torch::randn({nk.first, nk.second}), {}, bf16));
    ws.push_back(rlaif::pack_linear(torch::randn({49152, 576}), {}, bf16));
    for (const auto& w : ws) bytes += static_cast<double>(w.n_pad) * w.k_pad * (bf16 ? 2 : 4);
    auto x576 = torch::randn({1, 576}), x1536 = torch::randn({1, 1536});
    auto pass = [&] {
      for (const auto& w : ws) rlaif::packed_linear(w.k == 576 ? x576 : x1536, w);
    };
    pass();
    auto t = Clock::now();
    for (int i = 0; i < 10; ++i) pass();
    double s = seconds(t) / 10;
    std::printf("%s kernels only, all projections of one batch-1 token: %.2f ms, %.1f GB/s\n", bf16 ? "bf16" : "fp32",
                s * 1e3, bytes / s / 1e9);
  }

  rlaif::InitModelOptions o;
  o.size = "smollm2-135m";
  auto config = rlaif::init_model_config(o);
  torch::manual_seed(0);
  const int64_t n_params = config.num_parameters();
  std::printf(
      "\nmodel: SmolLM2-135M shape (hidden 576, 30 layers, 9 heads, 3 KV heads, vocab 49152, tied), %.1fM "
      "parameters; prompt %lld tokens, %lld new tokens\n\n",
      n_params / 1e6, (long long)prompt_len, (long long)new_tokens);
  std::printf(
      "| compute path | sequences | prefill tok/s | decode tok/s (sum) | weight GB/s (batch 1) | %% of bandwidth | "
      "GFLOP/s | %% of fp32 peak | peak RSS MB |\n|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& dt : split(dtypes)) {
    rlaif::CausalLM model(config);
    {
      torch::NoGradGuard g;
      for (auto& p : model->named_parameters())
        p.value().normal_(p.key().find("norm") != std::string::npos ? 1.0 : 0.0, 0.02);
    }
    std::string path = dt == "torch-float32"    ? (model->set_packed_inference(false, false), "fp32 (libtorch)")
                       : dt == "torch-bfloat16" ? (model->to(torch::kBFloat16), "bf16 (libtorch)")
                                                : rlaif::set_inference_precision(model, dt);
    auto dtype = path.rfind("bf16", 0) == 0 ? torch::kBFloat16 : torch::kFloat32;
    for (const auto& bs : split(batches)) {
      const int64_t n = std::stoll(bs);
      rlaif::GeneratorOptions go;
      go.max_batch = n;
      rlaif::Generator gen(model, rlaif::Tokenizer::byte_level({"<|endoftext|>"}), {}, go);
      std::vector<rlaif::GenerationRequest> reqs(n);
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t t = 0; t < prompt_len; ++t) reqs[i].prompt_ids.push_back((i * 131 + t * 7) % config.vocab_size);
        reqs[i].seed = i;
        reqs[i].params.max_new_tokens = new_tokens;
        reqs[i].params.ignore_eos = true;
      }
      // The machine is shared: measure the bandwidth again right before a batch-1 row, so both figures of the
      // ratio come from the same minute.
      const double bw_now = n == 1 ? read_bandwidth_gbs() : bw;
      gen.generate(reqs);
      const auto& st = gen.stats();
      double prefill = st.prefill_tokens / st.prefill_seconds;
      double decode = st.decode_tokens / (st.decode_seconds + st.sample_seconds);
      double bytes_per_token = static_cast<double>(n_params) * c10::elementSize(dtype);
      double gflops = 2.0 * n_params * decode / 1e9;
      char bwcol[64] = "", pctbw[32] = "";
      if (n == 1) {
        std::snprintf(bwcol, sizeof bwcol, "%.1f", bytes_per_token * decode / 1e9);
        std::snprintf(pctbw, sizeof pctbw, "%.0f%% of %.1f", 100 * bytes_per_token * decode / 1e9 / bw_now, bw_now);
      }
      std::printf("| %s | %lld | %.0f | %.1f | %s | %s | %.1f | %.0f%% | %.0f |\n", path.c_str(), (long long)n, prefill,
                  decode, bwcol, pctbw, gflops, 100 * gflops / f32_peak, peak_rss_mb());
      (void)dt;
      std::fflush(stdout);
    }
  }
  return 0;
}
