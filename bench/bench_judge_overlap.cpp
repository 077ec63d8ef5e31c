// Is judging hidden behind generation? `rlaif train` steps against a real HTTP judge (tests/fault_server.h in its own
// process) that answers every request after a fixed latency, beside the same completions judged alone. Prints a fixed
// table: generation time, the judge-alone time, the wall time of generation + judging in the step, and the ratio
// wall / max(generation, judge alone) — 1.0 means judging cost nothing beyond the slower of the two.
//
//   build/bench/bench_judge_overlap --model DIR [--latency-ms 200] [--prompts 8] [--generations 8]
//                                   [--completion-tokens 128] [--batch 32] [--concurrency 64] [--steps 3]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench_args.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "../tests/fault_server.h"
#include "rlaif/jsonl.h"
#include "rlaif/judge.h"
#include "rlaif/runtime.h"
#include "rlaif/trainer.h"

int main(int argc, char** argv) {
  rlaif::ensure_runtime_env(argc, argv);
  std::string model;
  int latency = 200, prompts = 8, G = 8, Tc = 128, batch = 32, concurrency = 64, steps = 3;
  bench::Args args(
      "usage: bench_judge_overlap --model DIR [--latency-ms 200] [--prompts 8] [--generations 8]\n"
      "                           [--completion-tokens 128] [--batch 32] [--concurrency 64] [--steps 3]\n"
      "rlaif train steps against an HTTP judge with a fixed latency: is judging hidden behind generation?\n");
  args.value("--model", model);
  args.value("--latency-ms", latency);
  args.value("--prompts", prompts);
  args.value("--generations", G);
  args.value("--completion-tokens", Tc);
  args.value("--batch", batch);
  args.value("--concurrency", concurrency);
  args.value("--steps", steps);
  args.parse(argc, argv);
  int fd[2];
  if (pipe(fd) != 0) return 1;
  pid_t pid = fork();
  if (pid == 0) {  // the judge server, alone in its process
    close(fd[0]);
    rlaif_test::FaultServer server(latency, 320);
    std::string url = server.base_url();
    if (write(fd[1], url.c_str(), url.size()) < 0) _exit(1);
    close(fd[1]);
    pause();
    _exit(0);
  }
  close(fd[1]);
  char buf[256] = {0};
  if (read(fd[0], buf, sizeof(buf) - 1) <= 0) return 1;
  const std::string dir = std::filesystem::temp_directory_path() / ("rlaif-overlap-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream p(dir + "/prompts.jsonl");
    for (int i = 0; i < 64; ++i)
      p << nlohmann::json({{"prompt", "Write a short note number " + std::to_string(i) + ":"}}).dump() << "\n";
  }
  rlaif::TrainConfig c;
  c.model_path = model;
  c.prompts = dir + "/prompts.jsonl";
  c.output_dir = dir + "/out";
  c.max_steps = steps;
  c.num_generations = G;
  c.per_device_train_batch_size = prompts * G;
  c.max_completion_length = Tc;
  c.generation_batch_size = batch;
  c.save_steps = 0;
  c.use_lora = true;  // keeps the update (not measured here) short
  c.has_judge = true;
  c.judge.base_urls = {buf};
  c.judge.model = "bench";
  c.judge.http.max_in_flight = concurrency;
  rlaif::run_rl(c, {false, true});
  std::printf("| step | generation s | judge alone s | generation + judging wall s | wall / max(gen, judge) |\n");
  std::printf("| --- | --- | --- | --- | --- |\n");
  std::vector<rlaif::JudgeSample> by_step[64];
  for (const auto& r : rlaif::read_jsonl(c.output_dir + "/samples.jsonl"))
    by_step[r.value["step"].get<int>()].push_back({r.value["prompt"], r.value["completion"], ""});
  for (const auto& r : rlaif::read_jsonl(c.output_dir + "/metrics.jsonl")) {
    if (!r.value.contains("timing/generate")) continue;
    int step = r.value["step"];
    double gen = r.value["timing/generate"], wait = r.value["timing/judge"];
    rlaif::Judge alone(c.judge);  // no cache: every request really goes out
    auto t = std::chrono::steady_clock::now();
    alone.judge(by_step[step]);
    double judge = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    std::printf("| %d | %.3f | %.3f | %.3f | %.3f |\n", step, gen, judge, gen + wait,
                (gen + wait) / std::max(gen, judge));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  std::filesystem::remove_all(dir);
  return 0;
}
