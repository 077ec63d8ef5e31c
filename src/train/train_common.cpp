// Shared trainer machinery (see train_common.h).
#include "train/train_common.h"

#include <cmath>
#include <filesystem>
#include <thread>

#include "core/sha256.h"
#include "rlaif/atomic_file.h"
#include "rlaif/error.h"
#include "rlaif/lora.h"
#include "rlaif/model_folder.h"
#include "rlaif/runtime.h"
#include "rlaif/trainer.h"
#include "train/fused_adamw.h"

namespace fs = std::filesystem;

namespace rlaif {

void prepare_runtime(const TrainConfig& c, int local_ranks) {
  int threads = c.num_threads;
  if (threads <= 0 && local_ranks > 1)
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / local_ranks);
  set_num_threads(threads);
  keep_freed_memory();
  torch::manual_seed(c.seed);
}

Trainable make_trainable(CausalLM& model, const TrainConfig& c) {
  Trainable t;
  if (c.use_lora) {
    for (auto& p : model->parameters()) p.requires_grad_(false);
    add_lora(model, c.lora, c.seed);
    for (const auto& kv : model->lora()) {
      t.names.push_back(kv.first + ".lora_A.weight");
      t.params.push_back(kv.second.A);
      t.names.push_back(kv.first + ".lora_B.weight");
      t.params.push_back(kv.second.B);
    }
  } else {
    for (auto& kv : model->named_parameters()) {
      kv.value().requires_grad_(true);
      t.names.push_back(kv.key());
      t.params.push_back(kv.value());
    }
  }
  return t;
}

CheckpointContents checkpoint_contents(const TrainConfig& c, CausalLM& model, torch::optim::Optimizer* opt,
                                       const Trainable& t) {
  CheckpointContents k;
  k.model = model;
  k.lora = c.use_lora ? &c.lora : nullptr;
  k.base_model = c.model_path;
  k.optimizer = opt;
  k.params = t.params;
  return k;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(const TrainConfig& c, const Trainable& t) {
  std::vector<torch::Tensor> decay, no_decay;
  for (size_t i = 0; i < t.params.size(); ++i) {
    const auto& n = t.names[i];
    bool exempt = n.find("norm") != std::string::npos || (n.size() >= 5 && n.compare(n.size() - 5, 5, ".bias") == 0);
    (exempt ? no_decay : decay).push_back(t.params[i]);
  }
  auto opts = torch::optim::AdamWOptions(c.learning_rate)
                  .betas({c.adam_beta1, c.adam_beta2})
                  .eps(c.adam_epsilon)
                  .weight_decay(c.weight_decay);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!decay.empty()) groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(opts));
  if (!no_decay.empty()) {
    auto nd = opts;
    nd.weight_decay(0);
    groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(nd));
  }
  return std::make_unique<FusedAdamW>(groups, opts);
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

std::unique_ptr<Dist> join_job(const TrainConfig& c) {
  return Dist::connect(read_dist_env(), std::chrono::seconds(c.ddp_timeout));
}

void check_replicas(Dist& dist, const Trainable& t, int64_t step) {
  if (dist.world_size() == 1) return;
  std::string sums;
  for (const auto& p : t.params) {
    torch::NoGradGuard ng;
    auto bits = p.detach().contiguous().view(torch::kInt32).sum(torch::kInt64).item<int64_t>();
    sums += std::to_string(bits) + ",";
  }
  auto all = dist.all_gather(sums);
  for (int r = 1; r < dist.world_size(); ++r)
    if (all[r] != all[0])
      throw Error("after step " + std::to_string(step) + " the weights of rank " + std::to_string(r) +
                      " differ from rank 0's: the ranks no longer train one model",
                  "distributed job",
                  "a bug or a faulty machine; resume from the last checkpoint with --resume and report it");
}

double clip_gradients(const std::vector<torch::Tensor>& params, double max_norm) {
  double sq = 0;
  for (const auto& p : params)
    if (p.grad().defined()) {  // one pass, no temporary (a float64 copy of every gradient cost ~1 s per step)
      const double n = p.grad().norm().item<double>();
      sq += n * n;
    }
  double norm = std::sqrt(sq);
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);  // torch.nn.utils.clip_grad_norm_
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(scale);
  }
  return norm;
}

double scheduled_lr(const TrainConfig& c, int64_t step, int64_t total) {
  int64_t warmup = c.warmup_steps > 0 ? c.warmup_steps : static_cast<int64_t>(std::ceil(c.warmup_ratio * total));
  if (step < warmup) return c.learning_rate * double(step) / double(std::max<int64_t>(1, warmup));
  if (c.lr_scheduler_type == LrSchedule::kConstant) return c.learning_rate;
  double progress = double(step - warmup) / double(std::max<int64_t>(1, total - warmup));
  if (c.lr_scheduler_type == LrSchedule::kLinear) return c.learning_rate * std::max(0.0, 1.0 - progress);
  return c.learning_rate * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));  // cosine
}

