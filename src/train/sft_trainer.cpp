// `rlaif sft`: supervised fine-tuning on prompt/completion pairs, loss on the completion tokens only (the mean
// negative log-likelihood over every completion token of the accumulated batch), with the trainer's machinery:
// LoRA or full, AdamW, schedule, clipping, atomic checkpoints and resume, metrics.jsonl.
#include <chrono>

#include "rlaif/dataset.h"
#include "rlaif/error.h"
#include "rlaif/model_folder.h"
#include "rlaif/progress.h"
#include "rlaif/sequence_batch.h"
#include "rlaif/trainer.h"
#include "train/train_common.h"

namespace rlaif {
namespace {

// Mean NLL of the completion tokens of `rows` (no gradient), in micro-batches.
double eval_loss(CausalLM& model, const std::vector<PromptRow>& rows, int64_t mb, int64_t pad, bool bf16) {
  torch::NoGradGuard no_grad;
  double nll = 0, tokens = 0;
  for (size_t s = 0; s < rows.size(); s += mb) {
    std::vector<const std::vector<int64_t>*> p, c;
    for (size_t k = s; k < std::min(rows.size(), s + mb); ++k)
      p.push_back(&rows[k].prompt_ids), c.push_back(&rows[k].completion_ids);
    auto b = make_sequence_batch(p, c, pad);
    nll -= completion_logprobs(model, b, 1.0, nullptr, bf16).sum().item<double>();
    tokens += b.completion_mask.sum().item<double>();
  }
  return nll / std::max(1.0, tokens);
}

}  // namespace

void run_sft(const TrainConfig& c, const RunOptions& o) {
  c.validate("run config", /*rl=*/false);
  const DistEnv job = read_dist_env();
  if (job.world_size > 1)  // N processes would each train alone and write the same files
    throw Error("rlaif sft runs as one process; this one is rank " + std::to_string(job.rank) + " of " +
                    std::to_string(job.world_size) + " (" + job.launcher + ")",
                "rlaif sft", "launch it without torchrun/srun/mpirun (rlaif train runs data parallel)");
  prepare_runtime(c);
  auto model = load_model(c.model_path);
  auto tokenizer = Tokenizer::load(c.model_path);
  auto eos = load_eos_token_ids(c.model_path, model->config());
  DatasetOptions d;
  d.sft = true;
  d.max_prompt_length = c.max_prompt_length;
  d.max_completion_length = c.max_completion_length;
  d.eos_id = eos.empty() ? -1 : eos[0];
  const int64_t pad = eos.empty() ? 0 : eos[0];
  auto rows = load_dataset(c.prompts, tokenizer, d);
  std::vector<PromptRow> eval_rows;
  if (!c.eval_prompts.empty()) eval_rows = load_dataset(c.eval_prompts, tokenizer, d);
  auto trainable = make_trainable(model, c);
  auto opt = make_adamw(c, trainable);
  DataOrder order(rows.size(), c.seed);
  const int64_t total = c.total_steps(static_cast<int64_t>(rows.size()), /*rl=*/false);
  auto contents = checkpoint_contents(c, model, opt.get(), trainable);
  auto state = start_run(c, "sft", o.resume, contents, o.quiet);
  order.seek(state.data_epoch, state.data_position);
  JsonlLog metrics(c.output_dir + "/metrics.jsonl");
  if (!o.quiet)
    std::fprintf(stderr, "sft: %s (%s), %zu rows, %lld steps of %lld sequences, %d threads\n", c.model_path.c_str(),
                 c.use_lora ? "LoRA" : "full fine-tuning", rows.size(), (long long)total,
                 (long long)c.generation_batch(), torch::get_num_threads());
  Progress bar("sft", total, "steps", !o.quiet);
  bar.advance(state.step);
  model->train();
  for (int64_t step = state.step; step < total; ++step) {
    auto t0 = std::chrono::steady_clock::now();
    // The step's sequences, then their micro-batches: the loss is normalised by the tokens of the whole step.
    std::vector<const PromptRow*> batch;
    for (int64_t k = 0; k < c.generation_batch(); ++k) batch.push_back(&rows[order.next()]);
    std::vector<SequenceBatch> micro;
    double tokens = 0;
    for (size_t s = 0; s < batch.size(); s += c.per_device_train_batch_size) {
      std::vector<const std::vector<int64_t>*> p, comp;
      for (size_t k = s; k < std::min(batch.size(), s + c.per_device_train_batch_size); ++k)
        p.push_back(&batch[k]->prompt_ids), comp.push_back(&batch[k]->completion_ids);
      micro.push_back(make_sequence_batch(p, comp, pad));
      tokens += micro.back().completion_mask.sum().item<double>();
    }
    const double lr = scheduled_lr(c, step, total);
    set_lr(*opt, lr);
    double loss_sum = 0;
    for (const auto& b : micro) {
      auto logp = completion_logprobs(model, b, 1.0, nullptr, c.use_bf16());  // [n, Tc]
      auto loss = -logp.sum() / tokens;
      loss.backward();
      loss_sum += loss.item<double>();
    }
    double grad_norm = clip_gradients(trainable.params, c.max_grad_norm);
    opt->step();
    opt->zero_grad();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json m = {{"step", step + 1},
                        {"epoch", order.epoch()},
                        {"loss", loss_sum},
                        {"lr", lr},
                        {"grad_norm", grad_norm},
                        {"num_tokens", tokens},
                        {"tokens_per_s", tokens / std::max(1e-9, secs)}};
    TrainerState s;
    s.step = step + 1;
    s.data_epoch = order.epoch();
    s.data_position = order.position();
    s.config_fingerprint = state.config_fingerprint;
    if (!eval_rows.empty() && ((c.eval_steps > 0 && s.step % c.eval_steps == 0) || s.step == total)) {
      model->eval();
      m["eval_loss"] = eval_loss(model, eval_rows, c.per_device_train_batch_size, pad, c.use_bf16());
      model->train();
    }
    if (s.step % c.logging_steps == 0 || s.step == total || m.contains("eval_loss")) metrics.write(m);
    bar.set_extra("loss " + std::to_string(loss_sum).substr(0, 6));
    bar.advance();
    if ((c.save_steps > 0 && s.step % c.save_steps == 0) || s.step == total)
      save_checkpoint(c.output_dir, s, contents, c.save_total_limit);
  }
  bar.finish();
  model->eval();
  save_final(c, model);
  if (!o.quiet) std::fprintf(stderr, "sft: done; model in %s/final\n", c.output_dir.c_str());
}

}  // namespace rlaif
