// rlaif train / rlaif sft: one run.toml, one command.
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "rlaif/trainer.h"

namespace rlaif_cli {
namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> set;
  bool resume = false, quiet = false;
};

void add_common(CLI::App& app, TrainArgs& a) {
  app.add_option("--config", a.config, "run.toml (see docs/config.md)")->required();
  app.add_option("--set", a.set,
                 "override a config key, e.g. --set train.learning_rate=1e-5 --set lora.r=8 (TOML values; repeatable)");
  app.add_flag("--resume", a.resume, "continue from the newest checkpoint in train.output_dir");
  app.add_flag("--quiet", a.quiet, "no progress output");
}

}  // namespace

Run add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  add_common(app, *a);
  app.footer(
      "Each step: prompts -> num_generations completions each -> the judge scores them (as each one finishes) -> "
      "rewards -> advantages -> loss (GRPO family, or online DPO) -> AdamW. Writes OUTPUT_DIR/metrics.jsonl (TRL's "
      "metric names, docs/metrics.md), samples.jsonl, eval_samples.jsonl, checkpoint-STEP/ (atomic; --resume) and "
      "final/ (a Hugging Face folder, or a PEFT adapter with [lora]). Data parallel when started by torchrun, srun or "
      "mpirun, e.g. scripts/torchrun --no_python --nproc_per_node 2 rlaif train --config run.toml "
      "(docs/distributed.md). SIGTERM or Ctrl-C: the step in progress ends, a checkpoint is written and the run exits "
      "with code 5 (--resume continues it); a second signal stops at once.");
  return [a]() {
    auto c = rlaif::TrainConfig::from_toml(a->config, a->set);
    return rlaif::run_rl(c, {a->resume, a->quiet}).stopped ? rlaif::kStoppedExitCode : 0;
  };
}

Run add_sft(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  add_common(app, *a);
  app.footer(
      "Supervised fine-tuning on data.prompts rows {prompt, completion} or {messages} (loss on the completion / last "
      "assistant message only). Same [model], [train] and [lora] keys as rlaif train; no judge needed.");
  return [a]() {
    auto c = rlaif::TrainConfig::from_toml(a->config, a->set);
    return rlaif::run_sft(c, {a->resume, a->quiet}).stopped ? rlaif::kStoppedExitCode : 0;
  };
}

}  // namespace rlaif_cli