std::string config_fingerprint(const TrainConfig& c, const std::string& kind, int world_size) {
  nlohmann::json j = {{"kind", kind},
                      {"model", c.model_path},
                      {"prompts", c.prompts},
                      {"algorithm", choice_name(c.algorithm, kAlgorithms)},
                      {"seed", c.seed},
                      {"lora", c.use_lora},
                      {"lora_r", c.lora.r},
                      {"lora_targets", c.lora.target_modules},
                      {"num_generations", c.num_generations},
                      {"batch", c.generation_batch() * world_size},
                      {"learning_rate", c.learning_rate},
                      {"loss_type", choice_name(c.loss_type, kLossTypes)},
                      {"beta", c.beta},
                      {"max_completion_length", c.max_completion_length}};
  return sha256_hex(j.dump());
}

namespace {

// Keeps the lines of a JSONL log whose "step" is <= `step` (atomically rewritten).
void cut_log(const std::string& path, int64_t step) {
  if (!fs::exists(path)) return;
  std::string kept, text = read_file(path);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) break;  // a torn last line (killed mid-write) is dropped
    std::string line = text.substr(start, end - start);
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("step", int64_t(0)) <= step) kept += line + "\n";
    start = end + 1;
  }
  write_file_atomic(path, kept);
}

// start_run on the process that prepares the folder (the only one, or rank 0 of `world`).
TrainerState prepare_output(const TrainConfig& c, const std::string& kind, bool resume,
                            const CheckpointContents& contents, bool quiet, int world) {
  fs::create_directories(c.output_dir);
  const std::string fp = config_fingerprint(c, kind, world);
  std::string ckpt = latest_checkpoint(c.output_dir);
  TrainerState state;
  state.config_fingerprint = fp;
  if (!resume) {
    if (!ckpt.empty())
      throw Error("the output folder already holds checkpoints", c.output_dir,
                  "continue it with --resume, or choose another train.output_dir");
    if (!c.effective_toml.empty()) write_file_atomic(c.output_dir + "/run_config.toml", c.effective_toml);
    for (const char* log : {"metrics.jsonl", "samples.jsonl", "eval_samples.jsonl"})
      fs::remove(c.output_dir + "/" + log);
    return state;
  }
  if (ckpt.empty()) {
    if (!quiet)
      std::fprintf(stderr, "%s: no checkpoint in %s, starting from step 0\n", kind.c_str(), c.output_dir.c_str());
    for (const char* log : {"metrics.jsonl", "samples.jsonl", "eval_samples.jsonl"})
      fs::remove(c.output_dir + "/" + log);
    return state;
  }
  state = load_checkpoint(ckpt, contents);
  if (state.config_fingerprint != fp)
    throw Error(
        "this config differs from the run being resumed (model, data, algorithm, batch, seed, LoRA or "
        "learning rate changed)",
        ckpt + "/trainer_state.json", "resume with the original config, or start a new output_dir");
  for (const char* log : {"metrics.jsonl", "samples.jsonl", "eval_samples.jsonl"})
    cut_log(c.output_dir + "/" + log, state.step);
  const int written_by = state.extra.value("world_size", 1);
  if (!quiet && written_by != world)
    std::fprintf(stderr, "%s: the checkpoint was written by %d rank(s); continuing on %d (same global batch)\n",
                 kind.c_str(), written_by, world);
  if (!quiet)
    std::fprintf(stderr, "%s: resumed from %s (step %lld)\n", kind.c_str(), ckpt.c_str(), (long long)state.step);
  return state;
}

}  // namespace

TrainerState start_run(const TrainConfig& c, const std::string& kind, bool resume, const CheckpointContents& contents,
                       bool quiet, Dist* dist) {
  if (!dist || dist->world_size() == 1) return prepare_output(c, kind, resume, contents, quiet, 1);
  TrainerState state;
  if (dist->is_main()) state = prepare_output(c, kind, resume, contents, quiet, dist->world_size());
  dist->barrier();  // the folder is ready (or rank 0 stopped: the barrier fails on the others)
  if (dist->is_main()) return state;
  const std::string ckpt = resume ? latest_checkpoint(c.output_dir) : "";
  if (ckpt.empty()) {
    state.config_fingerprint = config_fingerprint(c, kind, dist->world_size());
    return state;
  }
  return load_checkpoint(ckpt, contents);
}

JsonlLog::JsonlLog(const std::string& path) : out_(path, std::ios::app), path_(path) {
  if (!out_) throw Error("cannot write", path, "check the output folder");
}

void JsonlLog::write(const nlohmann::json& line) {
  out_ << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  out_.flush();
}

void save_final(const TrainConfig& c, CausalLM& model) {
  const std::string dir = c.output_dir + "/final";
  if (c.use_lora) {
    save_lora(model, c.lora, dir, c.model_path);
  } else {
    SaveOptions so;
    so.tokenizer_from = c.model_path;
    save_model(model, dir, so);
  }
}

}  // namespace rlaif
