// One GRPO update (the training half of a step: forward, loss, backward, AdamW) for a SmolLM2-135M-shaped model,
// full or LoRA, fp32 or bf16 compute, beside this machine's matmul peaks measured in the same process. Prints one
// table row; bench/train_bench.sh runs every configuration (each in its own process, for its peak RSS) next to the
// eager PyTorch baseline bench/train_step_ref.py. Never a pass/fail test.
//
//   build/bench/bench_train --model DIR [--lora 16] [--lora-dropout 0] [--bf16] [--prompts 8] [--generations 8]
//   [--prompt-tokens 32]
//                           [--completion-tokens 128] [--micro 16] [--steps 2] [--threads 2] [--profile TRACE.json]
// --profile writes libtorch's profiler trace (chrome://tracing JSON, one event per op) of the last timed step.
// FLOPs: full 6 x parameters x tokens; LoRA 4 x parameters x tokens (no weight gradients for the frozen base) plus
// 6 x adapter parameters x tokens.
#include <sys/resource.h>
#include "bench_args.h"

#include <torch/csrc/autograd/profiler_legacy.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "rlaif/lora.h"
#include "rlaif/model_folder.h"
#include "rlaif/rl.h"
#include "rlaif/runtime.h"
#include "rlaif/sequence_batch.h"
#include "train/fused_adamw.h"

namespace {

using Clock = std::chrono::steady_clock;
double seconds(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double matmul_gflops(torch::ScalarType dtype, int64_t n) {
  auto a = torch::randn({n, n}).to(dtype), b = torch::randn({n, n}).to(dtype);
  torch::matmul(a, b);
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    auto t = Clock::now();
    torch::matmul(a, b);
    best = std::max(best, 2.0 * n * n * n / seconds(t) / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  rlaif::ensure_runtime_env(argc, argv);
  std::string model_dir;
  int64_t lora_r = 0, prompts = 8, G = 8, P = 32, Tc = 128, micro = 16, steps = 2;
  double lora_dropout = 0;  // PEFT's and rlaif's default is 0.05; 0 measures the adapters' matmuls alone
  int threads = 2;
  bool bf16 = false;
  std::string profile;
  bench::Args args(
      "usage: bench_train --model DIR [--lora 16] [--lora-dropout 0] [--bf16] [--prompts 8] [--generations 8]\n"
      "                   [--prompt-tokens 32] [--completion-tokens 128] [--micro 16] [--steps 2] [--threads 2]\n"
      "                   [--profile TRACE.json]\n"
      "One GRPO update (full, or LoRA of rank --lora), fp32 or --bf16 compute, beside this machine's matmul peaks.\n");
  args.value("--model", model_dir);
  args.value("--lora", lora_r);
  args.value("--lora-dropout", lora_dropout);
  args.flag("--bf16", bf16);
  args.value("--prompts", prompts);
  args.value("--generations", G);
  args.value("--prompt-tokens", P);
  args.value("--completion-tokens", Tc);
  args.value("--micro", micro);
  args.value("--steps", steps);
  args.value("--threads", threads);
  args.value("--profile", profile);
  args.parse(argc, argv);
  rlaif::set_num_threads(threads);
  if (!std::getenv("RLAIF_BENCH_DEFAULT_MALLOC")) rlaif::keep_freed_memory();  // as rlaif train does
  torch::manual_seed(0);
  auto model = rlaif::load_model(model_dir);
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  std::vector<torch::Tensor> trainable;
  double flops_per_token = 6.0 * params;
  if (lora_r > 0) {
    for (auto& p : model->parameters()) p.requires_grad_(false);
    rlaif::LoraConfig lc;
    lc.r = lora_r;
    lc.target_modules = {"all-linear"};
    lc.lora_dropout = lora_dropout;
    rlaif::add_lora(model, lc, 1);
    trainable = rlaif::lora_parameters(model);
    int64_t lp = 0;
    for (const auto& t : trainable) lp += t.numel();
    flops_per_token = 4.0 * params + 6.0 * lp;
  } else {
    trainable = model->parameters();
  }
  rlaif::FusedAdamW opt(trainable, torch::optim::AdamWOptions(1e-6));  // the trainer's AdamW (train/fused_adamw.h)
  const int64_t N = prompts * G, V = model->config().vocab_size;
  // Random prompts (one per group) and completions, as sampled; advantages and old log-probs as in a step.
  std::vector<std::vector<int64_t>> prompt_ids(N), completion_ids(N);
  for (int64_t i = 0; i < N; ++i) {
    auto p = torch::randint(0, V, {P}, torch::kInt64), c = torch::randint(0, V, {Tc}, torch::kInt64);
    prompt_ids[i].assign(p.data_ptr<int64_t>(), p.data_ptr<int64_t>() + P);
    completion_ids[i].assign(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + Tc);
  }
  auto adv = torch::randn({N});
  rlaif::PolicyLossOptions lo;
  lo.num_items = double(N * Tc);
  double best = 1e30;
  model->train();
  for (int64_t s = 0; s < steps + 1; ++s) {  // the first step warms up (allocations, autocast casts)
    std::unique_ptr<torch::autograd::profiler::RecordProfile> trace;
    if (!profile.empty() && s == steps) trace = std::make_unique<torch::autograd::profiler::RecordProfile>(profile);
    auto t = Clock::now();
    for (int64_t m = 0; m < N; m += micro) {
      std::vector<const std::vector<int64_t>*> pp, cc;
      for (int64_t i = m; i < std::min(N, m + micro); ++i)
        pp.push_back(&prompt_ids[i]), cc.push_back(&completion_ids[i]);
      auto b = rlaif::make_sequence_batch(pp, cc);
      auto logp = rlaif::completion_logprobs(model, b, 1.0, nullptr, bf16);  // [n, Tc]
      rlaif::PolicyLossInputs in;
      in.logp = logp;
      in.old_logp = logp.detach();
      in.advantages = adv.narrow(0, m, b.input_ids.size(0));
      in.mask = b.completion_mask;
      rlaif::policy_loss(in, lo).loss.backward();
    }
    opt.step();
    opt.zero_grad();
    if (s > 0 && !trace) best = std::min(best, seconds(t));
  }
  const double tokens = double(N * (P + Tc));
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double peak32 = matmul_gflops(torch::kFloat32, 2048), peak16 = matmul_gflops(torch::kBFloat16, 2048);
  double achieved = flops_per_token * tokens / best / 1e9;
  double peak = bf16 ? peak16 : peak32;
  std::printf(
      "| rlaif %-4s %-4s | %6.1f s | %7.1f | %7.0f MiB | %6.1f GFLOP/s | %5.1f%% of %s peak (%.0f) | fp32 peak %.0f, "
      "bf16 peak %.0f |\n",
      lora_r > 0 ? "LoRA" : "full", bf16 ? "bf16" : "fp32", best, tokens / best, ru.ru_maxrss / 1024.0, achieved,
      100 * achieved / peak, bf16 ? "bf16" : "fp32", peak, peak32, peak16);
  return 0;
}
