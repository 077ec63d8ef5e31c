// `rlaif sft`: supervised fine-tuning on prompt/completion pairs, loss on the completion tokens only (the mean
// negative log-likelihood over every completion token of the accumulated batch), with the trainer's machinery:
// LoRA or full, AdamW, schedule, clipping, atomic checkpoints and resume, metrics.jsonl. Data parallel under a
// launcher (docs/distributed.md): every rank draws the step's global batch in the same order and trains on its share;
// the loss is normalised by the whole step's tokens and the gradients are summed, so N ranks take the step one
// process would.
#include <chrono>

#include "rlaif/dataset.h"
#include "rlaif/error.h"
#include "rlaif/model_folder.h"
#include "rlaif/progress.h"
#include "rlaif/sequence_batch.h"
#include "rlaif/trainer.h"
#include "train/replicas.h"
#include "train/stop_signals.h"
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

RunOutcome run_sft(const TrainConfig& c, const RunOptions& o) {
  c.validate("run config", /*rl=*/false);
  StopSignals signals;  // SIGTERM / SIGINT: end the step in progress, checkpoint it, return stopped
  auto dist = join_job(c);
  const bool main = dist->is_main();
  const int64_t world = dist->world_size(), share = c.generation_batch();  // sequences per rank per step
  prepare_runtime(c, dist->env().local_world_size);
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
  Replicas replicas(*dist, c, trainable, *opt);
  DataOrder order(rows.size(), c.seed);
  const int64_t total = c.total_steps(static_cast<int64_t>(rows.size()), /*rl=*/false, dist->world_size());
  auto contents = checkpoint_contents(c, model, opt.get(), trainable);
  auto state = start_run(c, "sft", o.resume, contents, o.quiet, dist.get());
  replicas.after_start();
  order.seek(state.data_epoch, state.data_position);
  std::unique_ptr<JsonlLog> metrics;
  if (main) metrics = std::make_unique<JsonlLog>(c.output_dir + "/metrics.jsonl");
  if (!o.quiet && main)
    std::fprintf(
        stderr, "sft: %s (%s), %zu rows, %lld steps of %lld sequences, %d threads%s\n", c.model_path.c_str(),
        c.use_lora ? "LoRA" : "full fine-tuning", rows.size(), (long long)total, (long long)(share * world),
        torch::get_num_threads(),
        world > 1 ? (" per rank, " + std::to_string(world) + " ranks (" + dist->env().launcher + ")").c_str() : "");
  Progress bar("sft", total, "steps", !o.quiet && main);
  bar.advance(state.step);
  model->train();
  for (int64_t step = state.step; step < total; ++step) {
    auto t0 = std::chrono::steady_clock::now();
    // The step's sequences (this rank's share of the global batch), then their micro-batches: the loss is normalised
    // by the tokens of the whole step.
    std::vector<const PromptRow*> batch;
    for (int64_t k = 0; k < share * world; ++k) {
      const PromptRow* row = &rows[order.next()];
      if (k / share == dist->rank()) batch.push_back(row);
    }
    std::vector<SequenceBatch> micro;
    double tokens = 0;
    for (size_t s = 0; s < batch.size(); s += c.per_device_train_batch_size) {
      std::vector<const std::vector<int64_t>*> p, comp;
      for (size_t k = s; k < std::min(batch.size(), s + c.per_device_train_batch_size); ++k)
        p.push_back(&batch[k]->prompt_ids), comp.push_back(&batch[k]->completion_ids);
      micro.push_back(make_sequence_batch(p, comp, pad));
      tokens += micro.back().completion_mask.sum().item<double>();
    }
    tokens = dist->sum(tokens);  // the whole step's
    const double lr = scheduled_lr(c, step, total);
    set_lr(*opt, lr);
    double loss_sum = 0, waited = 0;
    for (size_t k = 0; k < micro.size(); ++k) {
      auto logp = completion_logprobs(model, micro[k], 1.0, nullptr, c.use_bf16());  // [n, Tc]
      auto loss = -logp.sum() / tokens;
      if (k + 1 == micro.size()) replicas.arm();  // the step's last backward: gradients summed as they finish
      loss.backward();
      loss_sum += loss.item<double>();
    }
    const double grad_norm = replicas.optimizer_step(waited);
    loss_sum = dist->sum(loss_sum);
    const double secs = dist->max({std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()})[0];
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
    if (world > 1) m["dist/grad_sync"] = dist->sum(waited) / world;
    if (main && !eval_rows.empty() && ((c.eval_steps > 0 && s.step % c.eval_steps == 0) || s.step == total)) {
      model->eval();
      m["eval_loss"] = eval_loss(model, eval_rows, c.per_device_train_batch_size, pad, c.use_bf16());
      model->train();
    }
    if (main && (s.step % c.logging_steps == 0 || s.step == total || m.contains("eval_loss"))) metrics->write(m);
    bar.set_extra("loss " + std::to_string(loss_sum).substr(0, 6));
    bar.advance();
    const int signal = signals.agreed(*dist);  // every rank stops after this step
    if (signal || (c.save_steps > 0 && s.step % c.save_steps == 0) || s.step == total) replicas.save(s, contents);
    if (signal) {
      bar.finish();
      if (!o.quiet && main) StopSignals::report("sft", signal, s.step, c.output_dir);
      return {true, signal, s.step};
    }
  }
  bar.finish();
  model->eval();
  if (main) save_final(c, model);
  dist->barrier();  // the final folder is written before any rank reports the run done
  if (!o.quiet && main) std::fprintf(stderr, "sft: done; model in %s/final\n", c.output_dir.c_str());
  return {false, 0, total};
}

}  // namespace rlaif
